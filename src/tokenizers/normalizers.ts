/**
 * Normalizers: the first step of the pipeline, rewriting text before it is split
 * (Unicode normalization forms, lowercasing, accent stripping, BERT cleaning,
 * SentencePiece's precompiled rules, literal replacements).
 */
import { NormalizedString, type Chunk } from './normalized-string.js';
import { PrecompiledCharsmap } from './precompiled.js';
import { compileOnigPattern, escapeRegex } from './regex.js';
import {
  isBertControl,
  isBertWhitespace,
  isChineseChar,
  isBertNonspacingMark,
  isCombiningMark,
  isWhitespace,
} from './unicode.js';
import { asArray, asBoolean, asObject, asString, optional, required, unknownType, type JsonObject, type JsonPath } from './json.js';

export interface Normalizer {
  readonly type: string;
  normalize(ns: NormalizedString): NormalizedString;
}

type UnicodeForm = 'NFC' | 'NFD' | 'NFKC' | 'NFKD';

// Characters the decomposition tables of Rust's `unicode-normalization` (about Unicode
// 12) do not cover yet, so Rust leaves them as they are while Node decomposes them.
const RUST_UNDECOMPOSED_CANONICAL: readonly [number, number][] = [
  [0x105c9, 0x105c9], [0x105e4, 0x105e4], [0x11383, 0x11383], [0x11385, 0x11385], [0x1138e, 0x1138e],
  [0x11391, 0x11391], [0x113c5, 0x113c5], [0x113c7, 0x113c8], [0x11938, 0x11938], [0x16121, 0x16128],
  [0x16d68, 0x16d6a],
];
const RUST_UNDECOMPOSED_COMPATIBILITY: readonly [number, number][] = [
  [0x32ff, 0x32ff], [0xa7f1, 0xa7f4], [0xab69, 0xab69], [0x10781, 0x10785], [0x10787, 0x107b0],
  [0x107b2, 0x107ba], [0x1ccd6, 0x1ccf9], [0x1e030, 0x1e06d], [0x1f16c, 0x1f16c], [0x1fbf0, 0x1fbf9],
];

function undecomposedInRust(code: number, form: UnicodeForm): boolean {
  if (code < 0x32ff) return false;
  const inside = ([a, b]: readonly [number, number]): boolean => code >= a && code <= b;
  return RUST_UNDECOMPOSED_CANONICAL.some(inside) || ((form === 'NFKC' || form === 'NFKD') && RUST_UNDECOMPOSED_COMPATIBILITY.some(inside));
}

/** `text.normalize(form)`, leaving alone the characters Rust's tables do not decompose. */
function normalizeLikeRust(text: string, form: UnicodeForm): string {
  const normalized = text.normalize(form);
  if (normalized === text) return normalized;
  let out = '';
  let start = 0;
  for (let i = 0; i < text.length; ) {
    const code = text.codePointAt(i) as number;
    const width = code > 0xffff ? 2 : 1;
    if (undecomposedInRust(code, form)) {
      out += text.slice(start, i).normalize(form) + text.slice(i, i + width);
      start = i + width;
    }
    i += width;
  }
  return start === 0 ? normalized : out + text.slice(start).normalize(form);
}

const MARKS = '\\p{M}\\u1160-\\u11ff\\ud7b0-\\ud7ff';
// Clusters that normalization may change: a base with marks, a lone non-ASCII base, or marks with no base.
const CHANGEABLE_CLUSTER = new RegExp(`[^${MARKS}][${MARKS}]+|[^\\0-\\x7f${MARKS}]|[${MARKS}]+`, 'gsu');

/**
 * Applies a Unicode normalization form to the whole text, with offsets as Rust
 * tracks them. Rust's `unicode-normalization-alignments` emits each output
 * character with a change count: a decomposition emits its first character with 0
 * and the others with +1; canonical reordering moves characters with their counts;
 * a composition of n characters carries the sum of their counts minus n - 1. Rust
 * then walks the source: a count of 0 or -n takes the next source character's
 * offsets (and skips n more), +1 repeats the previous offsets.
 */
export function unicodeNormalize(ns: NormalizedString, form: UnicodeForm): NormalizedString {
  const text = ns.text;
  const whole = normalizeLikeRust(text, form);
  if (whole === text) return ns;
  const chunks: Chunk[] = [];
  let runStart = 0;
  for (const m of text.matchAll(CHANGEABLE_CLUSTER)) {
    const cluster = m[0];
    const normalized = normalizeLikeRust(cluster, form);
    if (normalized === cluster) continue;
    if (runStart < m.index) chunks.push({ text: text.slice(runStart, m.index), from: runStart, to: m.index });
    runStart = m.index + cluster.length;
    chunks.push(...(clusterChunks(cluster, normalized, m.index, form) ?? [{ text: normalized, from: m.index, to: runStart }]));
  }
  if (runStart < text.length) chunks.push({ text: text.slice(runStart), from: runStart, to: text.length });
  // A composition across clusters (rare): one span covers the whole text.
  if (chunks.map((c) => c.text).join('') !== whole) return ns.rebuild([{ text: whole, from: 0, to: text.length }]);
  return ns.rebuild(chunks);
}

