/**
 * Training tokenizers from a corpus, written as `tokenizer.json` in Hugging
 * Face's format, so the project's loader (src/tokenizers/) and Hugging Face's
 * `tokenizers` both read them.
 *
 * Byte-level BPE (Sennrich et al. 2016; Radford et al. 2019, GPT-2): split text
 * into words with GPT-2's regex, write each word's UTF-8 bytes as printable
 * characters, start from the 256 byte symbols and repeatedly merge the most
 * frequent adjacent pair into a new symbol until the vocabulary is full.
 */
import { ShapeError } from '../errors.js';
import { BYTE_TO_CHAR, toByteLevel } from '../tokenizers/byte-level.js';
import { JsonPath } from '../tokenizers/json.js';
import { NormalizedString } from '../tokenizers/normalized-string.js';
import { normalizerFromJson } from '../tokenizers/normalizers.js';
import { GPT2_PATTERN, preTokenizerFromJson } from '../tokenizers/pre-tokenizers.js';
import { compileOnigPattern } from '../tokenizers/regex.js';

export interface BpeTrainerOptions {
  /** Size of the final vocabulary, special tokens included. */
  vocabSize: number;
  /** Special tokens, given the first ids in order (e.g. `<|endoftext|>`). */
  specialTokens?: string[];
  /** A pair must occur at least this often to be merged (HF's min_frequency). */
  minFrequency?: number;
}

export interface TrainedBpe {
  /** The tokenizer.json object. */
  json: Record<string, unknown>;
  vocab: Map<string, number>;
  merges: [string, string][];
}

/** Word counts after GPT-2's pre-tokenization, each word in byte-level characters. */
export function countWords(texts: Iterable<string>): Map<string, number> {
  const regex = compileOnigPattern(GPT2_PATTERN);
  const counts = new Map<string, number>();
  for (const text of texts) {
    for (const match of text.matchAll(regex)) {
      const word = toByteLevel(match[0]);
      counts.set(word, (counts.get(word) ?? 0) + 1);
    }
  }
  return counts;
}

const pairKey = (a: string, b: string): string => `${a}\u0000${b}`;

/** Count adjacent symbol pairs over all words, weighted by word frequency. */
function countPairs(words: { symbols: string[]; count: number }[]): Map<string, number> {
  const pairs = new Map<string, number>();
  for (const w of words) {
    for (let i = 0; i + 1 < w.symbols.length; i++) {
      const key = pairKey(w.symbols[i], w.symbols[i + 1]);
      pairs.set(key, (pairs.get(key) ?? 0) + w.count);
    }
  }
  return pairs;
}

/** The most frequent pair and its count; ties go to the lexicographically smaller pair, so training is deterministic. */
function mostFrequentPair(pairs: Map<string, number>): [string | undefined, number] {
  let best: string | undefined;
  let bestCount = 0;
  for (const [key, count] of pairs) {
    if (count > bestCount || (count === bestCount && best !== undefined && key < best)) {
      best = key;
      bestCount = count;
    }
  }
  return [best, bestCount];
}

/** Replace every occurrence of the pair (a, b) in `symbols` by a+b, left to right. */
function mergePair(symbols: string[], a: string, b: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < symbols.length; i++) {
    if (i + 1 < symbols.length && symbols[i] === a && symbols[i + 1] === b) {
      out.push(a + b);
      i++;
    } else {
      out.push(symbols[i]);
    }
  }
  return out;
}

/** Train a GPT-2-style byte-level BPE tokenizer on `texts`. */
export function trainByteLevelBpe(texts: Iterable<string>, options: BpeTrainerOptions): TrainedBpe {
  const specials = options.specialTokens ?? [];
  const minFrequency = options.minFrequency ?? 2;
  const vocab = new Map<string, number>();
  for (const s of specials) vocab.set(s, vocab.size);
  // All 256 bytes are in the alphabet, so any text encodes (no unknown token).
  for (const c of [...BYTE_TO_CHAR].sort()) if (!vocab.has(c)) vocab.set(c, vocab.size);
  if (options.vocabSize < vocab.size) {
    throw new ShapeError(`trainByteLevelBpe: vocabSize ${options.vocabSize} is smaller than the ${vocab.size} byte symbols and special tokens`);
  }
  const words = [...countWords(texts)].map(([word, count]) => ({ symbols: [...word], count }));
  const merges: [string, string][] = [];
  while (vocab.size < options.vocabSize) {
    const [best, bestCount] = mostFrequentPair(countPairs(words));
    if (best === undefined || bestCount < minFrequency) break;
    const [a, b] = best.split('\u0000');
    merges.push([a, b]);
    vocab.set(a + b, vocab.size);
    for (const w of words) if (w.symbols.length > 1) w.symbols = mergePair(w.symbols, a, b);
  }
  return { json: byteLevelBpeJson(vocab, merges, specials), vocab, merges };
}

