import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ShapeError, UnsupportedError } from '../../src/errors.js';
import { referenceBf16Matmul } from '../../src/kernels/bf16.js';
import { referenceInt8Matmul } from '../../src/kernels/int8.js';
import { createWasmKernel, type WasmMatmulKernel } from '../../src/kernels/wasm/kernel.js';
import { f32ToBf16 } from '../../src/tensor/dtype.js';
import { WEIGHT_GEMM_CASES } from '../helpers/native.js';
import { randomArray } from '../helpers/random.js';

// The shared weight-product shapes, and two of this kernel's own: a decode
// weight copied in several slices, and a prefill large enough to run threaded.
const CASES = [
  ...WEIGHT_GEMM_CASES,
  { m: 2, n: 5003, k: 129, offsets: [1, 2, 3] },
  { m: 129, n: 600, k: 129, offsets: [0, 1, 0] },
] as const;

const SENTINEL = 12345.5;

/** Σ_p |a[i][p] · w[j][p]| for every element of C: the scale of any f32 sum's rounding. */
function magnitudes(a: Float32Array, ao: number, w: (j: number, p: number) => number, m: number, n: number, k: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) sum += Math.abs(a[ao + i * k + p] * w(j, p));
      out[i * n + j] = sum;
    }
  }
  return out;
}

function assertClose(label: string, actual: Float32Array, expected: Float32Array, co: number, bound: (e: number) => number): void {
  for (let i = 0; i < co; i++) assert.equal(actual[i], SENTINEL, `${label}: wrote before its offset`);
  for (let e = 0; e < expected.length - co; e++) {
    const diff = Math.abs(actual[co + e] - expected[co + e]);
    if (!(diff <= bound(e))) assert.fail(`${label} element ${e}: ${actual[co + e]} vs ${expected[co + e]}`);
  }
}

const bf16Weights = (length: number, seed: number): Uint16Array => Uint16Array.from(randomArray(length, seed), (v) => f32ToBf16(v));
const int8Weights = (length: number, seed: number): Int8Array => Int8Array.from(randomArray(length, seed), (v) => Math.round(v * 127));
const widenBf16 = (bits: number): number => new Float32Array(new Uint32Array([bits << 16]).buffer)[0];

