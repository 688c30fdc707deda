import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { generateText, loadSeq2Seq, translationSetup } from '../../src/tasks/translate.js';
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
