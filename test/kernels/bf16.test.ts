import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { referenceBf16Matmul, useFastestKernel } from '../../src/kernels/index.js';
import { loadNativeKernel } from '../../src/kernels/native.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { Gpt2Model, parseGpt2Config } from '../../src/models/gpt2.js';
import { embeddingBf16, linearBf16, setBf16Activations } from '../../src/nn/bf16.js';
import { Weights } from '../../src/nn/weights.js';
import { UnsupportedError, ConfigError } from '../../src/errors.js';
import { f32ToBf16, bf16ToF32 } from '../../src/tensor/dtype.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { randomArray } from '../helpers/random.js';
import { SHARED } from '../helpers/shared.js';
import { withVariant, WEIGHT_GEMM_CASES as CASES } from '../helpers/native.js';

function toBf16(values: Float32Array): Uint16Array {
  return Uint16Array.from(values, (v) => f32ToBf16(v));
}

describe('bf16 weight kernels', () => {
  const loaded = loadNativeKernel();
  const native = loaded.kernel;
  for (const isa of native?.supportedIsas() ?? []) {
    test(`native ${isa} gemmBf16 agrees with the reference (weights widened, f32 sums)`, () => {
      assert.ok(native);
      withVariant(native, isa, undefined, () => {
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
      });
    });
  }

  // Rounded activations: m and n off the 4×4 tiles, k off the 32-pair step and
  // past one 64-row block of weights.
  const ROUNDED_CASES = [...CASES, { m: 13, n: 131, k: 770, offsets: [2, 1, 3] }, { m: 128, n: 96, k: 768, offsets: [0, 0, 0] }];
  for (const isa of native?.supportedIsas() ?? []) {
    for (const threads of [1, 2]) {
      test(`native ${isa} gemmBf16Rounded agrees with the reference on bf16-rounded activations, ${threads} thread(s)`, () => {
        assert.ok(native);
        withVariant(native, isa, threads, () => {
          for (const { m, n, k, offsets } of ROUNDED_CASES) {
            const [ao, bo, co] = offsets;
            const a = randomArray(ao + m * k, m * 37 + k);
            const b = toBf16(randomArray(bo + n * k, n * 11 + k));
            const expected = new Float32Array(co + m * n);
            const exact = new Float32Array(co + m * n);
            const actual = new Float32Array(co + m * n).fill(12345.5);
            referenceBf16Matmul.gemmBf16Rounded(a, ao, b, bo, expected, co, m, n, k);
            referenceBf16Matmul.gemmBf16(a, ao, b, bo, exact, co, m, n, k);
            native.gemmBf16Rounded(a, ao, b, bo, actual, co, m, n, k);
            for (let i = 0; i < co; i++) assert.equal(actual[i], 12345.5, `${isa} ${m}×${n}×${k}: wrote before its offset`);
            let moved = 0;
            for (let i = co; i < co + m * n; i++) {
              // f32 sums of k exact products below 1 in magnitude.
              assert.ok(Math.abs(actual[i] - expected[i]) <= 4 * k * 2 ** -24 + 1e-6, `${isa} ${m}×${n}×${k} element ${i - co}`);
              moved = Math.max(moved, Math.abs(expected[i] - exact[i]));
            }
            // The rounding of A shows (it is the point of the test), within bf16's half step of each term.
            if (k > 32) assert.ok(moved > 1e-6 && moved <= k * 2 ** -9, `${m}×${n}×${k}: rounding moved the result by ${moved}`);
          }
        });
      });
    }
  }

  test('linearBf16 rounds its input to bf16 only when asked, and only above 4 rows', async () => {
    await useFastestKernel();
    const bits = toBf16(randomArray(40 * 70, 21));
    const weight = new Tensor('bf16', [40, 70], bits);
    for (const rows of [3, 9]) {
      const x = randomArray(rows * 70, rows);
      const exact = new Float32Array(rows * 40);
      const rounded = new Float32Array(rows * 40);
      referenceBf16Matmul.gemmBf16(x, 0, bits, 0, exact, 0, rows, 40, 70);
      referenceBf16Matmul.gemmBf16Rounded(x, 0, bits, 0, rounded, 0, rows, 40, 70);
      const plain = linearBf16(new Tensor('f32', [rows, 70], x), weight).f32();
      const before = setBf16Activations('bf16');
      let opted: Float32Array;
      try {
        opted = linearBf16(new Tensor('f32', [rows, 70], x), weight).f32();
      } finally {
        setBf16Activations(before);
      }
      const target = rows > 4 ? rounded : exact;
      for (let i = 0; i < rows * 40; i++) {
        assert.ok(Math.abs(plain[i] - exact[i]) < 1e-5, `rows ${rows}: default is exact`);
        assert.ok(Math.abs(opted[i] - target[i]) < 1e-5, `rows ${rows}: opted in`);
      }
    }
  });

  test('native gemmBf16 rejects an f32 weight and a short output with typed errors', () => {
    if (!native) return;
    assert.throws(() => native.gemmBf16(new Float32Array(4), 0, new Float32Array(4) as unknown as Uint16Array, 0, new Float32Array(4), 0, 2, 2, 2), TypeError);
    assert.throws(() => native.gemmBf16(new Float32Array(4), 0, new Uint16Array(4), 0, new Float32Array(3), 0, 2, 2, 2), RangeError);
    assert.throws(() => native.gemmBf16Rounded(new Float32Array(4), 0, new Int16Array(4) as unknown as Uint16Array, 0, new Float32Array(4), 0, 2, 2, 2), TypeError);
    assert.throws(() => native.gemmBf16Rounded(new Float32Array(3), 0, new Uint16Array(4), 0, new Float32Array(4), 0, 2, 2, 2), RangeError);
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
