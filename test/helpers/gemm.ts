/**
 * Checking an f32 GEMM kernel against the reference: operands built once per
 * case, C written inside sentinels, and every element compared within the
 * rounding any f32 summation order may make.
 */
import assert from 'node:assert/strict';
import { referenceMatmul } from '../../src/kernels/reference.js';
import type { MatmulKernel } from '../../src/kernels/types.js';

export interface GemmCase {
  m: number;
  n: number;
  k: number;
  transB: boolean;
  // Element offsets of A, B and C inside their arrays.
  offsets: [number, number, number];
}

export interface GemmOperands {
  a: Float32Array;
  b: Float32Array;
  expected: Float32Array;
  // Per element of C, Σ_p |A[i][p]·B[p][j]|: the scale of the rounding error any f32 sum may make.
  magnitude: Float64Array;
}

/** What C's array holds outside C: any change there is a write out of bounds. */
export const SENTINEL = 12345.5;

/** Deterministic values in [-1, 1) for a length and seed. */
export type RandomArray = (length: number, seed: number) => Float32Array;

const operandCache = new WeakMap<GemmCase, GemmOperands>();

/** A and B (3 spare elements past each) from `random`, with the reference's C and its error scale; cached per case. */
export function gemmOperands(c: GemmCase, random: RandomArray): GemmOperands {
  const cached = operandCache.get(c);
  if (cached) return cached;
  const [aOff, bOff] = c.offsets;
  const a = random(aOff + c.m * c.k + 3, c.m * 7919 + c.k);
  const b = random(bOff + c.k * c.n + 3, c.n * 104729 + c.k);
  const expected = new Float32Array(c.m * c.n);
  referenceMatmul.gemm(a, aOff, b, bOff, expected, 0, c.m, c.n, c.k, c.transB);
  const magnitude = new Float64Array(c.m * c.n);
  for (let i = 0; i < c.m; i++) {
    for (let j = 0; j < c.n; j++) {
      let sum = 0;
      for (let p = 0; p < c.k; p++) {
        sum += Math.abs(a[aOff + i * c.k + p] * (c.transB ? b[bOff + j * c.k + p] : b[bOff + p * c.n + j]));
      }
      magnitude[i * c.n + j] = sum;
    }
  }
  const result = { a, b, expected, magnitude };
  operandCache.set(c, result);
  return result;
}

/** The kernel's C for the case, in an array of SENTINEL with 4 spare elements past C. */
export function runGemm(kernel: Pick<MatmulKernel, 'gemm'>, c: GemmCase, random: RandomArray): Float32Array {
  const { a, b } = gemmOperands(c, random);
  const [aOff, bOff, cOff] = c.offsets;
  const out = new Float32Array(cOff + c.m * c.n + 4).fill(SENTINEL);
  kernel.gemm(a, aOff, b, bOff, out, cOff, c.m, c.n, c.k, c.transB);
  return out;
}

/** Every element of C within f32 rounding of the reference, and nothing outside C written. */
export function assertGemmAgrees(kernel: Pick<MatmulKernel, 'gemm'>, c: GemmCase, random: RandomArray, name: string): void {
  const { expected, magnitude } = gemmOperands(c, random);
  const out = runGemm(kernel, c, random);
  const cOff = c.offsets[2];
  const label = `${name} m=${c.m} n=${c.n} k=${c.k} transB=${c.transB} offsets=${c.offsets.join(',')}`;
  for (let i = 0; i < cOff; i++) assert.equal(out[i], SENTINEL, `${label}: wrote before C at ${i}`);
  for (let i = cOff + c.m * c.n; i < out.length; i++) assert.equal(out[i], SENTINEL, `${label}: wrote after C at ${i}`);
  for (let e = 0; e < c.m * c.n; e++) {
    // Any f32 summation order stays within a few k·ε of Σ|a·b|; 1e-5 also
    // covers a fused multiply-add's single rounding and catches a dropped or doubled term.
    if (!(Math.abs(out[cOff + e] - expected[e]) <= 1e-5 * magnitude[e] + 1e-30)) {
      assert.fail(`${label}: C[${Math.floor(e / c.n)}][${e % c.n}] = ${out[cOff + e]}, reference ${expected[e]}`);
    }
  }
}
