import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { Tokenizer } from '../../src/tokenizers/index.js';
import { trainByteLevelBpe, trainWordPiece } from '../../src/train/tokenizer-trainers.js';

const CORPUS = [
  'In the beginning God created the heaven and the earth.',
  'And the earth was without form, and void; and darkness was upon the face of the deep.',
  'And God said, Let there be light: and there was light.',
  'And God saw the light, that it was good: and God divided the light from the darkness.',
  'And God called the light Day, and the darkness he called Night. Naïve café — 42 days!',
];

interface HfEncoding {
  getIds(): number[];
}
interface HfTokenizer {
  encode(text: string): Promise<HfEncoding>;
}
const hf = createRequire(import.meta.url)('tokenizers') as { Tokenizer: { fromString(s: string): HfTokenizer } };

test('a trained byte-level BPE merges frequent pairs first and fills the vocabulary', () => {
  const { vocab, merges } = trainByteLevelBpe(CORPUS, { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
  assert.equal(vocab.get('<|endoftext|>'), 0);
  assert.equal(vocab.size, 300);
  assert.equal(merges.length, 300 - 257);
  // "t h" is this corpus's most frequent pair (17 times, then "h e" 15 and "Ġ t" 14).
  assert.deepEqual(merges[0], ['t', 'h']);
  assert.ok(vocab.has('Ġthe'));
});

test('the trained tokenizer.json round-trips through our loader and gives the same ids as Hugging Face tokenizers', async () => {
  const { json } = trainByteLevelBpe(CORPUS, { vocabSize: 320, specialTokens: ['<|endoftext|>'] });
  const ours = Tokenizer.fromJSON(json);
  const theirs = hf.Tokenizer.fromString(JSON.stringify(json));
  for (const text of [...CORPUS, 'Unseen words: zebra quartz, ünïcödé 🙂 and\nnew lines.']) {
    const ids = ours.encode(text).ids;
    assert.equal(ours.decode(ids), text);
    assert.deepEqual(ids, (await theirs.encode(text)).getIds(), text);
  }
});

test('a trained WordPiece vocabulary (BERT style) gives the same ids in our loader and in Hugging Face tokenizers', async () => {
  const { json, vocab } = trainWordPiece(CORPUS, { vocabSize: 140 });
  assert.deepEqual([...vocab.keys()].slice(0, 5), ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);
  assert.ok(vocab.has('the') && vocab.has('##e'));
  const ours = Tokenizer.fromJSON(json);
  const theirs = hf.Tokenizer.fromString(JSON.stringify(json));
  for (const text of [...CORPUS, 'Unseen: zebra quartz, Naïve CAFÉ!']) {
    const encoding = ours.encode(text);
    assert.deepEqual(encoding.ids, (await theirs.encode(text)).getIds(), text);
    assert.equal(encoding.ids[0], 2);
    assert.equal(encoding.ids.at(-1), 3);
  }
  assert.equal(ours.decode(ours.encode('And God said, Let there be light').ids, { skipSpecialTokens: true }), 'and god said, let there be light');
});
