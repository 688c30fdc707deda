/**
 * The readable int8 weight products, the yardsticks the native kernel is
 * checked against: each dot product of a row of A with an int8 weight row,
 * summed in f64, times that row's scale; and the same with A quantized per
 * row to int8 (integer sums, then the two scales).
 */
import type { Int8MatmulKernel } from './types.js';

/** n rounded to the nearest integer, ties to the even one (IEEE 754's default, C's nearbyint). */
function roundHalfEven(n: number): number {
  const r = Math.round(n);
  return Math.abs(n % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Row i of A [m, k] as int8 levels and its scale: scale = max|a| / 127 in f32,
 * level = a / scale rounded half to even (0 everywhere for a zero row).
 */
export function quantizeRow(a: Float32Array, offset: number, k: number, levels: Int32Array): number {
  let largest = 0;
  for (let p = 0; p < k; p++) largest = Math.max(largest, Math.abs(a[offset + p]));
  const scale = Math.fround(largest / 127);
  for (let p = 0; p < k; p++) {
    levels[p] = scale > 0 ? Math.max(-127, Math.min(127, roundHalfEven(Math.fround(a[offset + p] / scale)))) : 0;
  }
  return scale;
}

export const referenceInt8Matmul: Int8MatmulKernel = {
  name: 'reference-int8',
  gemmInt8(a, aOffset, q, qOffset, scales, c, cOffset, m, n, k) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) sum += a[aOffset + i * k + p] * q[qOffset + j * k + p];
        c[cOffset + i * n + j] = sum * scales[j];
      }
    }
  },
  gemmInt8Quantized(a, aOffset, q, qOffset, scales, c, cOffset, m, n, k) {
    const levels = new Int32Array(k);
    for (let i = 0; i < m; i++) {
      const rowScale = quantizeRow(a, aOffset + i * k, k, levels);
      for (let j = 0; j < n; j++) {
        let dot = 0; // an exact integer: |dot| ≤ 127² · k < 2⁵³
        for (let p = 0; p < k; p++) dot += levels[p] * q[qOffset + j * k + p];
        c[cOffset + i * n + j] = Math.fround(Math.fround(Math.fround(dot) * rowScale) * scales[j]);
      }
    }
  },
};
