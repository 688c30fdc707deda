import type { MatmulKernel } from './types.js';

/**
 * The formula itself, C[i][j] = Σ_p A[i][p] · B[p][j], with f64 accumulation.
 * Slow and obviously right: the yardstick every fast kernel is tested against.
 */
export const referenceMatmul: MatmulKernel = {
  name: 'reference',
  gemm(a, aOffset, b, bOffset, c, cOffset, m, n, k, transB) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) {
          const bv = transB ? b[bOffset + j * k + p] : b[bOffset + p * n + j];
          sum += a[aOffset + i * k + p] * bv;
        }
        c[cOffset + i * n + j] = sum;
      }
    }
  },
};
