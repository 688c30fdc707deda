/**
 * Older model folders without `tokenizer.json`. Like transformers'
 * `convert_slow_tokenizer`, each layout is converted to the `tokenizer.json`
 * structure its fast tokenizer would have, then loaded by the one pipeline.
 */
import { FormatError } from '../errors.js';
import type { Json, JsonObject } from './json.js';
import { readSpecialTokens } from './special-tokens.js';
import { Tokenizer } from './tokenizer.js';

function specialAddedTokens(contents: (string | undefined)[], vocab: Map<string, number>, normalized: boolean): Json[] {
  const seen = new Set<string>();
  const out: Json[] = [];
  for (const content of contents) {
    if (content === undefined || seen.has(content)) continue;
    const id = vocab.get(content);
    if (id === undefined) continue;
    seen.add(content);
    out.push({ id, content, single_word: false, lstrip: false, rstrip: false, normalized, special: true });
  }
  return out.sort((a, b) => ((a as JsonObject).id as number) - ((b as JsonObject).id as number));
}

/** BERT's `vocab.txt`: one token per line, the line number is the id. */
export function wordPieceFromVocabTxt(text: string, config: JsonObject, specialTokensMap: JsonObject): Tokenizer {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const vocab = new Map<string, number>();
  lines.forEach((line, id) => {
    const token = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (!vocab.has(token)) vocab.set(token, id);
  });
  const names = readSpecialTokens(config, specialTokensMap);
  const unk = names.unk ?? '[UNK]';
  const cls = names.cls ?? '[CLS]';
  const sep = names.sep ?? '[SEP]';
  for (const [field, token] of [['cls_token', cls], ['sep_token', sep]] as const) {
    if (!vocab.has(token)) throw new FormatError('vocab.txt', `${field} ${JSON.stringify(token)} is not in the vocabulary`);
  }
  const lowercase = config.do_lower_case ?? true;
  const json: JsonObject = {
    added_tokens: specialAddedTokens([names.pad ?? '[PAD]', unk, cls, sep, names.mask ?? '[MASK]'], vocab, false),
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: config.tokenize_chinese_chars ?? true,
      strip_accents: config.strip_accents ?? null,
      lowercase,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } }],
      pair: [
        { SpecialToken: { id: cls, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: sep, type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: sep, type_id: 1 } },
      ],
      special_tokens: {
        [cls]: { id: cls, ids: [vocab.get(cls) as number], tokens: [cls] },
        [sep]: { id: sep, ids: [vocab.get(sep) as number], tokens: [sep] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: unk, continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: Object.fromEntries(vocab) },
  };
  return Tokenizer.fromJSON(json, { config, specialTokensMap, file: 'vocab.txt' });
}

/** GPT-2's `vocab.json` (token → id) and `merges.txt` (a `#version` line, then one `left right` merge per line). */
export function bpeFromVocabAndMerges(vocabJson: unknown, mergesText: string, config: JsonObject, specialTokensMap: JsonObject): Tokenizer {
  if (typeof vocabJson !== 'object' || vocabJson === null || Array.isArray(vocabJson)) {
    throw new FormatError('vocab.json', 'expected an object mapping tokens to ids');
  }
  const vocab = new Map(Object.entries(vocabJson as Record<string, number>));
  const merges = mergesText
    .split('\n')
    .map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line))
    .filter((line) => line !== '' && !line.startsWith('#version'));
  const names = readSpecialTokens(config, specialTokensMap);
  const addPrefixSpace = config.add_prefix_space ?? false;
  const json: JsonObject = {
    added_tokens: specialAddedTokens([names.bos, names.eos, names.unk, names.pad], vocab, true),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: addPrefixSpace, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, vocab: vocabJson as Json, merges },
  };
  const file = 'vocab.json + merges.txt';
  return Tokenizer.fromJSON(json, { config, specialTokensMap, file });
}
