import assert from 'node:assert/strict';
import { test } from 'node:test';
import { argmax, sample, seededRandom } from '../../src/generation/samplers.js';

test('argmax takes the first of equal maxima, as torch.argmax', () => {
  assert.equal(argmax([1, 3, 3, 2]), 1);
});

test('a seeded generator repeats its sequence and differs across seeds', () => {
  const a = seededRandom(42);
  const b = seededRandom(42);
  const c = seededRandom(43);
  const xs = Array.from({ length: 5 }, () => a());
  assert.deepEqual(Array.from({ length: 5 }, () => b()), xs);
  assert.notDeepEqual(Array.from({ length: 5 }, () => c()), xs);
  assert.ok(xs.every((x) => x >= 0 && x < 1));
});

test('sampling follows softmax(scores) and never draws a −∞ token', () => {
  const random = seededRandom(1);
  const row = Float32Array.from([Math.log(0.7), Math.log(0.3), -Infinity]);
  const counts = [0, 0, 0];
  for (let i = 0; i < 20000; i++) counts[sample(row, random)]++;
  assert.equal(counts[2], 0);
  assert.ok(Math.abs(counts[0] / 20000 - 0.7) < 0.015, `frequency of token 0: ${counts[0] / 20000}`);
});
