/**
 * A 128-entry WordPiece tokenizer.json matching the hf-tiny bert fixture's
 * special ids (pad 0, unk 1, cls 2, sep 3, mask 4). Word k of the vocabulary is
 * `VOCAB[k]`, so a text made of those words encodes to chosen ids, e.g. the
 * fixture's own input rows.
 */
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Tokenizer } from '../../src/tokenizers/index.js';
import { BERT_FIXTURE, temporaryFolder } from './shared.js';

const WORDS = [
  'the', 'cat', 'dog', 'sat', 'on', 'mat', 'bird', 'sings', 'runs', 'fast', 'slow', 'red', 'blue', 'green', 'house', 'tree',
  'sun', 'moon', 'star', 'river', 'sea', 'fish', 'swims', 'king', 'queen', 'man', 'woman', 'city', 'paris', 'london', 'berlin',
  'france', 'germany', 'england', 'is', 'in', 'of', 'and', 'to', 'capital', 'eats', 'food', 'apple', 'banana', 'car', 'drives',
  'road', 'book', 'reads', 'music', 'plays', 'game', 'wins', 'loses', 'happy', 'sad', 'good', 'bad', 'day', 'night', 'rain',
  'snow', 'cold', 'hot', 'water', 'fire', 'earth', 'air', 'light', 'dark', 'big', 'small', 'old', 'new', 'young', 'search',
  'query', 'document', 'vector', 'model', 'text', 'word', 'token', 'layer', 'john', 'mary', 'works', 'at', 'google', 'york',
  'walk', 'talk', 'jump', 'play', 'un', 'able', 'ship', 'port', 'lake', 'hill', 'road2', 'field', 'stone', 'glass', 'former',
  'encoder', 'decoder', 'head', 'spring', 'summer', 'winter', '.', ',', '!', '?', '##s', '##ing', '##ed', '##er', '##ly', '##able', '##ness', '##ful',
];

export const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
export const VOCAB: readonly string[] = [...SPECIALS, ...WORDS];
if (VOCAB.length !== 128 || new Set(VOCAB).size !== 128) throw new Error(`tiny vocabulary has ${VOCAB.length} entries (${new Set(VOCAB).size} distinct)`);

/** The text whose WordPiece tokens are these ids (no special tokens; [MASK] stays literal). */
export function textOf(ids: readonly number[]): string {
  return ids.map((id) => VOCAB[id]).join(' ');
}

export function tinyTokenizerJson(): Record<string, unknown> {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [2], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [3], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(VOCAB.map((t, i) => [t, i])),
    },
  };
}

export const TOKENIZER_CONFIG = {
  do_lower_case: true,
  unk_token: '[UNK]',
  sep_token: '[SEP]',
  pad_token: '[PAD]',
  cls_token: '[CLS]',
  mask_token: '[MASK]',
  tokenizer_class: 'BertTokenizer',
};

export function tinyTokenizer(): Tokenizer {
  return Tokenizer.fromJSON(tinyTokenizerJson(), { config: TOKENIZER_CONFIG });
}

/**
 * A temporary model folder (removed after the test file): the given fixture's config.json and model.safetensors
 * (symlinked, never copied) beside the tiny tokenizer, plus any extra files.
 */
export async function tinyModelFolder(fixtureDir: string | null, extra: Record<string, string | Uint8Array> = {}): Promise<string> {
  const dir = await temporaryFolder('encoder');
  if (fixtureDir !== null) {
    for (const name of ['config.json', 'model.safetensors']) if (!(name in extra)) await symlink(join(fixtureDir, name), join(dir, name));
  }
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson()));
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(TOKENIZER_CONFIG));
  for (const [name, content] of Object.entries(extra)) {
    const path = join(dir, name);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
  }
  return dir;
}

/** The tiny BERT as a sentence-transformers folder: Transformer → mean Pooling → Normalize, with query/passage prompts. */
export async function sentenceEncoderFolder(): Promise<string> {
  return tinyModelFolder(BERT_FIXTURE, {
    'modules.json': JSON.stringify([
      { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
      { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
      { idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' },
    ]),
    '1_Pooling/config.json': JSON.stringify({ pooling_mode_mean_tokens: true }),
    'config_sentence_transformers.json': JSON.stringify({ prompts: { query: 'query ', passage: 'document ' } }),
  });
}