interface StreamChar {
  char: string;
  change: number;
}

/** Takes, for each char of `order`, the first unused element of `pool` with that char. */
function claim(pool: StreamChar[], used: boolean[], char: string): StreamChar | null {
  const i = pool.findIndex((e, k) => !used[k] && e.char === char);
  if (i < 0) return null;
  used[i] = true;
  return pool[i];
}

/** The change-count stream Rust emits for one cluster, or null if it cannot be matched. */
function changeStream(inputs: string[], normalized: string, form: UnicodeForm): StreamChar[] | null {
  const decomposition: UnicodeForm = form === 'NFC' || form === 'NFD' ? 'NFD' : 'NFKD';
  const decomposed = inputs.flatMap((c) => [...normalizeLikeRust(c, decomposition)].map((char, j) => ({ char, change: j === 0 ? 0 : 1 })));
  const usedDecomposed = decomposed.map(() => false);
  const reordered: StreamChar[] = [];
  for (const char of normalizeLikeRust(inputs.join(''), decomposition)) {
    const e = claim(decomposed, usedDecomposed, char);
    if (e === null) return null;
    reordered.push(e);
  }
  if (form === 'NFD' || form === 'NFKD') return reordered;
  const usedReordered = reordered.map(() => false);
  const composed: StreamChar[] = [];
  for (const char of normalized) {
    const parts = [...normalizeLikeRust(char, decomposition)];
    let change = -(parts.length - 1);
    for (const part of parts) {
      const e = claim(reordered, usedReordered, part);
      if (e === null) return null;
      change += e.change;
    }
    composed.push({ char, change });
  }
  return composed;
}

/** The chunks of one changed cluster starting at `at`, following Rust's change counts. */
function clusterChunks(cluster: string, normalized: string, at: number, form: UnicodeForm): Chunk[] | null {
  const inputs = [...cluster];
  const stream = changeStream(inputs, normalized, form);
  if (stream === null) return null;
  const starts: number[] = [];
  inputs.reduce((offset, c) => (starts.push(offset), offset + c.length), at);
  const chunks: Chunk[] = [];
  let next = 0;
  for (const { char, change } of stream) {
    const last = chunks[chunks.length - 1];
    if (change > 0 && last !== undefined && last.text !== '') {
      last.text += char;
      continue;
    }
    if (next >= inputs.length) return null;
    chunks.push({ text: char, from: starts[next], to: starts[next] + inputs[next].length });
    next++;
    const skip = Math.max(0, -change);
    if (skip > 0) {
      if (next + skip > inputs.length) return null;
      chunks.push({ text: '', from: starts[next], to: starts[next + skip - 1] + inputs[next + skip - 1].length });
      next += skip;
    }
  }
  if (next < inputs.length) chunks.push({ text: '', from: starts[next], to: at + cluster.length });
  return chunks;
}

function lowercaseChar(char: string): string {
  const code = char.charCodeAt(0);
  if (code < 0x80) return code >= 0x41 && code <= 0x5a ? String.fromCharCode(code + 32) : char;
  // Per character, as Rust's `char::to_lowercase`: no final-sigma context rule.
  return char.toLowerCase();
}

export function lowercase(ns: NormalizedString): NormalizedString {
  return ns.mapCodePoints(lowercaseChar);
}

/** Removes combining marks (StripAccents; callers decompose with NFD first). */
export function stripAccents(ns: NormalizedString): NormalizedString {
  return ns.mapCodePoints((c) => (isCombiningMark(c) ? '' : c));
}

class UnicodeNormalizer implements Normalizer {
  constructor(readonly type: UnicodeForm) {}
  normalize(ns: NormalizedString): NormalizedString {
    return unicodeNormalize(ns, this.type);
  }
}

class Lowercase implements Normalizer {
  readonly type = 'Lowercase';
  normalize(ns: NormalizedString): NormalizedString {
    return lowercase(ns);
  }
}

class StripAccents implements Normalizer {
  readonly type = 'StripAccents';
  normalize(ns: NormalizedString): NormalizedString {
    return stripAccents(ns);
  }
}

/** BERT's cleaning: drop controls, unify whitespace, space out CJK, strip accents, lowercase. */
export class BertNormalizer implements Normalizer {
  readonly type = 'BertNormalizer';
  constructor(
    readonly cleanText: boolean,
    readonly handleChineseChars: boolean,
    /** null follows `lowercase`, as the original BERT does. */
    readonly stripAccents: boolean | null,
    readonly lowercase: boolean,
  ) {}

