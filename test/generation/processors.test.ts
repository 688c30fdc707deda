import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as P from '../../src/generation/processors.js';

const NEG = -Infinity;

/** Apply one processor to one row and return the result as a plain array. */
function run(p: P.LogitsProcessor, row: number[], ids: number[] = [0], promptLength = 1): number[] {
  const scores = [Float32Array.from(row)];
  p.apply(scores, { ids: [ids], curLen: ids.length, promptLength });
  return Array.from(scores[0]);
}

const logProbs = (probs: number[]) => probs.map(Math.log);
const kept = (row: number[]) => row.flatMap((v, i) => (v === NEG ? [] : [i]));

test('temperature divides the logits', () => {
  assert.deepEqual(run(P.temperature(0.5), [1, 2, -3]), [2, 4, -6]);
  assert.throws(() => P.temperature(0), /strictly positive/);
});

test('top-k keeps the k highest scores and every score tied with the k-th', () => {
  assert.deepEqual(run(P.topK(2), [1, 3, 2, 3]), [NEG, 3, NEG, 3]);
  assert.deepEqual(run(P.topK(3), [1, 3, 2, 3]), [NEG, 3, 2, 3]);
  assert.deepEqual(run(P.topK(1), [1, 3, 2, 3]), [NEG, 3, NEG, 3]);
  assert.deepEqual(kept(run(P.topK(1, 3), [1, 3, 2, 0])), [0, 1, 2]);
});

test('top-p keeps the smallest most-likely set whose probability reaches p', () => {
  const row = logProbs([0.5, 0.3, 0.15, 0.05]);
  // Ascending cumulative sums: 0.05, 0.20, 0.50, 1.00; HF removes those ≤ 1 − p.
  assert.deepEqual(kept(run(P.topP(0.8), row)), [0, 1]);
  assert.deepEqual(kept(run(P.topP(0.75), row)), [0, 1]);
  assert.deepEqual(kept(run(P.topP(0.85), row)), [0, 1, 2]);
  assert.deepEqual(kept(run(P.topP(0.4), row)), [0]);
  // min_tokens_to_keep protects the most likely tokens even when p is tiny.
  assert.deepEqual(kept(run(P.topP(0.1, 3), row)), [0, 1, 2]);
  // Ties: the ascending order keeps index order, so the lower ids are removed first.
  assert.deepEqual(kept(run(P.topP(0.5), [1, 1, 1, 1])), [2, 3]);
});

test('min-p drops tokens less likely than min_p times the top probability', () => {
  const row = logProbs([0.5, 0.3, 0.15, 0.05]);
  assert.deepEqual(kept(run(P.minP(0.2), row)), [0, 1, 2]); // floor 0.1
  assert.deepEqual(kept(run(P.minP(0.5), row)), [0, 1]); // floor 0.25
  assert.deepEqual(kept(run(P.minP(0.9, 2), row)), [0, 1]); // floor 0.45, but two are kept
});

test('typical-p keeps the tokens whose surprisal is closest to the entropy until the mass is reached', () => {
  // p = [0.5, 0.3, 0.15, 0.05]: entropy 1.1421 nats; |−ln p − H| = [0.449, 0.062, 0.755, 1.854],
  // so the typical order is 1, 0, 2, 3 with cumulative mass 0.30, 0.80, 0.95, 1.00.
  const row = logProbs([0.5, 0.3, 0.15, 0.05]);
  assert.deepEqual(kept(run(P.typicalP(0.5), row)), [0, 1]);
  assert.deepEqual(kept(run(P.typicalP(0.9), row)), [0, 1, 2]);
  assert.deepEqual(kept(run(P.typicalP(0.2), row)), [1]);
});

test('epsilon and eta cutoffs drop low-probability tokens', () => {
  const row = logProbs([0.5, 0.3, 0.15, 0.05]);
  assert.deepEqual(kept(run(P.epsilonCutoff(0.1), row)), [0, 1, 2]);
  // η floor = min(η, √η·e^−H) = min(0.2, 0.447·0.319) = 0.1427: drops 0.05 only.
  assert.deepEqual(kept(run(P.etaCutoff(0.2), row)), [0, 1, 2]);
});

