import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseModelConfig, type BertConfig } from '../../src/io/config.js';
import type { EncoderInputs, EncoderModel } from '../../src/models/bert.js';
import { TokenClassifier, type TokenEntity } from '../../src/tasks/token-classification.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { BERT_FIXTURE } from './shared.js';
import { tinyTokenizer, VOCAB } from './tiny-tokenizer.js';

const TEXT = 'Johns walking at google.';
// Per real token: probabilities over [O, B-PER, I-PER, B-LOC, I-LOC].
const PROBS = [
  [0.05, 0.8, 0.05, 0.05, 0.05], // john
  [0.1, 0.1, 0.7, 0.05, 0.05], // ##s
  [0.6, 0.1, 0.1, 0.1, 0.1], // walk
  [0.05, 0.0125, 0.0125, 0.9, 0.025], // ##ing
  [0.9, 0.025, 0.025, 0.025, 0.025], // at
  [0.1, 0.05, 0.05, 0.7, 0.1], // google
  [0.96, 0.01, 0.01, 0.01, 0.01], // .
];

/** A token-classification model whose logits are log(PROBS), so softmax gives PROBS back exactly enough. */
async function scriptedModel(): Promise<EncoderModel> {
  const raw = JSON.parse(await readFile(join(BERT_FIXTURE, 'config.json'), 'utf8')) as Record<string, unknown>;
  const config = parseModelConfig({ ...raw, architectures: ['BertForTokenClassification'], id2label: { 0: 'O', 1: 'B-PER', 2: 'I-PER', 3: 'B-LOC', 4: 'I-LOC' } }) as BertConfig;
  return {
    config,
    head: 'token-classification',
    get bert(): never {
      throw new Error('not used');
    },
    forward(inputs: EncoderInputs) {
      assert.deepEqual(Array.from(inputs.inputIds.data), [2, ...['john', '##s', 'walk', '##ing', 'at', 'google', '.'].map((t) => VOCAB.indexOf(t)), 3]);
      const rows = [[0, 0, 0, 0, 0], ...PROBS.map((p) => p.map(Math.log)), [0, 0, 0, 0, 0]];
      const logits = Tensor.f32(rows.flat(), [1, rows.length, 5]);
      return { lastHiddenState: Tensor.zeros([1, rows.length, 32]), hiddenStates: [], attentions: [], logits };
    },
  };
}

function rounded(entities: TokenEntity[]): TokenEntity[] {
  return entities.map((e) => ({ ...e, score: Math.round(e.score * 1e6) / 1e6 }));
}

test('aggregation "none" lists every non-O token with its label, score, index and offsets', async () => {
  const classifier = new TokenClassifier(await scriptedModel(), tinyTokenizer());
  assert.deepEqual(rounded(classifier.classify(TEXT)), [
    { entity: 'B-PER', score: 0.8, index: 1, word: 'john', start: 0, end: 4 },
    { entity: 'I-PER', score: 0.7, index: 2, word: '##s', start: 4, end: 5 },
    { entity: 'B-LOC', score: 0.9, index: 4, word: '##ing', start: 10, end: 13 },
    { entity: 'B-LOC', score: 0.7, index: 6, word: 'google', start: 17, end: 23 },
  ]);
});

test('aggregation "simple" groups tokens by B-/I- tags and averages their scores', async () => {
  const classifier = new TokenClassifier(await scriptedModel(), tinyTokenizer());
  assert.deepEqual(rounded(classifier.classify(TEXT, { aggregationStrategy: 'simple' })), [
    { entityGroup: 'PER', score: 0.75, word: 'johns', start: 0, end: 5 },
    { entityGroup: 'LOC', score: 0.9, word: '##ing', start: 10, end: 13 },
    { entityGroup: 'LOC', score: 0.7, word: 'google', start: 17, end: 23 },
  ]);
});

test('aggregation "first", "max" and "average" merge word pieces before grouping, as HF pipelines do', async () => {
  const classifier = new TokenClassifier(await scriptedModel(), tinyTokenizer());
  assert.deepEqual(rounded(classifier.classify(TEXT, { aggregationStrategy: 'first' })), [
    { entityGroup: 'PER', score: 0.8, word: 'johns', start: 0, end: 5 },
    { entityGroup: 'LOC', score: 0.7, word: 'google', start: 17, end: 23 },
  ]);
  assert.deepEqual(rounded(classifier.classify(TEXT, { aggregationStrategy: 'max' })), [
    { entityGroup: 'PER', score: 0.8, word: 'johns', start: 0, end: 5 },
    { entityGroup: 'LOC', score: 0.9, word: 'walking', start: 6, end: 13 },
    { entityGroup: 'LOC', score: 0.7, word: 'google', start: 17, end: 23 },
  ]);
  assert.deepEqual(rounded(classifier.classify(TEXT, { aggregationStrategy: 'average' })), [
    { entityGroup: 'PER', score: 0.45, word: 'johns', start: 0, end: 5 },
    { entityGroup: 'LOC', score: 0.5, word: 'walking', start: 6, end: 13 },
    { entityGroup: 'LOC', score: 0.7, word: 'google', start: 17, end: 23 },
  ]);
  assert.deepEqual(
    classifier.classify(TEXT, { aggregationStrategy: 'first', ignoreLabels: [] }).map((e) => e.entityGroup),
    ['PER', 'O', 'LOC', 'O'],
  );
  assert.throws(() => classifier.classify(TEXT, { aggregationStrategy: 'longest' as never }), /aggregation strategy must be one of none, simple, first, average, max/);
});
