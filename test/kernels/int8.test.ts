import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { referenceInt8Matmul, useFastestKernel } from '../../src/kernels/index.js';
import { loadNativeKernel } from '../../src/kernels/native.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { Gpt2Model, parseGpt2Config } from '../../src/models/gpt2.js';
import { embeddingInt8, Int8Matrix, linearInt8 } from '../../src/nn/int8.js';
import { Linear } from '../../src/nn/linear.js';
import { Weights } from '../../src/nn/weights.js';
import { UnsupportedError } from '../../src/errors.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { randomArray } from '../helpers/random.js';
import { SHARED } from '../helpers/shared.js';


// Decode (m ≤ 4, streamed) and prefill (m > 4, dequantized then the f32 GEMM), odd sizes and offsets.
const CASES = [
  { m: 1, n: 3072, k: 768, offsets: [0, 0, 0] },
  { m: 1, n: 37, k: 33, offsets: [3, 5, 7] },
  { m: 3, n: 250, k: 100, offsets: [1, 0, 2] },
  { m: 4, n: 9, k: 47, offsets: [0, 0, 0] },
  { m: 7, n: 130, k: 65, offsets: [2, 3, 1] },
  { m: 64, n: 300, k: 200, offsets: [0, 0, 0] },
];

describe('int8 weight kernels', () => {
  const native = loadNativeKernel().kernel;
  for (const isa of native?.supportedIsas() ?? []) {
    test(`native ${isa} gemmInt8 agrees with the reference`, () => {
      assert.ok(native);
      const before = native.isa();
      native.setIsa(isa);
      try {
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
      } finally {
        native.setIsa(before);
      }
    });
  }

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

  test('linearInt8 equals the f32 linear on the dequantized weight, and refuses to train', async () => {
    await useFastestKernel();
    const m = Int8Matrix.quantize(new Tensor('f32', [6, 5], randomArray(30, 9)));
    const deq = m.dequantize().f32();
    const x = randomArray(10, 4);
    const bias = randomArray(6, 2);
    const y = linearInt8(new Tensor('f32', [2, 5], x), m, new Tensor('f32', [6], bias)).f32();
    for (let r = 0; r < 2; r++) {
      for (let j = 0; j < 6; j++) {
        let sum = 0;
        for (let p = 0; p < 5; p++) sum += x[r * 5 + p] * deq[j * 5 + p];
        assert.ok(Math.abs(y[r * 6 + j] - (sum + bias[j])) < 1e-5);
      }
    }
    const layer = new Linear(m);
    assert.deepEqual([...layer.weight.f32()], [...deq]);
    const trainable = new Tensor('f32', [2, 5], x);
    trainable.requiresGrad = true;
    assert.throws(() => linearInt8(trainable, m), UnsupportedError);
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
