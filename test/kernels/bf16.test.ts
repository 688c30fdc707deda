import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { referenceBf16Matmul, useFastestKernel } from '../../src/kernels/index.js';
import { loadNativeKernel } from '../../src/kernels/native.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { Gpt2Model, parseGpt2Config } from '../../src/models/gpt2.js';
import { embeddingBf16, linearBf16 } from '../../src/nn/bf16.js';
import { Weights } from '../../src/nn/weights.js';
import { UnsupportedError, ConfigError } from '../../src/errors.js';
import { f32ToBf16, bf16ToF32 } from '../../src/tensor/dtype.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { randomArray } from '../helpers/random.js';
import { SHARED } from '../helpers/shared.js';


function toBf16(values: Float32Array): Uint16Array {
  return Uint16Array.from(values, (v) => f32ToBf16(v));
}

// Decode (m ≤ 4, streamed) and prefill (m > 4, widened as the f32 GEMM packs), with
// k and n off every vector width, and offset slices.
const CASES = [
  { m: 1, n: 3072, k: 768, offsets: [0, 0, 0] },
  { m: 1, n: 37, k: 33, offsets: [3, 5, 7] },
  { m: 3, n: 250, k: 100, offsets: [1, 0, 2] },
  { m: 4, n: 9, k: 47, offsets: [0, 0, 0] },
  { m: 7, n: 130, k: 65, offsets: [2, 3, 1] },
  { m: 64, n: 300, k: 200, offsets: [0, 0, 0] },
  { m: 9, n: 70, k: 800, offsets: [1, 3, 2] }, // two k blocks of the packed GEMM
];

describe('bf16 weight kernels', () => {
  const loaded = loadNativeKernel();
  const native = loaded.kernel;
  for (const isa of native?.supportedIsas() ?? []) {
    test(`native ${isa} gemmBf16 agrees with the reference (weights widened, f32 sums)`, () => {
      assert.ok(native);
      const before = native.isa();
      native.setIsa(isa);
      try {
        for (const { m, n, k, offsets } of CASES) {
          const [ao, bo, co] = offsets;
          const a = randomArray(ao + m * k, m * 31 + k);
          const b = toBf16(randomArray(bo + n * k, n * 17 + k));
          const expected = new Float32Array(co + m * n);
          const actual = new Float32Array(co + m * n).fill(12345.5);
          referenceBf16Matmul.gemmBf16(a, ao, b, bo, expected, co, m, n, k);
          native.gemmBf16(a, ao, b, bo, actual, co, m, n, k);
          for (let i = 0; i < co; i++) assert.equal(actual[i], 12345.5, `${isa} ${m}×${n}×${k}: wrote before its offset`);
          for (let i = 0; i < m * n; i++) {
            // f32 rounding of a k-term sum of terms below 1 in magnitude.
            const bound = 4 * k * 2 ** -24 + 1e-6;
            const diff = Math.abs(actual[co + i] - expected[co + i]);
            assert.ok(diff <= bound, `${isa} ${m}×${n}×${k} element ${i}: ${actual[co + i]} vs ${expected[co + i]}`);
          }
        }
      } finally {
        native.setIsa(before);
      }
    });
  }

  test('native gemmBf16 rejects an f32 weight and a short output with typed errors', () => {
    if (!native) return;
    assert.throws(() => native.gemmBf16(new Float32Array(4), 0, new Float32Array(4) as unknown as Uint16Array, 0, new Float32Array(4), 0, 2, 2, 2), TypeError);
    assert.throws(() => native.gemmBf16(new Float32Array(4), 0, new Uint16Array(4), 0, new Float32Array(3), 0, 2, 2, 2), RangeError);
  });

  test('linearBf16 adds the bias and equals the f32 linear on the widened weights', async () => {
    await useFastestKernel();
    const w = randomArray(6 * 5, 9);
    const bits = toBf16(w);
    const widened = Float32Array.from(bits, (x) => bf16ToF32(x));
    const x = randomArray(2 * 5, 4);
    const bias = randomArray(6, 2);
    const y = linearBf16(new Tensor('f32', [2, 5], x), new Tensor('bf16', [6, 5], bits), new Tensor('f32', [6], bias));
    assert.deepEqual(y.shape, [2, 6]);
    for (let r = 0; r < 2; r++) {
      for (let j = 0; j < 6; j++) {
        let sum = 0;
        for (let p = 0; p < 5; p++) sum += x[r * 5 + p] * widened[j * 5 + p];
        assert.ok(Math.abs(y.f32()[r * 6 + j] - (sum + bias[j])) < 1e-5);
      }
    }
    const trainable = new Tensor('f32', [2, 5], x);
    trainable.requiresGrad = true;
    assert.throws(() => linearBf16(trainable, new Tensor('bf16', [6, 5], bits)), UnsupportedError);
  });

  test('embeddingBf16 widens the looked-up rows exactly', () => {
    const bits = Uint16Array.from([0x3f80, 0xbf80, 0x4000, 0x0000, 0x3e80, 0xc040]); // 1, −1, 2, 0, 0.25, −3
    const out = embeddingBf16(new Tensor('bf16', [3, 2], bits), Tensor.i32([2, 0], [1, 2]));
    assert.deepEqual(out.shape, [1, 2, 2]);
    assert.deepEqual([...out.f32()], [0.25, -3, 1, -1]);
  });

  test('Weights rejects an unknown linearDtype, naming the source', () => {
    assert.throws(() => Weights.from(new Map(), 'ckpt.safetensors', { linearDtype: 'int4' as 'bf16' }), (e: unknown) => e instanceof ConfigError && /ckpt\.safetensors.*int4/.test(e.message));
  });

  test('GPT-2 with bf16 weights stays within bf16 rounding of the f32 model on the HF fixture', async () => {
    await useFastestKernel();
    const dir = join(SHARED, 'fixtures', 'hf-tiny', 'gpt2');
    const tensors = await readSafetensors(nodeFileSystem, join(dir, 'model.safetensors'));
    const raw = JSON.parse(await nodeFileSystem.readText(join(dir, 'config.json'))) as Record<string, unknown>;
    const inputs = JSON.parse(await nodeFileSystem.readText(join(dir, 'inputs.json'))) as { input_ids: number[][] };
    const ids = inputs.input_ids[0];
    const f32 = new Gpt2Model(parseGpt2Config(raw, dir), Weights.from(tensors, dir));
    const bf16 = new Gpt2Model(parseGpt2Config(raw, dir), Weights.from(tensors, dir, { linearDtype: 'bf16' }));
    assert.equal(bf16.blocks[0].mlp.cFc.weight.dtype, 'bf16');
    assert.equal(bf16.lmHead.dtype, 'bf16');
    const a = f32.forward(Tensor.i32(ids, [1, ids.length])).logits.f32();
    const b = bf16.forward(Tensor.i32(ids, [1, ids.length])).logits.f32();
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < a.length; i++) {
      worst = Math.max(worst, Math.abs(a[i] - b[i]));
      scale = Math.max(scale, Math.abs(a[i]));
    }
    // bf16 keeps 8 significant bits (relative step 2^-8): the logits move, but by a few steps at most.
    assert.ok(worst > 0, 'bf16 weights changed nothing: the weights were not rounded');
    assert.ok(worst < scale * 2 ** -5, `logits moved by ${worst} (largest logit ${scale})`);
  });
});
