import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Tensor, concat, gather } from '../../src/tensor/tensor.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/tensor/dtype.js';

test('permute moves axes and keeps every element', () => {
  const t = Tensor.from([
    [
      [0, 1, 2],
      [3, 4, 5],
    ],
  ]); // [1, 2, 3]
  const p = t.permute([2, 0, 1]); // [3, 1, 2]
  assert.deepEqual(p.shape, [3, 1, 2]);
  assert.deepEqual(p.toArray(), [[[0, 3]], [[1, 4]], [[2, 5]]]);
});

test('slice, concat and gather agree with their definitions', () => {
  const t = Tensor.from([
    [1, 2, 3],
    [4, 5, 6],
  ]);
  assert.deepEqual(t.slice(1, 1).toArray(), [
    [2, 3],
    [5, 6],
  ]);
  assert.deepEqual(t.slice(0, -1).toArray(), [[4, 5, 6]]);
  assert.deepEqual(concat([t, t.slice(1, 0, 1)], 1).toArray(), [
    [1, 2, 3, 1],
    [4, 5, 6, 4],
  ]);
  assert.deepEqual(gather(t, 1, [2, 0]).toArray(), [
    [3, 1],
    [6, 4],
  ]);
  assert.throws(() => gather(t, 0, [2]), /out of range/);
});

test('reshape infers one dimension and rejects a wrong element count', () => {
  const t = Tensor.zeros([2, 3, 4]);
  assert.deepEqual(t.reshape([6, -1]).shape, [6, 4]);
  assert.throws(() => t.reshape([5, -1]), /cannot reshape/);
});

test('f16 and bf16 round-trip the values they can represent and round to nearest even', () => {
  for (const v of [0, -0, 1, -2.5, 65504, 6.103515625e-5, 5.960464477539063e-8, Infinity]) {
    assert.equal(f16ToF32(f32ToF16(v)), v);
  }
  assert.equal(f16ToF32(f32ToF16(1 + 2 ** -11)), 1); // a tie rounds to even
  assert.equal(f16ToF32(f32ToF16(1e6)), Infinity);
  assert.ok(Number.isNaN(f16ToF32(f32ToF16(NaN))));
  for (const v of [0, 1, -3.140625, 1.5e38]) assert.equal(bf16ToF32(f32ToBf16(v)), Math.fround(bf16ToF32(f32ToBf16(v))));
  assert.equal(bf16ToF32(f32ToBf16(1 + 2 ** -8)), 1);
  assert.equal(bf16ToF32(f32ToBf16(1 + 3 * 2 ** -8)), 1 + 2 ** -6);
  const t = Tensor.f32([1.5, -2, 3.25]).to('bf16');
  assert.deepEqual(Array.from(t.f32()), [1.5, -2, 3.25]);
});
