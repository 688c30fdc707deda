import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { referenceInt8Matmul, useFastestKernel } from '../../src/kernels/index.js';
import { loadNativeKernel } from '../../src/kernels/native.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { Gpt2Model, parseGpt2Config } from '../../src/models/gpt2.js';
import { embeddingInt8, Int8Matrix, linearInt8, setInt8Activations } from '../../src/nn/int8.js';
import { Linear } from '../../src/nn/linear.js';
import { Weights } from '../../src/nn/weights.js';
import { UnsupportedError } from '../../src/errors.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { randomArray } from '../helpers/random.js';
import { SHARED } from '../helpers/shared.js';
import { withVariant, WEIGHT_GEMM_CASES as CASES } from '../helpers/native.js';

describe('int8 weight kernels', () => {
  const native = loadNativeKernel().kernel;
  for (const isa of native?.supportedIsas() ?? []) {
    test(`native ${isa} gemmInt8 agrees with the reference`, () => {
      assert.ok(native);
      withVariant(native, isa, undefined, () => {
        for (const { m, n, k, offsets } of CASES) {
          const [ao, qo, co] = offsets;
          const a = randomArray(ao + m * k, m * 31 + k);
          const q = Int8Array.from(randomArray(qo + n * k, n * 17 + k), (v) => Math.round(v * 127));
          const scales = randomArray(n, 5).map((s) => Math.abs(s) / 127);
          const expected = new Float32Array(co + m * n);
          const actual = new Float32Array(co + m * n).fill(12345.5);
          referenceInt8Matmul.gemmInt8(a, ao, q, qo, scales, expected, co, m, n, k);
          native.gemmInt8(a, ao, q, qo, scales, actual, co, m, n, k);
          for (let i = 0; i < co; i++) assert.equal(actual[i], 12345.5, `${isa} ${m}×${n}×${k}: wrote before its offset`);
          for (let i = 0; i < m * n; i++) {
            // Terms are at most 127 · scale ≤ 1 in magnitude; f32 rounding of a k-term sum.
            const bound = 4 * k * 2 ** -24 * 127 * scales[i % n] + 1e-6;
            const diff = Math.abs(actual[co + i] - expected[co + i]);
            assert.ok(diff <= bound, `${isa} ${m}×${n}×${k} element ${i}: ${actual[co + i]} vs ${expected[co + i]}`);
          }
        }
      });
    });
  }

  // Quantized activations: exact integer dot products, so every variant must
  // give the reference's bits. Wider rows than CASES, a zero row, and m > 4
  // (the packed, threaded path), k off the 4-byte quads.
  const QUANTIZED_CASES = [
    ...CASES,
    { m: 2, n: 70, k: 200, offsets: [1, 1, 1] },
    { m: 9, n: 130, k: 768, offsets: [0, 2, 0] },
    { m: 128, n: 260, k: 129, offsets: [0, 0, 3] },
    { m: 150, n: 600, k: 70, offsets: [0, 0, 0] }, // past one block of rows (144) and of weight rows (512)
  ];
  for (const isa of native?.supportedIsas() ?? []) {
    for (const threads of [1, 2]) {
      test(`native ${isa} gemmInt8Quantized gives the reference's bits on ${threads} thread(s)`, () => {
        assert.ok(native);
        withVariant(native, isa, threads, () => {
          for (const { m, n, k, offsets } of QUANTIZED_CASES) {
            const [ao, qo, co] = offsets;
            const a = randomArray(ao + m * k, m * 29 + k).map((v, i) => v * (1 + (i % 5)));
            if (m > 1) a.fill(0, ao + k, ao + 2 * k); // a zero row: scale 0
            const q = Int8Array.from(randomArray(qo + n * k, n * 13 + k), (v) => Math.round(v * 127));
            const scales = randomArray(n, 7).map((s) => Math.abs(s) / 127);
            const expected = new Float32Array(co + m * n);
            const actual = new Float32Array(co + m * n).fill(12345.5);
            referenceInt8Matmul.gemmInt8Quantized(a, ao, q, qo, scales, expected, co, m, n, k);
            native.gemmInt8Quantized(a, ao, q, qo, scales, actual, co, m, n, k);
            for (let i = 0; i < co; i++) assert.equal(actual[i], 12345.5, `${isa} ${m}×${n}×${k}: wrote before its offset`);
            assert.deepEqual(actual.subarray(co), expected.subarray(co), `${isa} ${m}×${n}×${k}`);
            // And within the activations' rounding of the f32-activation product.
            const f32 = new Float32Array(m * n);
            referenceInt8Matmul.gemmInt8(a, ao, q, qo, scales, f32, 0, m, n, k);
            for (let i = 0; i < m; i++) {
              let largest = 0;
              for (let p = 0; p < k; p++) largest = Math.max(largest, Math.abs(a[ao + i * k + p]));
              for (let j = 0; j < n; j++) {
                // Each activation moves by at most half a step (largest / 254), each weight term is ≤ 127 · scale.
                const bound = (k * largest * 127 * scales[j]) / 254 + 1e-5;
                assert.ok(Math.abs(expected[co + i * n + j] - f32[i * n + j]) <= bound, `${m}×${n}×${k} [${i}, ${j}]`);
              }
            }
          }
        });
      });
    }
  }

  test('the quantized reference rounds activations half to even against max|a| / 127', () => {
    // Row max 127 → scale 1: levels are the values rounded, ties to even.
    const a = Float32Array.from([127, 2.5, -2.5, 3.5, -0.5, 1.49]);
    const q = Int8Array.from([0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1]);
    const c = new Float32Array(5);
    referenceInt8Matmul.gemmInt8Quantized(a, 0, q, 0, Float32Array.from([1, 1, 1, 1, 1]), c, 0, 1, 5, 6);
    assert.deepEqual([...c], [2, -2, 4, 0, 1]);
  });

  test('native gemmInt8Quantized rejects a k its int32 sums could overflow', () => {
    if (!native) return;
    const k = 65537;
    assert.throws(
      () => native.gemmInt8Quantized(new Float32Array(k), 0, new Int8Array(k), 0, new Float32Array(1), new Float32Array(1), 0, 1, 1, k),
      RangeError,
    );
  });

  test('native gemmInt8 rejects a Uint8Array weight and too few scales with typed errors', () => {
    if (!native) return;
    const a = new Float32Array(4);
    const c = new Float32Array(4);
    assert.throws(() => native.gemmInt8(a, 0, new Uint8Array(4) as unknown as Int8Array, 0, new Float32Array(2), c, 0, 2, 2, 2), TypeError);
    assert.throws(() => native.gemmInt8(a, 0, new Int8Array(4), 0, new Float32Array(1), c, 0, 2, 2, 2), RangeError);
  });

  test('per-channel quantization rounds each weight to within half a step of its row scale', () => {
    const w = randomArray(5 * 40, 3).map((v, i) => v * (1 + Math.floor(i / 40))); // rows of different ranges
    w.fill(0, 80, 120); // an all-zero row
    const m = Int8Matrix.quantize(new Tensor('f32', [5, 40], w));
    const back = m.dequantize().f32();
    assert.equal(m.scales[2], 0);
    for (let j = 0; j < 5; j++) {
      let largest = 0;
      for (let p = 0; p < 40; p++) largest = Math.max(largest, Math.abs(w[j * 40 + p]));
      assert.ok(Math.abs(m.scales[j] - largest / 127) < 1e-6 * largest + 1e-12);
      for (let p = 0; p < 40; p++) assert.ok(Math.abs(back[j * 40 + p] - w[j * 40 + p]) <= m.scales[j] / 2 + 1e-7);
    }
  });

  test('linearInt8 with f32 activations equals the f32 linear on the dequantized weight, and refuses to train', async () => {
    await useFastestKernel();
    const m = Int8Matrix.quantize(new Tensor('f32', [6, 5], randomArray(30, 9)));
    const deq = m.dequantize().f32();
    const x = randomArray(10, 4);
    const bias = randomArray(6, 2);
    const before = setInt8Activations('f32');
    try {
      const y = linearInt8(new Tensor('f32', [2, 5], x), m, new Tensor('f32', [6], bias)).f32();
      for (let r = 0; r < 2; r++) {
        for (let j = 0; j < 6; j++) {
          let sum = 0;
          for (let p = 0; p < 5; p++) sum += x[r * 5 + p] * deq[j * 5 + p];
          assert.ok(Math.abs(y[r * 6 + j] - (sum + bias[j])) < 1e-5);
        }
      }
    } finally {
      setInt8Activations(before);
    }
    const layer = new Linear(m);
    assert.deepEqual([...layer.weight.f32()], [...deq]);
    const trainable = new Tensor('f32', [2, 5], x);
    trainable.requiresGrad = true;
    assert.throws(() => linearInt8(trainable, m), UnsupportedError);
  });

  test('linearInt8 quantizes its input rows by default: the quantized reference plus the bias', async () => {
    await useFastestKernel();
    const m = Int8Matrix.quantize(new Tensor('f32', [40, 70], randomArray(2800, 19)));
    const x = randomArray(3 * 70, 23);
    const bias = randomArray(40, 29);
    const y = linearInt8(new Tensor('f32', [3, 70], x), m, new Tensor('f32', [40], bias)).f32();
    const expected = new Float32Array(3 * 40);
    referenceInt8Matmul.gemmInt8Quantized(x, 0, m.q, 0, m.scales, expected, 0, 3, 40, 70);
    for (let i = 0; i < expected.length; i++) assert.equal(y[i], Math.fround(expected[i] + bias[i % 40]));
  });

  test('embeddingInt8 dequantizes the looked-up rows', () => {
    const m = new Int8Matrix(Int8Array.from([1, -2, 127, 0]), Float32Array.from([0.5, 0.25]), [2, 2]);
    assert.deepEqual([...embeddingInt8(m, Tensor.i32([1, 0], [2])).f32()], [31.75, 0, 0.5, -1]);
  });

  test('GPT-2 with int8 weights stays within a few quantization steps of the f32 model on the HF fixture', async () => {
    await useFastestKernel();
    const dir = join(SHARED, 'fixtures', 'hf-tiny', 'gpt2');
    const tensors = await readSafetensors(nodeFileSystem, join(dir, 'model.safetensors'));
    const raw = JSON.parse(await nodeFileSystem.readText(join(dir, 'config.json'))) as Record<string, unknown>;
    const ids = (JSON.parse(await nodeFileSystem.readText(join(dir, 'inputs.json'))) as { input_ids: number[][] }).input_ids[0];
    const f32 = new Gpt2Model(parseGpt2Config(raw, dir), Weights.from(tensors, dir));
    const int8 = new Gpt2Model(parseGpt2Config(raw, dir), Weights.from(tensors, dir, { linearDtype: 'int8' }));
    assert.ok(int8.head instanceof Int8Matrix);
    const a = f32.forward(Tensor.i32(ids, [1, ids.length])).logits.f32();
    const b = int8.forward(Tensor.i32(ids, [1, ids.length])).logits.f32();
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < a.length; i++) {
      worst = Math.max(worst, Math.abs(a[i] - b[i]));
      scale = Math.max(scale, Math.abs(a[i]));
    }
    assert.ok(worst > 0, 'int8 weights changed nothing: the weights were not quantized');
    assert.ok(worst < scale * 2 ** -3, `logits moved by ${worst} (largest logit ${scale})`);
  });
});
