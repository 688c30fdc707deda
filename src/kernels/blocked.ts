import type { MatmulKernel } from './types.js';

// Depth and width of a cache block: one block of B, KC x NC floats (64 KB),
// stays in L2 while every row of A passes over it.
const KC = 256;
const NC = 64;

/**
 * Cache-blocked matmul in plain TypeScript: the fallback where the native
 * kernel cannot load (browsers, unsupported platforms).
 *
 * Each 4x4 tile of C is summed in 16 local variables, which V8 keeps in
 * registers: every value loaded from A is used four times and every value from
 * B four times, instead of once each in the reference's inner loop. Sums are
 * carried in f64 within a KC block and rounded to f32 between blocks.
 */
export const blockedMatmul: MatmulKernel = {
  name: 'blocked',
  gemm(a, aOffset, b, bOffset, c, cOffset, m, n, k, transB) {
    if (k === 0) {
      c.fill(0, cOffset, cOffset + m * n);
      return;
    }
    // B element (p, j) is at bOffset + p * bRowStride + j * bColStride.
    const bRowStride = transB ? 1 : n;
    const bColStride = transB ? k : 1;
    for (let p0 = 0; p0 < k; p0 += KC) {
      const p1 = Math.min(k, p0 + KC);
      const accumulate = p0 > 0;
      for (let j0 = 0; j0 < n; j0 += NC) {
        const j1 = Math.min(n, j0 + NC);
        for (let i = 0; i < m; i += 4) {
          for (let j = j0; j < j1; j += 4) {
            if (i + 4 <= m && j + 4 <= j1) {
              tile4x4(a, aOffset + i * k, k, b, bOffset + j * bColStride, bRowStride, bColStride, c,
                cOffset + i * n + j, n, p0, p1, accumulate);
            } else if (j + 4 <= j1) {
              // The last m % 4 rows (all of them when m < 4, as in decoding).
              for (let r = i; r < m; r++) {
                tile1x4(a, aOffset + r * k, b, bOffset + j * bColStride, bRowStride, bColStride, c,
                  cOffset + r * n + j, p0, p1, accumulate);
              }
            } else {
              edgeTile(a, aOffset + i * k, k, b, bOffset + j * bColStride, bRowStride, bColStride, c,
                cOffset + i * n + j, n, Math.min(4, m - i), Math.min(4, j1 - j), p0, p1, accumulate);
            }
          }
        }
      }
    }
  },
};

/** C[4 x 4] (+)= A[4 x p0:p1] · B[p0:p1 x 4]; `a` and `b` point at the tile's first row and column. */
function tile4x4(
  a: Float32Array, a0: number, lda: number,
  b: Float32Array, b0: number, bRowStride: number, bColStride: number,
  c: Float32Array, c0: number, ldc: number,
  p0: number, p1: number, accumulate: boolean,
): void {
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
  let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
  let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
  let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
  const a1 = a0 + lda, a2 = a1 + lda, a3 = a2 + lda;
  const bj1 = bColStride, bj2 = 2 * bColStride, bj3 = 3 * bColStride;
  for (let p = p0; p < p1; p++) {
    const bp = b0 + p * bRowStride;
    const b0v = b[bp], b1v = b[bp + bj1], b2v = b[bp + bj2], b3v = b[bp + bj3];
    const x0 = a[a0 + p], x1 = a[a1 + p], x2 = a[a2 + p], x3 = a[a3 + p];
    c00 += x0 * b0v; c01 += x0 * b1v; c02 += x0 * b2v; c03 += x0 * b3v;
    c10 += x1 * b0v; c11 += x1 * b1v; c12 += x1 * b2v; c13 += x1 * b3v;
    c20 += x2 * b0v; c21 += x2 * b1v; c22 += x2 * b2v; c23 += x2 * b3v;
    c30 += x3 * b0v; c31 += x3 * b1v; c32 += x3 * b2v; c33 += x3 * b3v;
  }
  if (accumulate) {
    c00 += c[c0]; c01 += c[c0 + 1]; c02 += c[c0 + 2]; c03 += c[c0 + 3];
    const r1 = c0 + ldc, r2 = r1 + ldc, r3 = r2 + ldc;
    c10 += c[r1]; c11 += c[r1 + 1]; c12 += c[r1 + 2]; c13 += c[r1 + 3];
    c20 += c[r2]; c21 += c[r2 + 1]; c22 += c[r2 + 2]; c23 += c[r2 + 3];
    c30 += c[r3]; c31 += c[r3 + 1]; c32 += c[r3 + 2]; c33 += c[r3 + 3];
  }
  const r1 = c0 + ldc, r2 = r1 + ldc, r3 = r2 + ldc;
  c[c0] = c00; c[c0 + 1] = c01; c[c0 + 2] = c02; c[c0 + 3] = c03;
  c[r1] = c10; c[r1 + 1] = c11; c[r1 + 2] = c12; c[r1 + 3] = c13;
  c[r2] = c20; c[r2 + 1] = c21; c[r2 + 2] = c22; c[r2 + 3] = c23;
  c[r3] = c30; c[r3 + 1] = c31; c[r3 + 2] = c32; c[r3 + 3] = c33;
}

/** One row of C, four columns: C[1 x 4] (+)= A[1 x p0:p1] · B[p0:p1 x 4]. */
function tile1x4(
  a: Float32Array, a0: number,
  b: Float32Array, b0: number, bRowStride: number, bColStride: number,
  c: Float32Array, c0: number,
  p0: number, p1: number, accumulate: boolean,
): void {
  let c0v = 0, c1v = 0, c2v = 0, c3v = 0;
  const bj1 = bColStride, bj2 = 2 * bColStride, bj3 = 3 * bColStride;
  for (let p = p0; p < p1; p++) {
    const bp = b0 + p * bRowStride;
    const x = a[a0 + p];
    c0v += x * b[bp]; c1v += x * b[bp + bj1]; c2v += x * b[bp + bj2]; c3v += x * b[bp + bj3];
  }
  if (accumulate) {
    c0v += c[c0]; c1v += c[c0 + 1]; c2v += c[c0 + 2]; c3v += c[c0 + 3];
  }
  c[c0] = c0v; c[c0 + 1] = c1v; c[c0 + 2] = c2v; c[c0 + 3] = c3v;
}

/** The same for a partial tile at the bottom or right edge of C (rows, cols <= 4). */
function edgeTile(
  a: Float32Array, a0: number, lda: number,
  b: Float32Array, b0: number, bRowStride: number, bColStride: number,
  c: Float32Array, c0: number, ldc: number,
  rows: number, cols: number, p0: number, p1: number, accumulate: boolean,
): void {
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let sum = accumulate ? c[c0 + i * ldc + j] : 0;
      const bj = b0 + j * bColStride;
      for (let p = p0; p < p1; p++) sum += a[a0 + i * lda + p] * b[bj + p * bRowStride];
      c[c0 + i * ldc + j] = sum;
    }
  }
}