test('repetition penalty divides positive and multiplies negative scores of every token seen, prompt included', () => {
  assert.deepEqual(run(P.repetitionPenalty(2), [2, 1, -1, 3], [0, 2, 2]), [1, 1, -2, 3]);
});

test('presence and frequency penalties count generated tokens only', () => {
  // prompt [5]; generated 1, 1, 2
  const out = run(P.presenceFrequencyPenalty(0.5, 0.25), [0, 0, 0, 0, 0, 0], [5, 1, 1, 2], 1);
  assert.deepEqual(out, [0, -1, -0.75, 0, 0, 0]);
});

test('no-repeat-ngram bans the token that would repeat an n-gram', () => {
  assert.deepEqual(run(P.noRepeatNgram(2), [0, 0, 0, 0], [1, 2, 3, 1]), [0, 0, NEG, 0]);
  assert.deepEqual(run(P.noRepeatNgram(3), [0, 0, 0, 0], [1, 2, 3, 1]), [0, 0, 0, 0]);
});

test('bad words: single tokens always, sequences when the row ends with their prefix; [eos] is not banned', () => {
  const p = P.noBadWords([[3], [1, 2], [4]], [4]);
  assert.deepEqual(run(p, [0, 0, 0, 0, 0], [0, 1]), [0, 0, NEG, NEG, 0]);
  assert.deepEqual(run(p, [0, 0, 0, 0, 0], [0, 0]), [0, 0, 0, NEG, 0]);
});

test('min length and min new tokens ban EOS until reached', () => {
  assert.deepEqual(run(P.minLength(3, [1]), [0, 5], [0, 0]), [0, NEG]);
  assert.deepEqual(run(P.minLength(3, [1]), [0, 5], [0, 0, 0]), [0, 5]);
  assert.deepEqual(run(P.minNewTokens(2, [1]), [0, 5], [0, 0, 0], 2), [0, NEG]);
  assert.deepEqual(run(P.minNewTokens(2, [1]), [0, 5], [0, 0, 0, 0], 2), [0, 5]);
});

test('forced EOS makes EOS exactly 0 and everything else −∞ at the last step; forced BOS at the first', () => {
  assert.deepEqual(run(P.forcedEos(4, [2]), [1, 2, 3], [0, 0, 0]), [NEG, NEG, 0]);
  assert.deepEqual(run(P.forcedEos(5, [2]), [1, 2, 3], [0, 0, 0]), [1, 2, 3]);
  assert.deepEqual(run(P.forcedBos(1), [1, 2, 3], [0]), [NEG, 0, NEG]);
});

test('invalid values become finite; suppressed tokens are −∞', () => {
  assert.deepEqual(run(P.removeInvalidValues(), [NaN, Infinity, NEG]), [0, Math.fround(3.4028234663852886e38), -Math.fround(3.4028234663852886e38)]);
  assert.deepEqual(run(P.suppressTokens([1]), [1, 2, 3]), [1, NEG, 3]);
  assert.deepEqual(run(P.suppressTokensAtBegin([0]), [1, 2, 3], [7], 1), [NEG, 2, 3]);
  assert.deepEqual(run(P.suppressTokensAtBegin([0]), [1, 2, 3], [7, 8], 1), [1, 2, 3]);
  assert.deepEqual(run(P.suppressTokensAtBegin([0], 1), [1, 2, 3], [7, 8], 1), [NEG, 2, 3]);
});

test('renormalize turns scores into log-probabilities', () => {
  const out = run(P.renormalize(), [0, 0]);
  assert.ok(Math.abs(out[0] - Math.log(0.5)) < 1e-6);
});

test('logSoftmaxAt gives logSoftmaxRow\'s value at the index, bit for bit, -Infinity scores included', () => {
  let state = 12345;
  const next = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 40;
  const row = Float32Array.from({ length: 5000 }, next);
  row[7] = -Infinity;
  const full = P.logSoftmaxRow(row);
  for (const i of [0, 7, 1234, 4999]) assert.equal(Object.is(P.logSoftmaxAt(row, i), full[i]), true, `index ${i}: ${P.logSoftmaxAt(row, i)} vs ${full[i]}`);
  // A real normaliser: the probabilities sum to one.
  let total = 0;
  for (let i = 0; i < row.length; i++) total += Math.exp(P.logSoftmaxAt(row, i));
  assert.ok(Math.abs(total - 1) < 1e-5);
});
