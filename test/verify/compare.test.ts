import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareSequences, compareTensors } from '../../src/verify/index.js';
import { Tensor } from '../../src/tensor/tensor.js';

test('compareTensors applies atol + rtol·|expected| and reports the largest difference', () => {
  const expected = Tensor.f32([1, 100, -3]);
  const ok = compareTensors('t', Tensor.f32([1.00005, 100.008, -3]), expected);
  assert.equal(ok.pass, true);
  assert.ok(Math.abs(ok.maxAbsDiff - 0.008) < 1e-5);
  const bad = compareTensors('t', Tensor.f32([1.0003, 100, -3]), expected);
  assert.equal(bad.pass, false);
  assert.match(bad.detail ?? '', /flat index 0/);
});

test('compareTensors requires −∞ where the reference has it and skips padded positions', () => {
  const expected = Tensor.f32([-Infinity, 1, 5, 9], [2, 2]);
  assert.equal(compareTensors('s', Tensor.f32([-Infinity, 1, 5, 9], [2, 2]), expected).pass, true);
  assert.equal(compareTensors('s', Tensor.f32([-1e30, 1, 5, 9], [2, 2]), expected).pass, false);
  const masked = compareTensors('s', Tensor.f32([0, 1, 0, 9], [2, 2]), expected, { axis: 1, mask: [[0, 1], [0, 1]] });
  assert.equal(masked.pass, true);
  assert.equal(masked.compared, 2);
  assert.equal(compareTensors('s', Tensor.f32([1, 2]), expected).pass, false);
});

test('compareSequences demands exact ids', () => {
  assert.equal(compareSequences('g', [[1, 2]], [[1, 2]]).pass, true);
  assert.equal(compareSequences('g', [[1, 3]], [[1, 2]]).pass, false);
  assert.equal(compareSequences('g', undefined, [[1, 2]]).pass, false);
});
