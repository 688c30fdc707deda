/**
 * The readable int8 weight product: each dot product of a row of A with an
 * int8 weight row, summed in f64, times that row's scale. The yardstick the
 * native kernel is checked against.
 */
import type { Int8MatmulKernel } from './types.js';

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
};
