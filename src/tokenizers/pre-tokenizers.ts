/**
 * Pre-tokenizers: split normalized text into words ("pre-tokens") that the model
 * then tokenizes one by one, e.g. GPT-2's regex, BERT's whitespace-and-punctuation
 * split, SentencePiece's `▁` marker.
 */
import { byteLevelSplit } from './byte-level.js';
import { asArray, asBoolean, asObject, asString, optional, required, unknownType, type JsonPath } from './json.js';
import { charMatches, regexMatches, type NormalizedString, type SplitBehavior } from './normalized-string.js';
import { readPattern } from './normalizers.js';
import { compileOnigPattern, ONIG_UNKNOWN } from './regex.js';
import { isBertPunctuation, isWhitespace } from './unicode.js';

export interface PreTokenizer {
  readonly type: string;
  /** The pieces one split becomes (possibly rewritten, e.g. to byte-level characters). */
  split(ns: NormalizedString): NormalizedString[];
}

/** GPT-2's word regex: contractions, letters, numbers, other symbols, whitespace runs. */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

export class ByteLevelPreTokenizer implements PreTokenizer {
  readonly type = 'ByteLevel';
  private readonly regex = compileOnigPattern(GPT2_PATTERN);
  constructor(
    readonly addPrefixSpace: boolean,
    readonly useRegex: boolean,
  ) {}

  split(ns: NormalizedString): NormalizedString[] {
    const text = this.addPrefixSpace && !ns.text.startsWith(' ') ? ns.prepend(' ') : ns;
    const words = this.useRegex ? text.splitBy(regexMatches(text.text, this.regex), 'Isolated') : [text];
    return words.map(byteLevelSplit);
  }
}

export class SplitPreTokenizer implements PreTokenizer {
  readonly type = 'Split';
  constructor(
    private readonly pattern: RegExp,
    private readonly behavior: SplitBehavior,
    private readonly invert: boolean,
  ) {}
  split(ns: NormalizedString): NormalizedString[] {
    return ns.splitBy(regexMatches(ns.text, this.pattern, this.invert), this.behavior);
  }
}

const NUMERIC = /^\p{N}$/u;

export type PrependScheme = 'always' | 'first' | 'never';

/** SentencePiece style: spaces become `▁`, a `▁` is prepended, and words start at each `▁`. */
export class MetaspacePreTokenizer implements PreTokenizer {
  readonly type = 'Metaspace';
  constructor(
    readonly replacement: string,
    readonly prependScheme: PrependScheme,
    readonly splitWords: boolean,
  ) {}

  split(ns: NormalizedString): NormalizedString[] {
    let out = ns.replaceAll(/ /g, this.replacement);
    const prepend =
      this.prependScheme === 'always' || (this.prependScheme === 'first' && out.originalStart(0) === 0);
    if (prepend && !out.text.startsWith(this.replacement)) out = out.prepend(this.replacement);
    if (!this.splitWords) return [out];
    return out.splitBy(charMatches(out.text, (c) => c === this.replacement), 'MergedWithNext');
  }
}

class CharSplit implements PreTokenizer {
  constructor(
    readonly type: string,
    private readonly test: (char: string) => boolean,
    private readonly behavior: SplitBehavior,
  ) {}
  split(ns: NormalizedString): NormalizedString[] {
    return ns.splitBy(charMatches(ns.text, this.test), this.behavior);
  }
}

// Rust compiles Whitespace's `\w+|[^\w\s]+` with the `regex` crate, whose `\w` is
// Alphabetic, marks, decimal digits, connector punctuation and joiners.
const REGEX_CRATE_WORD = '\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}';

/** Keeps runs of word characters and runs of other non-space characters (`\w+|[^\w\s]+`). */
class Whitespace implements PreTokenizer {
  readonly type = 'Whitespace';
  private readonly regex = new RegExp(
    `[[${REGEX_CRATE_WORD}]--${ONIG_UNKNOWN}]+|[[^${REGEX_CRATE_WORD}\\p{White_Space}]${ONIG_UNKNOWN}]+`,
    'gv',
  );
  split(ns: NormalizedString): NormalizedString[] {
    return ns.splitBy(regexMatches(ns.text, this.regex, true), 'Removed');
  }
}