for (const relaxed of [true, false]) {
  describe(`WebAssembly bf16 and int8 weight products, ${relaxed ? 'relaxed_madd' : 'mul + add'}`, () => {
    let kernel: WasmMatmulKernel;
    before(async () => {
      kernel = await createWasmKernel({ relaxed, maxThreads: 2 });
    });
    after(() => kernel.setThreads(1));

    for (const threads of [1, 2]) {
      test(`gemmBf16 and gemmBf16Rounded agree with the references (exact widening, f32 sums), ${threads} thread(s)`, () => {
        kernel.setThreads(threads);
        for (const { m, n, k, offsets: [ao, bo, co] } of CASES) {
          const a = randomArray(ao + m * k, m * 31 + k);
          const b = bf16Weights(bo + n * k, n * 17 + k);
          const magnitude = magnitudes(a, ao, (j, p) => widenBf16(b[bo + j * k + p]), m, n, k);
          for (const rounded of [false, true]) {
            const expected = new Float32Array(co + m * n);
            const actual = new Float32Array(co + m * n).fill(SENTINEL);
            if (rounded) {
              referenceBf16Matmul.gemmBf16Rounded(a, ao, b, bo, expected, co, m, n, k);
              kernel.gemmBf16Rounded(a, ao, b, bo, actual, co, m, n, k);
            } else {
              referenceBf16Matmul.gemmBf16(a, ao, b, bo, expected, co, m, n, k);
              kernel.gemmBf16(a, ao, b, bo, actual, co, m, n, k);
            }
            // Rounding A to bf16 moves each term by at most 2⁻⁸ of itself.
            const scale = rounded ? 1 + 2 ** -8 : 1;
            assertClose(`${rounded ? 'gemmBf16Rounded' : 'gemmBf16'} ${m}×${n}×${k}`, actual, expected, co, (e) => 1e-5 * scale * magnitude[e] + 1e-30);
          }
        }
      });

      test(`gemmInt8 agrees with the reference and gemmInt8Quantized gives its bits, ${threads} thread(s)`, () => {
        kernel.setThreads(threads);
        for (const { m, n, k, offsets: [ao, qo, co] } of CASES) {
          const a = randomArray(ao + m * k, m * 31 + k);
          const q = int8Weights(qo + n * k, n * 17 + k);
          const scales = randomArray(n, 5).map((s) => Math.abs(s) / 127);
          const magnitude = magnitudes(a, ao, (j, p) => q[qo + j * k + p] * scales[j], m, n, k);
          const expected = new Float32Array(co + m * n);
          const actual = new Float32Array(co + m * n).fill(SENTINEL);
          referenceInt8Matmul.gemmInt8(a, ao, q, qo, scales, expected, co, m, n, k);
          kernel.gemmInt8(a, ao, q, qo, scales, actual, co, m, n, k);
          assertClose(`gemmInt8 ${m}×${n}×${k}`, actual, expected, co, (e) => 1e-5 * magnitude[e] + 1e-30);
          const exact = new Float32Array(co + m * n);
          const quantized = new Float32Array(co + m * n).fill(SENTINEL);
          referenceInt8Matmul.gemmInt8Quantized(a, ao, q, qo, scales, exact, co, m, n, k);
          kernel.gemmInt8Quantized(a, ao, q, qo, scales, quantized, co, m, n, k);
          assert.deepEqual(quantized.subarray(co), exact.subarray(co), `gemmInt8Quantized ${m}×${n}×${k}`);
          assert.ok(quantized.subarray(0, co).every((v) => v === SENTINEL), `gemmInt8Quantized ${m}×${n}×${k}: wrote before its offset`);
        }
      });
    }

    for (const threads of [1, 2]) {
      test(`resident bf16 and int8 weights (gemmBf16Packed, gemmInt8Packed) give gemmBf16's and gemmInt8's bits at every m, ${threads} thread(s)`, () => {
        kernel.setThreads(threads);
        const held = kernel.residentBytes();
        for (const { m, n, k, offsets: [ao, bo, co] } of CASES) {
          const a = randomArray(ao + m * k, m * 31 + k);
          const b = bf16Weights(bo + n * k, n * 17 + k);
          const q = int8Weights(bo + n * k, n * 13 + k);
          const scales = randomArray(n, 5).map((s) => Math.abs(s) / 127);
          const products: [string, (c: Float32Array) => void, (c: Float32Array) => void][] = [
            ['bf16', (c) => kernel.gemmBf16(a, ao, b, bo, c, co, m, n, k), (c) => kernel.gemmBf16Packed(a, ao, kernel.prepackBf16(b, bo, n, k), c, co, m)],
            ['int8', (c) => kernel.gemmInt8(a, ao, q, bo, scales, c, co, m, n, k), (c) => kernel.gemmInt8Packed(a, ao, kernel.prepackInt8(q, bo, scales, n, k), c, co, m)],
          ];
          for (const [dtype, copied, resident] of products) {
            const expected = new Float32Array(co + m * n + 2).fill(SENTINEL);
            const actual = new Float32Array(co + m * n + 2).fill(SENTINEL);
            copied(expected);
            resident(actual);
            assert.deepEqual(actual, expected, `${dtype} ${m}×${n}×${k}`);
          }
        }
        assert.ok(kernel.residentBytes() > held, 'nothing stayed resident');
      });
    }

    test('k = 0 gives zeros for every weight dtype', () => {
      const scales = new Float32Array([1, 2]);
      for (const product of [
        (c: Float32Array) => kernel.gemmBf16(new Float32Array(0), 0, new Uint16Array(0), 0, c, 0, 3, 2, 0),
        (c: Float32Array) => kernel.gemmInt8(new Float32Array(0), 0, new Int8Array(0), 0, scales, c, 0, 3, 2, 0),
        (c: Float32Array) => kernel.gemmInt8Quantized(new Float32Array(0), 0, new Int8Array(0), 0, scales, c, 0, 3, 2, 0),
      ]) {
        const c = new Float32Array(6).fill(SENTINEL);
        product(c);
        assert.deepEqual([...c], [0, 0, 0, 0, 0, 0]);
      }
    });
  });
}

describe('WebAssembly weight product arguments', () => {
  test('an f32 weight, a Uint8Array weight, too few scales and a k whose int32 sums could overflow are typed errors', async () => {
    const kernel = await createWasmKernel({ maxThreads: 1 });
    const a = new Float32Array(6);
    const c = new Float32Array(4);
    const f32 = new Float32Array(6) as unknown as Uint16Array;
    assert.throws(() => kernel.gemmBf16(a, 0, f32, 0, c, 0, 2, 2, 3), /B must be a Uint16Array/);
    assert.throws(() => kernel.gemmBf16(a, 0, new Uint16Array(5), 0, c, 0, 2, 2, 3), ShapeError);
    const bytes = new Uint8Array(6) as unknown as Int8Array;
    assert.throws(() => kernel.gemmInt8(a, 0, bytes, 0, new Float32Array(2), c, 0, 2, 2, 3), /Q must be a Int8Array/);
    assert.throws(() => kernel.gemmInt8(a, 0, new Int8Array(6), 0, new Float32Array(1), c, 0, 2, 2, 3), /scales must be a Float32Array of at least n = 2/);
    const packed = kernel.prepackBf16(new Uint16Array(6), 0, 2, 3);
    assert.throws(() => kernel.gemmInt8Packed(a, 0, packed, c, 0, 2), /gemmInt8Packed: the weight was packed as bf16, this product takes int8 weights/);
    assert.throws(() => kernel.gemmPacked(a, 0, packed, c, 0, 2), UnsupportedError);
    assert.throws(() => kernel.prepackInt8(new Int8Array(6), 0, new Float32Array(1), 2, 3), /scales must be a Float32Array of at least n = 2/);
    assert.throws(() => kernel.prepackBf16(new Uint16Array(5), 0, 2, 3), ShapeError);
    const k = 65537;
    assert.throws(() => kernel.gemmInt8Quantized(new Float32Array(k), 0, new Int8Array(k), 0, new Float32Array(1), new Float32Array(1), 0, 1, 1, k),
      /k = 65537/);
  });
});
