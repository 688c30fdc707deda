/**
 * Added tokens (`added_tokens` in tokenizer.json): strings such as `<|endoftext|>` or
 * `[CLS]` that are cut out of the text before the model sees it and map straight to
 * their id. Matching is leftmost-longest. Tokens with `normalized: false` are
 * matched in the raw text; the pieces between them are normalized, and tokens with
 * `normalized: true` are matched in that normalized text (by their own normalized
 * form, e.g. Llama 2's `<s>` is looked for as `▁<s>`).
 */
import { asArray, asBoolean, asNumber, asObject, asString, optional, required, type JsonPath } from './json.js';
import type { NormalizedString } from './normalized-string.js';
import type { Normalizer } from './normalizers.js';
import { NormalizedString as NS } from './normalized-string.js';
import { escapeRegex } from './regex.js';
import { isWhitespace, isWordCharacter } from './unicode.js';

export interface AddedToken {
  id: number;
  content: string;
  /** Only match when not inside a word. */
  singleWord: boolean;
  /** Swallow whitespace on the left / right into the token. */
  lstrip: boolean;
  rstrip: boolean;
  /** Match in the normalized text rather than the raw text. */
  normalized: boolean;
  /** Skipped by `decode(…, {skipSpecialTokens: true})`. */
  special: boolean;
}

export function addedTokenFromJson(value: unknown, where: JsonPath): AddedToken {
  const obj = asObject(value, where);
  const special = optional(obj, 'special', where, asBoolean) ?? false;
  return {
    id: required(obj, 'id', where, asNumber),
    content: required(obj, 'content', where, asString),
    singleWord: optional(obj, 'single_word', where, asBoolean) ?? false,
    lstrip: optional(obj, 'lstrip', where, asBoolean) ?? false,
    rstrip: optional(obj, 'rstrip', where, asBoolean) ?? false,
    normalized: optional(obj, 'normalized', where, asBoolean) ?? !special,
    special,
  };
}

export function addedTokensFromJson(value: unknown, where: JsonPath): AddedToken[] {
  return asArray(value, where).map((t, i) => addedTokenFromJson(t, where.at(i)));
}

/** A piece of text: either an added token (with its id) or text still to be tokenized. */
export interface Segment {
  ns: NormalizedString;
  token: AddedToken | null;
}

/** Finds added tokens by the strings they are matched as. */
class Matcher {
  private readonly byPattern = new Map<string, AddedToken>();
  private readonly regex: RegExp | null;

  constructor(entries: [pattern: string, token: AddedToken][]) {
    for (const [pattern, token] of entries) if (pattern.length > 0) this.byPattern.set(pattern, token);
    // Longest first, so that at any position the alternation picks the longest token.
    const patterns = [...this.byPattern.keys()].sort((a, b) => b.length - a.length);
    this.regex = patterns.length === 0 ? null : new RegExp(patterns.map(escapeRegex).join('|'), 'gu');
  }

  /** Splits `ns` around the tokens found in it. */
  split(ns: NormalizedString): Segment[] {
    const text = ns.text;
    if (this.regex === null || text.length === 0) return [{ ns, token: null }];
    const segments: Segment[] = [];
    let offset = 0;
    this.regex.lastIndex = 0;
    for (let m = this.regex.exec(text); m !== null; m = this.regex.exec(text)) {
      const token = this.byPattern.get(m[0]) as AddedToken;
      let start = m.index;
      let stop = start + m[0].length;
      if (token.singleWord && !isStandalone(text, start, stop)) continue;
      if (token.lstrip) {
        let newStart = start;
        while (newStart > 0 && isWhitespace(charBefore(text, newStart))) newStart -= charBefore(text, newStart).length;
        start = Math.max(newStart, offset);
      }
      if (token.rstrip) {
        while (stop < text.length && isWhitespace(charAt(text, stop))) stop += charAt(text, stop).length;
      }
      if (offset < start) segments.push({ ns: ns.slice(offset, start), token: null });
      segments.push({ ns: ns.slice(start, stop), token });
      offset = stop;
    }
    if (offset < text.length) segments.push({ ns: ns.slice(offset, text.length), token: null });
    return segments;
  }
}

function charAt(text: string, i: number): string {
  return (text.codePointAt(i) as number) > 0xffff ? text.slice(i, i + 2) : text[i];
}

function charBefore(text: string, i: number): string {
  const low = text.charCodeAt(i - 1);
  return low >= 0xdc00 && low <= 0xdfff && i >= 2 ? text.slice(i - 2, i) : text[i - 1];
}

/** True when the match is not glued to a word character on either side. */
function isStandalone(text: string, start: number, stop: number): boolean {
  const before = start === 0 || !isWordCharacter(charBefore(text, start));
  const after = stop === text.length || !isWordCharacter(charAt(text, stop));
  return before && after;
}

export class AddedVocabulary {
  private readonly byId = new Map<number, AddedToken>();
  private readonly byContent = new Map<string, AddedToken>();
  private readonly raw: Matcher;
  private readonly normalizedMatcher: Matcher;

  constructor(
    readonly tokens: AddedToken[],
    private readonly normalizer: Normalizer | null,
  ) {
    for (const token of tokens) {
      this.byId.set(token.id, token);
      this.byContent.set(token.content, token);
    }
    this.raw = new Matcher(tokens.filter((t) => !t.normalized).map((t) => [t.content, t]));
    this.normalizedMatcher = new Matcher(
      tokens.filter((t) => t.normalized).map((t) => [normalizer === null ? t.content : normalizer.normalize(new NS(t.content)).text, t]),
    );
  }

  get size(): number {
    return this.tokens.length;
  }

  idOf(content: string): number | undefined {
    return this.byContent.get(content)?.id;
  }

  byIdOf(id: number): AddedToken | undefined {
    return this.byId.get(id);
  }

  isSpecial(content: string): boolean {
    return this.byContent.get(content)?.special ?? false;
  }

  /**
   * Cuts raw-matched tokens out of `text`, normalizes the rest piece by piece, then
   * cuts the normalized-matched tokens out of each normalized piece.
   */
  extractAndNormalize(text: NormalizedString): Segment[] {
    const segments: Segment[] = [];
    for (const segment of this.raw.split(text)) {
      if (segment.token !== null) {
        segments.push(segment);
        continue;
      }
      const normalized = this.normalizer === null ? segment.ns : this.normalizer.normalize(segment.ns);
      for (const s of this.normalizedMatcher.split(normalized)) segments.push(s);
    }
    return segments.filter((s) => s.ns.length > 0);
  }
}
