import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  add,
  causalMask,
  embedding,
  erf,
  F32_MIN,
  gelu,
  geluTanh,
  layerNorm,
  linear,
  logSoftmax,
  matmul,
  mul,
  paddingMask,
  relu,
  rmsNorm,
  silu,
  softmax,
} from '../../src/ops/index.js';
import { Tensor } from '../../src/tensor/tensor.js';

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-6): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `index ${i}: ${actual[i]} vs ${expected[i]}`);
  }
}

test('matmul multiplies matrices, batches, broadcasts and transposes B', () => {
  const a = Tensor.from([
    [1, 2],
    [3, 4],
  ]);
  const b = Tensor.from([
    [5, 6],
    [7, 8],
  ]);
  close(matmul(a, b).f32(), [19, 22, 43, 50]);
  close(matmul(a, b, { transposeB: true }).f32(), [17, 23, 39, 53]);
  const batched = Tensor.from([[[1, 0], [0, 1]], [[2, 0], [0, 2]]]); // [2, 2, 2]
  const out = matmul(batched, b); // shared weight folds into one product
  assert.deepEqual(out.shape, [2, 2, 2]);
  close(out.f32(), [5, 6, 7, 8, 10, 12, 14, 16]);
  const perBatch = matmul(batched, Tensor.from([[[1], [1]], [[1], [-1]]])); // [2,2,1]
  close(perBatch.f32(), [1, 1, 2, -2]);
  const broadcast = matmul(Tensor.zeros([3, 2, 4, 5]), Tensor.zeros([2, 5, 6]));
  assert.deepEqual(broadcast.shape, [3, 2, 4, 6]);
  assert.throws(() => matmul(a, Tensor.zeros([3, 2])), /inner dimensions differ/);
});

test('linear is x·Wᵀ + b with W stored [out, in]', () => {
  const x = Tensor.from([[1, 2, 3]]);
  const w = Tensor.from([
    [1, 0, 0],
    [0, 1, 1],
  ]);
  close(linear(x, w, Tensor.f32([10, 20])).f32(), [11, 25]);
});

test('broadcast add and mul follow NumPy rules', () => {
  const x = Tensor.from([
    [1, 2, 3],
    [4, 5, 6],
  ]);
  close(add(x, Tensor.f32([10, 20, 30])).f32(), [11, 22, 33, 14, 25, 36]);
  close(mul(x, Tensor.from([[2], [3]])).f32(), [2, 4, 6, 12, 15, 18]);
  assert.throws(() => add(x, Tensor.f32([1, 2])), /do not broadcast/);
});

test('softmax is stable, sums to one, and leaves fully masked rows at zero', () => {
  const p = softmax(Tensor.from([[1000, 1001, 1002], [-Infinity, -Infinity, -Infinity]]));
  const e = [Math.exp(-2), Math.exp(-1), 1];
  const z = e[0] + e[1] + e[2];
  close(p.f32(), [e[0] / z, e[1] / z, e[2] / z, 0, 0, 0]);
  const lp = logSoftmax(Tensor.from([[1, 2, 3]]));
  close(lp.f32(), [Math.log(e[0] / z), Math.log(e[1] / z), Math.log(e[2] / z)], 1e-6);
  const masked = softmax(Tensor.from([[0, F32_MIN, 0]]));
  close(masked.f32(), [0.5, 0, 0.5]);
});

test('layerNorm and rmsNorm match their formulas', () => {
  const x = Tensor.from([[1, 2, 3, 4]]);
  const mean = 2.5;
  const variance = (1.5 ** 2 + 0.5 ** 2 + 0.5 ** 2 + 1.5 ** 2) / 4;
  const expected = [1, 2, 3, 4].map((v) => ((v - mean) / Math.sqrt(variance + 1e-5)) * 2 + 1);
  close(layerNorm(x, Tensor.f32([2, 2, 2, 2]), Tensor.f32([1, 1, 1, 1]), 1e-5).f32(), expected, 1e-6);
  const rms = Math.sqrt((1 + 4 + 9 + 16) / 4 + 1e-6);
  close(rmsNorm(x, Tensor.f32([1, 0.5, 1, 2]), 1e-6).f32(), [1 / rms, 1 / rms, 3 / rms, 8 / rms], 1e-6);
  assert.throws(() => layerNorm(x, Tensor.f32([1, 1, 1, 1]), Tensor.f32([1, 1, 1]), 1e-5), /layerNorm: bias .* does not match the last axis/);
  assert.throws(() => rmsNorm(x, Tensor.f32([1, 1]), 1e-6), /rmsNorm: weight .* does not match the last axis/);
});

test('activations agree with tabulated values', () => {
  // erf from Abramowitz & Stegun table 7.1
  close([erf(0.5), erf(1), erf(2), erf(-1.5)], [0.5204998778, 0.8427007929, 0.995322265, -0.9661051465], 1.5e-7);
  const x = Tensor.f32([-2, -0.5, 0, 1, 3]);
  close(relu(x).f32(), [0, 0, 0, 1, 3]);
  // GELU(x) = x·Φ(x); Φ(1) = 0.8413447461, Φ(−0.5) = 0.3085375387
  close(gelu(Tensor.f32([1, -0.5])).f32(), [0.8413447461, -0.5 * 0.3085375387], 1e-7);
  close(geluTanh(Tensor.f32([1])).f32(), [0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * 1.044715))], 1e-7);
  close(silu(Tensor.f32([1, -1])).f32(), [1 / (1 + Math.exp(-1)), -1 / (1 + Math.exp(1))], 1e-7);
});

test('embedding looks up rows and rejects ids outside the vocabulary', () => {
  const table = Tensor.from([
    [0, 0],
    [1, 1],
    [2, 2],
  ]);
  const out = embedding(table, Tensor.i32([2, 0, 1, 2], [2, 2]));
  assert.deepEqual(out.shape, [2, 2, 2]);
  close(out.f32(), [2, 2, 0, 0, 1, 1, 2, 2]);
  assert.throws(() => embedding(table, [3]), /outside the vocabulary of 3/);
});

test('masks hide padded keys and future positions', () => {
  const attention = Tensor.i32([1, 1, 0], [1, 3]);
  assert.deepEqual(Array.from(paddingMask(attention).f32()), [0, 0, F32_MIN].map(Math.fround));
  const causal = causalMask(2, 3, Tensor.i32([0, 1, 1], [1, 3]));
  // queries are the last two positions: row 0 sees keys ≤ 1, row 1 sees keys ≤ 2; key 0 is padding
  const m = Math.fround(F32_MIN);
  assert.deepEqual(Array.from(causal.f32()), [m, 0, m, m, 0, 0]);
});
