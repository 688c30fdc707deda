import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { loadBertFolder } from '../../src/models/bert.js';
import { MaskFiller, topKIndices } from '../../src/tasks/fill-mask.js';
import { TextClassifier, softmaxRow } from '../../src/tasks/classify.js';
import { BERT_CLASSIFICATION_FIXTURE, BERT_FIXTURE } from './shared.js';
import { recorded, segments } from './fixture.js';
import { textOf, tinyTokenizer, VOCAB } from './tiny-tokenizer.js';

const close = (a: number, b: number, tol = 1e-5) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('fill-mask returns the top-k tokens of the recorded MLM logits at the mask position, with their softmax scores', async () => {
  const run = await recorded(BERT_FIXTURE);
  const filler = new MaskFiller(await loadBertFolder(nodeFileSystem, BERT_FIXTURE), tinyTokenizer());
  const logits = run.expected.get('logits')!; // [2, 12, 128]
  for (let b = 0; b < 2; b++) {
    const [a, pair] = segments(run, b);
    const [candidates] = filler.fill([textOf(a), textOf(pair)], { topK: 5 });
    const maskAt = run.inputs.input_ids[b].indexOf(4);
    const row = Array.from(logits.at(b).at(maskAt).f32());
    const probs = softmaxRow(row);
    const expected = topKIndices(row, 5);
    assert.deepEqual(candidates.map((c) => c.token), expected);
    candidates.forEach((c) => close(c.score, probs[c.token]));
    assert.equal(candidates[0].tokenStr, VOCAB[expected[0]]);
    const filled = [...a.map((id) => (id === 4 ? expected[0] : id)), ...pair].map((id) => VOCAB[id]);
    assert.equal(candidates[0].sequence.replace(/\s+/g, ' '), filled.join(' '));
  }
});

test('fill-mask with targets scores only those tokens, and refuses text without a mask', async () => {
  const run = await recorded(BERT_FIXTURE);
  const filler = new MaskFiller(await loadBertFolder(nodeFileSystem, BERT_FIXTURE), tinyTokenizer());
  const [a, pair] = segments(run, 0);
  const [candidates] = filler.fill([textOf(a), textOf(pair)], { targets: ['cat', 'dog', 'sea'] });
  const row = Array.from(run.expected.get('logits')!.at(0).at(2).f32());
  const ids = ['cat', 'dog', 'sea'].map((w) => VOCAB.indexOf(w));
  assert.deepEqual(candidates.map((c) => c.token), topKIndices(row, 3, ids));
  assert.throws(() => filler.fill('the cat sat'), /no mask token \[MASK\]/);
  assert.throws(() => filler.fill('the [MASK]', { targets: ['zebra'] }), /not a single token/);
});

test('classify gives the softmax of the recorded classification logits, labelled by id2label', async () => {
  const run = await recorded(BERT_CLASSIFICATION_FIXTURE);
  const classifier = await TextClassifier.fromFolder(nodeFileSystem, BERT_CLASSIFICATION_FIXTURE, tinyTokenizer());
  const logits = run.expected.get('logits')!; // [2, 3]
  const inputs = [0, 1].map((b) => segments(run, b)).map(([a, pair]) => [textOf(a), textOf(pair)] as [string, string]);
  const results = classifier.classifyBatch(inputs, { topK: 'all' });
  results.forEach((labels, b) => {
    const probs = softmaxRow(Array.from(logits.at(b).f32()));
    assert.equal(labels.length, 3);
    for (const { label, score } of labels) close(score, probs[Number(label.replace('LABEL_', ''))]);
    assert.ok(labels[0].score >= labels[1].score && labels[1].score >= labels[2].score);
  });
  const [best] = classifier.classify(inputs[0]);
  const probs0 = softmaxRow(Array.from(logits.at(0).f32()));
  assert.equal(best.label, `LABEL_${topKIndices(probs0, 1)[0]}`);
  const sigmoid = classifier.classify(inputs[1], { functionToApply: 'sigmoid', topK: 'all' });
  for (const { label, score } of sigmoid) close(score, 1 / (1 + Math.exp(-logits.get(1, Number(label.slice(6))))));
});

test('jobs refuse a model with the wrong head', async () => {
  const mlm = await loadBertFolder(nodeFileSystem, BERT_FIXTURE);
  assert.throws(() => new TextClassifier(mlm, tinyTokenizer()), /needs a \*ForSequenceClassification model; this one has the "masked-lm" head/);
});
