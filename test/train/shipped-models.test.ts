import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { Embedder } from '../../src/tasks/embed.js';
import { loadFolderTokenizer } from '../../src/tasks/encoder-folder.js';
import { generateText as generateTextCausal, loadFolderGenerator } from '../../src/tasks/generate.js';
import { generateText, loadSeq2Seq, translationSetup } from '../../src/tasks/translate.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { crossEntropy } from '../../src/train/losses.js';
import { numberToWords, sampleNumbers } from '../../src/train/recipes/number-words.js';
import { Random } from '../../src/train/random.js';
import { REPO } from '../helpers/shared.js';

const MODELS = join(REPO, 'models');

test('numbers-words → digits: the English words for numbers written out in tables', () => {
  assert.equal(numberToWords(0), 'zero');
  assert.equal(numberToWords(42), 'forty-two');
  assert.equal(numberToWords(100), 'one hundred');
  assert.equal(numberToWords(342105), 'three hundred forty-two thousand one hundred five');
  assert.equal(numberToWords(999999), 'nine hundred ninety-nine thousand nine hundred ninety-nine');
  assert.equal(numberToWords(1013), 'one thousand thirteen');
  assert.throws(() => numberToWords(1_000_000), /not an integer in \[0, 1000000\)/);
});

test('models/numbers-marian turns number words into digits through the translate job', async () => {
  const pipeline = await loadSeq2Seq(nodeFileSystem, join(MODELS, 'numbers-marian'));
  // Numbers drawn with another seed than the recipe's: mostly unseen in training.
  const numbers = sampleNumbers(24, new Random(99), new Set(), 4);
  const outputs = await generateText(pipeline, numbers.map(numberToWords), translationSetup(pipeline, undefined, undefined));
  const correct = outputs.filter((o, i) => o.text === String(numbers[i])).length;
  assert.ok(correct >= 22, `${correct}/24 correct: ${outputs.map((o, i) => `${numbers[i]}→${o.text}`).join(', ')}`);
});

/** Mean next-token loss of `text` under a causal LM folder's model. */
function lossOf(generator: Awaited<ReturnType<typeof loadFolderGenerator>>, text: string): number {
  const ids = generator.tokenizer.encode(text);
  const logits = generator.model.forward(Tensor.i32(ids, [1, ids.length])).logits;
  return crossEntropy(logits.slice(1, 0, ids.length - 1), Tensor.i32(ids.slice(1), [1, ids.length - 1])).f32()[0];
}

test('models/kjv-llama writes in the King James style: a real verse is far likelier than its words shuffled', async () => {
  const generator = await loadFolderGenerator(nodeFileSystem, join(MODELS, 'kjv-llama'));
  // Psalm 23:1-2 (public domain).
  const verse = 'The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures: he leadeth me beside the still waters.';
  const words = verse.split(' ');
  const shuffled = new Random(4).shuffle(words).join(' ');
  const real = lossOf(generator, verse);
  assert.ok(real < 4.5, `loss of a real verse ${real} (uniform over the vocabulary: ln 2048 = 7.6)`);
  assert.ok(real < lossOf(generator, shuffled) - 1, `real ${real} vs shuffled ${lossOf(generator, shuffled)}`);
  const [story] = generateTextCausal(generator, 'And it came to pass', { maxNewTokens: 24, doSample: false });
  // The continuation (without the prompt): words of the corpus, KJV function words among them.
  assert.ok(story.text.trim().split(/\s+/).length > 8, story.text);
  assert.match(story.text, /\b(the|and|of|unto|LORD|king)\b/);
});

test('models/kjv-bert finds a verse\'s neighbour: the next verse is nearer than unrelated verses', async () => {
  const dir = join(MODELS, 'kjv-bert');
  const embedder = await Embedder.fromFolder(nodeFileSystem, dir, await loadFolderTokenizer(nodeFileSystem, dir));
  const [query, next, ...unrelated] = embedder.embed([
    'The LORD is my shepherd; I shall not want.',
    'He maketh me to lie down in green pastures: he leadeth me beside the still waters.',
    'And the sons of Merari by their families were Mahli and Mushi.',
    'Now the rest of the acts of Asa, and all his might, are they not written in the book of the chronicles?',
    'And the coast went down from Tappuah unto the river Kanah; the goings out thereof were at the sea.',
  ]);
  const cosine = (a: Float32Array, b: Float32Array): number => a.reduce((s, x, i) => s + x * b[i], 0);
  for (const other of unrelated) assert.ok(cosine(query, next) > cosine(query, other), `${cosine(query, next)} vs ${cosine(query, other)}`);
});