/** tokenizer.json for a byte-level BPE, laid out as Hugging Face's GPT-2 tokenizer. */
function byteLevelBpeJson(vocab: Map<string, number>, merges: [string, string][], specials: string[]): Record<string, unknown> {
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content) => ({
      id: vocab.get(content),
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

export interface WordPieceTrainerOptions {
  vocabSize: number;
  /** Special tokens, first ids in order; BERT's are [PAD], [UNK], [CLS], [SEP], [MASK]. */
  specialTokens?: string[];
  minFrequency?: number;
}

export const BERT_SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];

/** The normalizer and pre-tokenizer of a trained WordPiece tokenizer.json, as bert-base-uncased has them. */
const BERT_NORMALIZER = { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true };
const BERT_PRE_TOKENIZER = { type: 'BertPreTokenizer' };

/**
 * Word counts after the trained tokenizer's own BertNormalizer and
 * BertPreTokenizer, so the trainer counts the words encoding will see.
 */
function bertWordCounts(texts: Iterable<string>): Map<string, number> {
  const where = new JsonPath('trainWordPiece', '');
  const normalizer = normalizerFromJson(BERT_NORMALIZER, where.at('normalizer'));
  const preTokenizer = preTokenizerFromJson(BERT_PRE_TOKENIZER, where.at('pre_tokenizer'));
  const counts = new Map<string, number>();
  for (const text of texts) {
    for (const { text: w } of preTokenizer.split(normalizer.normalize(new NormalizedString(text)))) counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  return counts;
}

/**
 * Train a WordPiece vocabulary as Hugging Face's WordPieceTrainer does: BPE
 * over words split into characters, every character after the first marked
 * with the continuing-subword prefix `##`; a merge of a and ##b makes "ab", of
 * ##a and ##b makes "##ab". The vocabulary (specials, the alphabet in both
 * forms, then merges in order) is what WordPiece's greedy longest-match reads.
 */
export function trainWordPiece(texts: Iterable<string>, options: WordPieceTrainerOptions): { json: Record<string, unknown>; vocab: Map<string, number> } {
  const specials = options.specialTokens ?? BERT_SPECIAL_TOKENS;
  const minFrequency = options.minFrequency ?? 2;
  const words = [...bertWordCounts(texts)].map(([word, count]) => ({ symbols: [...word].map((c, i) => (i === 0 ? c : `##${c}`)), count }));
  const vocab = new Map<string, number>();
  for (const s of specials) vocab.set(s, vocab.size);
  const alphabet = new Set<string>();
  for (const w of words) for (const s of w.symbols) alphabet.add(s);
  for (const s of [...alphabet].sort()) vocab.set(s, vocab.size);
  while (vocab.size < options.vocabSize) {
    const [best, bestCount] = mostFrequentPair(countPairs(words));
    if (best === undefined || bestCount < minFrequency) break;
    const [a, b] = best.split('\u0000');
    const merged = a + b.slice(2);
    for (const w of words) if (w.symbols.length > 1) w.symbols = mergeWordPiece(w.symbols, a, b, merged);
    if (!vocab.has(merged)) vocab.set(merged, vocab.size);
  }
  return { json: wordPieceJson(vocab, specials), vocab };
}

function mergeWordPiece(symbols: string[], a: string, b: string, merged: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < symbols.length; i++) {
    if (i + 1 < symbols.length && symbols[i] === a && symbols[i + 1] === b) {
      out.push(merged);
      i++;
    } else {
      out.push(symbols[i]);
    }
  }
  return out;
}

/** tokenizer.json for a WordPiece vocabulary, laid out as Hugging Face's bert-base-uncased. */
function wordPieceJson(vocab: Map<string, number>, specials: string[]): Record<string, unknown> {
  const special = (token: string, typeId: number) => ({ SpecialToken: { id: token, type_id: typeId } });
  const sequence = (id: 'A' | 'B', typeId: number) => ({ Sequence: { id, type_id: typeId } });
  const template = (token: string) => ({ id: token, ids: [vocab.get(token)], tokens: [token] });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content) => ({ id: vocab.get(content), content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: BERT_NORMALIZER,
    pre_tokenizer: BERT_PRE_TOKENIZER,
    post_processor: {
      type: 'TemplateProcessing',
      single: [special('[CLS]', 0), sequence('A', 0), special('[SEP]', 0)],
      pair: [special('[CLS]', 0), sequence('A', 0), special('[SEP]', 0), sequence('B', 1), special('[SEP]', 1)],
      special_tokens: { '[CLS]': template('[CLS]'), '[SEP]': template('[SEP]') },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: Object.fromEntries(vocab) },
  };
}