class BertPreTokenizer implements PreTokenizer {
  readonly type = 'BertPreTokenizer';
  split(ns: NormalizedString): NormalizedString[] {
    return ns
      .splitBy(charMatches(ns.text, isWhitespace), 'Removed')
      .flatMap((word) => word.splitBy(charMatches(word.text, isBertPunctuation), 'Isolated'));
  }
}

class PreTokenizerSequence implements PreTokenizer {
  readonly type = 'Sequence';
  constructor(readonly steps: PreTokenizer[]) {}
  split(ns: NormalizedString): NormalizedString[] {
    let pieces = [ns];
    for (const step of this.steps) {
      const next: NormalizedString[] = [];
      for (const piece of pieces) for (const part of step.split(piece)) next.push(part);
      pieces = next;
    }
    return pieces;
  }
}

export const PRE_TOKENIZER_TYPES = [
  'ByteLevel', 'Whitespace', 'WhitespaceSplit', 'BertPreTokenizer', 'Metaspace', 'Split',
  'Punctuation', 'Digits', 'CharDelimiterSplit', 'Sequence',
] as const;

const BEHAVIORS: readonly SplitBehavior[] = ['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'];

function readBehavior(value: unknown, where: JsonPath): SplitBehavior {
  const name = asString(value, where);
  if (!(BEHAVIORS as readonly string[]).includes(name)) where.fail(`one of ${BEHAVIORS.join(', ')}`, value);
  return name as SplitBehavior;
}

/** Metaspace's prepend rule, from the new `prepend_scheme` or the old `add_prefix_space`. */
export function readPrependScheme(obj: Record<string, unknown>, where: JsonPath): PrependScheme {
  const scheme = obj.prepend_scheme;
  if (scheme === 'always' || scheme === 'first' || scheme === 'never') return scheme;
  if (scheme !== undefined && scheme !== null) where.at('prepend_scheme').fail('"always", "first" or "never"', scheme);
  const addPrefixSpace = obj.add_prefix_space;
  if (addPrefixSpace === undefined) return 'always';
  return asBoolean(addPrefixSpace, where.at('add_prefix_space')) ? 'always' : 'never';
}

export function readReplacement(obj: Record<string, unknown>, where: JsonPath): string {
  const replacement = obj.replacement ?? obj.str_rep ?? '▁';
  const text = asString(replacement, where.at('replacement'));
  if ([...text].length !== 1) where.at('replacement').fail('a single character', replacement);
  return text;
}

export function preTokenizerFromJson(value: unknown, where: JsonPath): PreTokenizer {
  const obj = asObject(value, where);
  switch (obj.type) {
    case 'ByteLevel':
      return new ByteLevelPreTokenizer(
        optional(obj, 'add_prefix_space', where, asBoolean) ?? true,
        optional(obj, 'use_regex', where, asBoolean) ?? true,
      );
    case 'Whitespace':
      return new Whitespace();
    case 'WhitespaceSplit':
      return new CharSplit('WhitespaceSplit', isWhitespace, 'Removed');
    case 'BertPreTokenizer':
      return new BertPreTokenizer();
    case 'Metaspace':
      return new MetaspacePreTokenizer(
        readReplacement(obj, where),
        readPrependScheme(obj, where),
        optional(obj, 'split', where, asBoolean) ?? true,
      );
    case 'Split':
      return new SplitPreTokenizer(
        required(obj, 'pattern', where, readPattern),
        required(obj, 'behavior', where, readBehavior),
        optional(obj, 'invert', where, asBoolean) ?? false,
      );
    case 'Punctuation':
      return new CharSplit('Punctuation', isBertPunctuation, optional(obj, 'behavior', where, readBehavior) ?? 'Isolated');
    case 'Digits': {
      const individual = optional(obj, 'individual_digits', where, asBoolean) ?? false;
      // Rust's `char::is_numeric`: any N* character, so `²` and `٣` count as digits.
      return new CharSplit('Digits', (c) => NUMERIC.test(c), individual ? 'Isolated' : 'Contiguous');
    }
    case 'CharDelimiterSplit': {
      const delimiter = required(obj, 'delimiter', where, asString);
      return new CharSplit('CharDelimiterSplit', (c) => c === delimiter, 'Removed');
    }
    case 'Sequence':
      return new PreTokenizerSequence(
        required(obj, 'pretokenizers', where, asArray).map((p, i) => preTokenizerFromJson(p, where.at('pretokenizers').at(i))),
      );
    default:
      return unknownType('pre-tokenizer', obj.type, PRE_TOKENIZER_TYPES, where);
  }
}
