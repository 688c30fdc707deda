import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { matmulKernel, referenceMatmul, setMatmulKernel, useFastestKernel } from '../../src/kernels/index.js';
import { loadNativeKernel } from '../../src/kernels/native.js';
import { UnsupportedError } from '../../src/errors.js';
import { forgetPackedWeights, Linear, setWeightPrepacking } from '../../src/nn/linear.js';
import { backward, noGrad } from '../../src/tensor/autograd.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { SGD } from '../../src/train/optim.js';
import { randomArray } from '../helpers/random.js';
import { withVariant } from '../helpers/native.js';

// Both weight layouts, sizes off every tile (6×64, 6×16, 4×16) and more than
// one k block (KC = 768 on AVX-512, 256 elsewhere), decode-sized m too.
const CASES = [
  { m: 1, n: 37, k: 33, transB: true },
  { m: 5, n: 70, k: 300, transB: false },
  { m: 7, n: 130, k: 65, transB: true },
  { m: 64, n: 200, k: 800, transB: true },
  { m: 130, n: 65, k: 257, transB: false },
  { m: 128, n: 768, k: 768, transB: true },
];

describe('prepacked weights', () => {
  const native = loadNativeKernel().kernel;
  for (const isa of native?.supportedIsas() ?? []) {
    for (const threads of [1, 2]) {
      test(`native ${isa}, ${threads} thread(s): gemmPacked gives gemm's bits above 4 rows, the reference's sums at any m`, () => {
        assert.ok(native);
        withVariant(native, isa, threads, () => {
          for (const { m, n, k, transB } of CASES) {
            const a = randomArray(3 + m * k, m + k);
            const b = randomArray(5 + n * k, n * 3 + k);
            const expected = new Float32Array(2 + m * n);
            const actual = new Float32Array(2 + m * n).fill(7.5);
            native.gemm(a, 3, b, 5, expected, 2, m, n, k, transB);
            const packed = native.prepack(b, 5, n, k, transB);
            native.gemmPacked(a, 3, packed, actual, 2, m);
            assert.deepEqual(actual.subarray(0, 2), Float32Array.from([7.5, 7.5]), 'wrote before its offset');
            // Above 4 rows gemm runs the same packed loops; decode's few rows
            // stream B unpacked, summing in another order (checked below).
            if (m > 4) assert.deepEqual(actual.subarray(2), expected.subarray(2), `${m}×${n}×${k} transB=${transB}`);
            // And the reference agrees within f32 rounding.
            const ref = new Float32Array(m * n);
            referenceMatmul.gemm(a, 3, b, 5, ref, 0, m, n, k, transB);
            for (let i = 0; i < m * n; i++) assert.ok(Math.abs(ref[i] - actual[2 + i]) <= 4 * k * 2 ** -24 + 1e-6);
          }
        });
      });
    }
  }

  test('gemmPacked refuses a pack made for another variant or shape, and a foreign buffer, with typed errors', () => {
    if (!native) return;
    const isas = native.supportedIsas();
    const isaBefore = native.isa();
    const b = randomArray(40 * 30, 1);
    const a = randomArray(8 * 30, 2);
    const c = new Float32Array(8 * 40);
    const packed = native.prepack(b, 0, 40, 30, true);
    try {
      if (isas.length > 1) {
        native.setIsa(isas[isas.indexOf(isaBefore) === 0 ? 1 : 0]);
        assert.throws(() => native.gemmPacked(a, 0, packed, c, 0, 8), RangeError);
      }
    } finally {
      native.setIsa(isaBefore);
    }
    assert.throws(() => native.gemmPacked(a, 0, { ...packed, n: 41 }, c, 0, 8), RangeError);
    assert.throws(() => native.gemmPacked(a, 0, { n: 40, k: 30, kernel: 'blocked' }, c, 0, 8), UnsupportedError);
    assert.throws(() => native.prepack(b, 1, 40, 30, true), RangeError);
    assert.throws(() => native.gemmPacked(a, 1, packed, c, 0, 8), RangeError);
    // A copy keeps the header but not the panels' length or 64-byte alignment
    // (a truncated one was read past its end): only prepack's own buffer is used.
    const { buffer } = packed as typeof packed & { buffer: ArrayBuffer };
    for (const copy of [buffer.slice(0), buffer.slice(0, 100)]) {
      assert.throws(() => native.gemmPacked(a, 0, { ...packed, buffer: copy } as typeof packed, c, 0, 8), /^TypeError: gemmPacked: packed must be an ArrayBuffer returned by prepack/);
    }
    native.gemmPacked(a, 0, packed, c, 0, 8);
    const expected = new Float32Array(8 * 40);
    native.gemm(a, 0, b, 0, expected, 0, 8, 40, 30, true);
    assert.deepEqual(c, expected);
  });

  test('a Linear multiplies from its packed weight with the same bits, and never from a pack an optimizer step made stale', async () => {
    await useFastestKernel();
    const kernel = matmulKernel();
    if (!('prepack' in kernel)) return;
    const weight = new Tensor('f32', [48, 32], randomArray(48 * 32, 11));
    const layer = new Linear(weight, new Tensor('f32', [48], randomArray(48, 12)));
    const x = new Tensor('f32', [2, 6, 32], randomArray(2 * 6 * 32, 13)); // 12 rows: the packed path
    const plain = layer.forward(x).f32();
    const before = setWeightPrepacking(true);
    try {
      assert.deepEqual(layer.forward(x).f32(), plain);
      assert.deepEqual(layer.forward(x).f32(), plain, 'the second call reuses the pack');
      // Unfreeze, train one step (the weight changes in place), freeze again.
      weight.requireGrad(true);
      const loss = layer.forward(x);
      backward(loss, new Tensor('f32', loss.shape, new Float32Array(loss.size).fill(1)));
      new SGD(new Map([['weight', weight]])).step(0.1);
      weight.requireGrad(false);
      weight.grad = undefined;
      // The product from the updated weight, by the unpacked kernel (the same
      // loops above 4 rows, so the same bits) plus the bias, as Linear adds it.
      const fresh = new Float32Array(12 * 48);
      kernel.gemm(x.f32(), 0, weight.f32(), 0, fresh, 0, 12, 48, 32, true);
      const bias = layer.bias?.f32() ?? new Float32Array(48);
      for (let i = 0; i < fresh.length; i++) fresh[i] += bias[i % 48];
      assert.notDeepEqual(fresh, plain, 'the step changed the weight');
      assert.deepEqual(layer.forward(x).f32(), fresh, 'multiplied from a pack made before the step');
      // A weight that requires gradients is never packed, even under noGrad.
      weight.requireGrad(true);
      noGrad(() => assert.deepEqual(layer.forward(x).f32(), fresh));
      weight.requireGrad(false);
      // A kernel without prepack runs the plain product.
      const previous = setMatmulKernel(referenceMatmul);
      try {
        const y = layer.forward(x).f32();
        for (let i = 0; i < y.length; i++) assert.ok(Math.abs(y[i] - fresh[i]) < 1e-4);
      } finally {
        setMatmulKernel(previous);
      }
    } finally {
      setWeightPrepacking(before);
      forgetPackedWeights();
    }
  });
});
