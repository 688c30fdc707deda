/**
 * Components the seven fixture tokenizers do not use, checked beside Hugging Face's
 * Rust library (npm `tokenizers`): each variant is a fixture tokenizer.json with one
 * component swapped, loaded by both libraries, and run on the fixture case strings
 * (ids, tokens, type ids, offsets, decodes). Skipped when the binding is absent.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Tokenizer } from '../../src/tokenizers/index.js';
import { fixtureDir, readJsonLines, type Case } from './fixtures.js';

interface RustEncoding {
  getIds(): number[];
  getTokens(): string[];
  getOffsets(): number[][];
  getTypeIds(): number[];
}
interface RustTokenizer {
  encode(text: string, pair?: string | null, options?: { addSpecialTokens?: boolean }): Promise<RustEncoding>;
  decode(ids: number[], skipSpecialTokens: boolean): Promise<string>;
}
type Binding = { Tokenizer: { fromString(json: string): RustTokenizer } };

function loadBinding(): Binding | null {
  try {
    return createRequire(import.meta.url)('tokenizers') as Binding;
  } catch {
    return null;
  }
}
const binding = loadBinding();

type Json = Record<string, unknown>;

function fixtureJson(name: string): Json {
  return JSON.parse(readFileSync(join(fixtureDir(name), 'tokenizer.json'), 'utf8')) as Json;
}

function toCodePoints(text: string, offsets: [number, number][]): number[][] {
  return offsets.map(([start, end]) => [[...text.slice(0, start)].length, [...text.slice(0, end)].length]);
}

/** A variant: the base fixture, the change, and whether to compare offsets too. */
interface Variant {
  name: string;
  base: string;
  change: (json: Json) => void;
  /** Strings to encode besides the fixture cases. */
  extra?: string[];
}

const VARIANTS: Variant[] = [
  { name: 'BertProcessing', base: 'bert-base-uncased', change: (j) => (j.post_processor = { type: 'BertProcessing', sep: ['[SEP]', 102], cls: ['[CLS]', 101] }) },
  {
    name: 'RobertaProcessing with trimmed offsets',
    base: 'gpt2',
    change: (j) => (j.post_processor = { type: 'RobertaProcessing', sep: ['<|endoftext|>', 50256], cls: ['<|endoftext|>', 50256], trim_offsets: true, add_prefix_space: false }),
  },
  { name: 'ByteLevel with add_prefix_space', base: 'gpt2', change: (j) => (j.pre_tokenizer = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true }) },
  {
    name: 'NFD + Lowercase + StripAccents, Whitespace pre-tokenizer',
    base: 'bert-base-uncased',
    change: (j) => {
      j.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'Lowercase' }, { type: 'StripAccents' }] };
      j.pre_tokenizer = { type: 'Whitespace' };
    },
  },
  {
    name: 'NFKC + Strip, Punctuation + Digits + WhitespaceSplit',
    base: 'bert-base-uncased',
    change: (j) => {
      j.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Strip', strip_left: true, strip_right: true }, { type: 'Lowercase' }] };
      j.pre_tokenizer = {
        type: 'Sequence',
        pretokenizers: [{ type: 'Punctuation', behavior: 'Isolated' }, { type: 'Digits', individual_digits: true }, { type: 'WhitespaceSplit' }],
      };
      j.decoder = { type: 'WordPiece', prefix: '##', cleanup: false };
    },
  },
  ...(['MergedWithPrevious', 'MergedWithNext', 'Contiguous', 'Removed'] as const).map((behavior) => ({
    name: `Split on spaces, ${behavior}, then ByteLevel`,
    base: 'gpt2',
    change: (j: Json) =>
      (j.pre_tokenizer = {
        type: 'Sequence',
        pretokenizers: [
          { type: 'Split', pattern: { String: ' ' }, behavior, invert: false },
          { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
        ],
      }),
  })),
  {
    name: 'Split with invert and a Regex, digits Contiguous',
    base: 'qwen3',
    change: (j) =>
      (j.pre_tokenizer = {
        type: 'Sequence',
        pretokenizers: [
          { type: 'Split', pattern: { Regex: '\\p{L}+' }, behavior: 'Removed', invert: true },
          { type: 'Digits', individual_digits: false },
          { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
        ],
      }),
  },
  {
    name: 'Metaspace with prepend_scheme first and no split',
    base: 't5-small',
    change: (j) => {
      j.pre_tokenizer = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false };
      j.decoder = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false };
    },
  },
  {
    // Not on llama2: the binding (0.23) decodes its normalized special tokens differently from 0.22.
    name: 'Replace (regex) normalizer and Strip/Replace decoders',
    base: 'phi3-mini',
    change: (j) => {
      j.normalizer = { type: 'Sequence', normalizers: [{ type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] };
      j.decoder = { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 2, stop: 1 }] };
    },
  },
  {
    name: 'added tokens with lstrip and single_word',
    base: 'phi3-mini',
    change: (j) => {
      for (const t of j.added_tokens as Json[]) {
        if (t.content === '<|end|>') t.lstrip = true;
        if (t.content === '<|user|>') t.single_word = true;
      }
    },
  },
  { name: 'no decoder, no post-processor', base: 'qwen3', change: (j) => ((j.decoder = null), (j.post_processor = null)) },
  {
    name: 'added tokens with regex metacharacters and a literal Replace',
    base: 'gpt2',
    change: (j) => {
      const added = j.added_tokens as Json[];
      for (const [i, content] of ['<my-token>', '[a-z]+?', '(.*)|$^', 'end-of-text'].entries()) {
        added.push({ id: 50257 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: i % 2 === 0 });
      }
      j.normalizer = { type: 'Replace', pattern: { String: 'a-b' }, content: 'x.y' };
    },
    extra: ['hi <my-token> a-b [a-z]+? (.*)|$^end-of-text', '<my-token><my-token>[a-z]+'],
  },
];

