/**
 * The readable bf16 weight products: each weight widened to f32 (exact, bf16
 * is the top half of an f32) and every dot product summed in f64, with the
 * activations as they are or rounded to bf16 first; the yardsticks the native
 * kernel is checked against.
 */
import { f32ToBf16 } from '../tensor/dtype.js';
import type { Bf16MatmulKernel } from './types.js';

const wide = new Float32Array(1);
const wideBits = new Uint32Array(wide.buffer);

function widen(bits: number): number {
  wideBits[0] = bits << 16;
  return wide[0];
}

export const referenceBf16Matmul: Bf16MatmulKernel = {
  name: 'reference-bf16',
  gemmBf16(a, aOffset, b, bOffset, c, cOffset, m, n, k) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) sum += a[aOffset + i * k + p] * widen(b[bOffset + j * k + p]);
        c[cOffset + i * n + j] = sum;
      }
    }
  },
  gemmBf16Rounded(a, aOffset, b, bOffset, c, cOffset, m, n, k) {
    const rounded = new Float32Array(k);
    for (let i = 0; i < m; i++) {
      for (let p = 0; p < k; p++) rounded[p] = widen(f32ToBf16(a[aOffset + i * k + p]));
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) sum += rounded[p] * widen(b[bOffset + j * k + p]);
        c[cOffset + i * n + j] = sum;
      }
    }
  },
};