  /**
   * The four steps are per-character maps (with NFD before accent stripping), so
   * cleaning with CJK spacing, and accent stripping with lowercasing, each run as
   * one pass over the text.
   */
  normalize(ns: NormalizedString): NormalizedString {
    const strip = this.stripAccents ?? this.lowercase;
    let out = ns.mapCodePoints((c) => {
      if (this.cleanText) {
        if (c === '\0' || c === '\ufffd' || isBertControl(c)) return '';
        if (isBertWhitespace(c)) return ' ';
      }
      return this.handleChineseChars && isChineseChar(c.codePointAt(0) as number) ? ` ${c} ` : c;
    });
    if (strip) out = unicodeNormalize(out, 'NFD');
    if (!strip && !this.lowercase) return out;
    return out.mapCodePoints((c) => {
      if (strip && isBertNonspacingMark(c)) return '';
      return this.lowercase ? lowercaseChar(c) : c;
    });
  }
}

/** Replaces every occurrence of a literal string or regex. */
class Replace implements Normalizer {
  readonly type = 'Replace';
  constructor(
    private readonly pattern: RegExp,
    private readonly content: string,
  ) {}
  normalize(ns: NormalizedString): NormalizedString {
    return ns.replaceAll(this.pattern, this.content);
  }
}

class Prepend implements Normalizer {
  readonly type = 'Prepend';
  constructor(private readonly prefix: string) {}
  normalize(ns: NormalizedString): NormalizedString {
    return ns.prepend(this.prefix);
  }
}

/** Removes leading and/or trailing whitespace. */
class Strip implements Normalizer {
  readonly type = 'Strip';
  constructor(
    private readonly left: boolean,
    private readonly right: boolean,
  ) {}
  normalize(ns: NormalizedString): NormalizedString {
    const chars = [...ns.text];
    let start = 0;
    let end = chars.length;
    if (this.left) while (start < end && isWhitespace(chars[start])) start++;
    if (this.right) while (end > start && isWhitespace(chars[end - 1])) end--;
    const from = chars.slice(0, start).join('').length;
    const to = ns.text.length - chars.slice(end).join('').length;
    return from === 0 && to === ns.text.length ? ns : ns.slice(from, to);
  }
}

class Precompiled implements Normalizer {
  readonly type = 'Precompiled';
  constructor(private readonly charsmap: PrecompiledCharsmap) {}
  normalize(ns: NormalizedString): NormalizedString {
    return this.charsmap.normalize(ns);
  }
}

class NormalizerSequence implements Normalizer {
  readonly type = 'Sequence';
  constructor(readonly normalizers: Normalizer[]) {}
  normalize(ns: NormalizedString): NormalizedString {
    let out = ns;
    for (const n of this.normalizers) out = n.normalize(out);
    return out;
  }
}

export const NORMALIZER_TYPES = [
  'NFC', 'NFD', 'NFKC', 'NFKD', 'Lowercase', 'StripAccents', 'BertNormalizer',
  'Replace', 'Prepend', 'Strip', 'Precompiled', 'Sequence',
] as const;

/** A `{String: ...}` or `{Regex: ...}` pattern as a global JS regex. */
export function readPattern(value: unknown, where: JsonPath): RegExp {
  const obj = asObject(value, where);
  if (typeof obj.String === 'string') return new RegExp(escapeRegex(obj.String), 'gu');
  if (typeof obj.Regex === 'string') return compileOnigPattern(obj.Regex);
  return where.fail('{"String": …} or {"Regex": …}', value);
}

export function normalizerFromJson(value: unknown, where: JsonPath): Normalizer {
  const obj: JsonObject = asObject(value, where);
  const type = obj.type;
  switch (type) {
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD':
      return new UnicodeNormalizer(type);
    case 'Lowercase':
      return new Lowercase();
    case 'StripAccents':
      return new StripAccents();
    case 'BertNormalizer':
      return new BertNormalizer(
        optional(obj, 'clean_text', where, asBoolean) ?? true,
        optional(obj, 'handle_chinese_chars', where, asBoolean) ?? true,
        optional(obj, 'strip_accents', where, asBoolean) ?? null,
        optional(obj, 'lowercase', where, asBoolean) ?? true,
      );
    case 'Replace':
      return new Replace(required(obj, 'pattern', where, readPattern), required(obj, 'content', where, asString));
    case 'Prepend':
      return new Prepend(required(obj, 'prepend', where, asString));
    case 'Strip':
      return new Strip(optional(obj, 'strip_left', where, asBoolean) ?? true, optional(obj, 'strip_right', where, asBoolean) ?? true);
    case 'Precompiled':
      return new Precompiled(PrecompiledCharsmap.fromBase64(required(obj, 'precompiled_charsmap', where, asString), where.file));
    case 'Sequence':
      return new NormalizerSequence(
        required(obj, 'normalizers', where, asArray).map((n, i) => normalizerFromJson(n, where.at('normalizers').at(i))),
      );
    default:
      return unknownType('normalizer', type, NORMALIZER_TYPES, where);
  }
}