const CASES_PER_VARIANT = 200;

describe('components beside the Rust binding', { skip: binding === null ? 'npm "tokenizers" is not installed' : false }, () => {
  for (const variant of VARIANTS) {
    it(`${variant.base} with ${variant.name}`, async () => {
      const json = fixtureJson(variant.base);
      variant.change(json);
      const ours = Tokenizer.fromJSON(json);
      const theirs = (binding as Binding).Tokenizer.fromString(JSON.stringify(json));
      const cases = readJsonLines<Case>(variant.base, 'cases.jsonl').slice(0, CASES_PER_VARIANT);
      const extra = ['Hello <|end|>  world', 'a<|user|>b <|user|> c', '  spaced   out  ', '１２３ ﬁne Ⅻ', ...(variant.extra ?? [])];
      const failures: string[] = [];
      for (const text of [...cases.map((c) => c.text), ...extra]) {
        const pair = 'and a second one 42';
        const [expected, expectedPair] = [await theirs.encode(text), await theirs.encode(text, pair)];
        const [actual, actualPair] = [ours.encode(text), ours.encode(text, { pair })];
        const got = {
          ids: actual.ids,
          tokens: actual.tokens,
          offsets: toCodePoints(text, actual.offsets),
          pairIds: actualPair.ids,
          pairTypeIds: actualPair.typeIds,
          pairTokens: actualPair.tokens,
          decoded: ours.decode(actualPair.ids, { cleanUpTokenizationSpaces: false }),
          skipped: ours.decode(actualPair.ids, { skipSpecialTokens: true, cleanUpTokenizationSpaces: false }),
        };
        const want = {
          ids: expected.getIds(),
          tokens: expected.getTokens(),
          offsets: expected.getOffsets(),
          pairIds: expectedPair.getIds(),
          pairTypeIds: expectedPair.getTypeIds(),
          pairTokens: expectedPair.getTokens(),
          decoded: await theirs.decode(expectedPair.getIds(), false),
          skipped: await theirs.decode(expectedPair.getIds(), true),
        };
        for (const key of Object.keys(want) as (keyof typeof want)[]) {
          if (JSON.stringify(got[key]) !== JSON.stringify(want[key])) {
            failures.push(`${JSON.stringify(text).slice(0, 60)} ${key}: ours ${JSON.stringify(got[key]).slice(0, 160)} rust ${JSON.stringify(want[key]).slice(0, 160)}`);
          }
        }
      }
      assert.deepEqual(failures.slice(0, 4), [], `${failures.length} differences`);
    });
  }
});

/** Small hand-made tokenizers for model options no fixture uses. */
function bytes(): [string, number][] {
  return Array.from({ length: 256 }, (_, b): [string, number] => [`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, -20]);
}

const TINY: { name: string; json: Json; texts: string[]; decodeIds?: number[][] }[] = [
  {
    name: 'BPE with continuing_subword_prefix, end_of_word_suffix and BPEDecoder',
    json: {
      model: {
        type: 'BPE',
        unk_token: '[UNK]',
        continuing_subword_prefix: '##',
        end_of_word_suffix: '</w>',
        fuse_unk: false,
        vocab: {
          '[UNK]': 0, a: 1, b: 2, c: 3, '##a': 4, '##b': 5, '##c': 6, 'a</w>': 7, 'b</w>': 8, 'c</w>': 9,
          '##a</w>': 10, '##b</w>': 11, '##c</w>': 12, ab: 13, 'abc</w>': 14, '##bc</w>': 15,
        },
        merges: ['a ##b', 'ab ##c</w>', '##b ##c</w>'],
      },
      pre_tokenizer: { type: 'Whitespace' },
      decoder: { type: 'BPEDecoder', suffix: '</w>' },
    },
    texts: ['abc', 'abcabc', 'cab', 'bc a', 'xyz abc', 'ax', 'a b c', ''],
  },
  {
    name: 'Unigram with byte_fallback and a Metaspace decoder',
    json: {
      model: {
        type: 'Unigram',
        unk_id: 0,
        byte_fallback: true,
        vocab: [['<unk>', 0], ...bytes(), ['▁', -1], ['a', -2], ['b', -2], ['ab', -1.5], ['▁a', -1.8], ['▁ab', -2.5]],
      },
      pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
      decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true }] },
    },
    texts: ['ab ba', 'é 😀 ab', 'abab bab', '  a  ', 'zz'],
  },
  {
    name: 'WordPiece with a short max_input_chars_per_word and a CTC decoder',
    json: {
      model: {
        type: 'WordPiece',
        unk_token: '[UNK]',
        continuing_subword_prefix: '##',
        max_input_chars_per_word: 5,
        vocab: { '[UNK]': 0, '<pad>': 1, '|': 2, h: 3, e: 4, l: 5, o: 6, '##e': 7, '##l': 8, '##o': 9, hello: 10 },
      },
      pre_tokenizer: { type: 'WhitespaceSplit' },
      decoder: { type: 'CTC', pad_token: '<pad>', word_delimiter_token: '|', cleanup: true },
    },
    texts: ['hello', 'hel lo', 'helloo', 'hhhhhh', 'xel'],
    decodeIds: [[3, 3, 1, 4, 5, 5, 1, 5, 6, 2, 3, 4, 5, 5, 6], [1, 1, 2, 2, 10]],
  },
];

describe('model options beside the Rust binding', { skip: binding === null ? 'npm "tokenizers" is not installed' : false }, () => {
  for (const tiny of TINY) {
    it(tiny.name, async () => {
      const ours = Tokenizer.fromJSON(tiny.json);
      const theirs = (binding as Binding).Tokenizer.fromString(JSON.stringify({ version: '1.0', added_tokens: [], normalizer: null, post_processor: null, ...tiny.json }));
      for (const text of tiny.texts) {
        const expected = await theirs.encode(text);
        const actual = ours.encode(text);
        assert.deepEqual(
          { ids: actual.ids, tokens: actual.tokens, offsets: toCodePoints(text, actual.offsets), decoded: ours.decode(actual.ids) },
          { ids: expected.getIds(), tokens: expected.getTokens(), offsets: expected.getOffsets(), decoded: await theirs.decode(expected.getIds(), false) },
          JSON.stringify(text),
        );
      }
      for (const ids of tiny.decodeIds ?? []) assert.equal(ours.decode(ids), await theirs.decode(ids, false));
    });
  }
});
