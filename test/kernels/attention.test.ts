import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { attentionKernel, setAttentionKernel, useFastestKernel } from '../../src/kernels/index.js';
import { loadNativeKernel } from '../../src/kernels/native.js';
import { attend } from '../../src/nn/attention.js';
import { Hooks } from '../../src/nn/hooks.js';
import { Tensor } from '../../src/tensor/tensor.js';

/** Deterministic values in [-1, 1) (an LCG), so a failure reproduces. */
function random(shape: number[], seed: number): Tensor {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  let state = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = state / 2 ** 31 - 1;
  }
  return new Tensor('f32', shape, data);
}

/** A causal-and-padding style mask [batch, 1, queries, keys]: 0 visible, F32 min hidden. */
function mask(batch: number, queries: number, keys: number): Tensor {
  const data = new Float32Array(batch * queries * keys);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < queries; i++) {
      for (let j = 0; j < keys; j++) {
        const padded = j < b; // row b has b padded keys at the front
        const future = j > keys - queries + i;
        data[(b * queries + i) * keys + j] = padded || future ? -3.4028234663852886e38 : 0;
      }
    }
  }
  return new Tensor('f32', [batch, 1, queries, keys], data);
}

function unfused<T>(fn: () => T): T {
  const previous = setAttentionKernel(undefined);
  try {
    return fn();
  } finally {
    setAttentionKernel(previous);
  }
}

function assertClose(actual: Tensor, expected: Tensor, what: string): void {
  assert.deepEqual(actual.shape, expected.shape, what);
  const a = actual.f32();
  const e = expected.f32();
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - e[i]) <= 2e-6, `${what}[${i}]: ${a[i]} vs ${e[i]}`);
}

describe('fused decode attention', () => {
  test('the native addon provides it once the fastest kernel is chosen (unless GLASSFORMER_NATIVE=0)', async () => {
    await useFastestKernel();
    if (process.env.GLASSFORMER_NATIVE === '0') {
      assert.equal(attentionKernel(), undefined);
      return;
    }
    assert.ok(loadNativeKernel().kernel, 'the native addon did not load: npm install builds it (node scripts/build-native.mjs)');
    assert.ok(attentionKernel());
  });

  for (const { batch, heads, queries, keys, dHead } of [
    { batch: 1, heads: 12, queries: 1, keys: 48, dHead: 64 },
    { batch: 3, heads: 2, queries: 4, keys: 37, dHead: 13 },
    { batch: 2, heads: 3, queries: 2, keys: 1, dHead: 8 },
  ]) {
    test(`equals the unfused ops: ${batch}×${heads} heads, ${queries} queries, ${keys} keys, dHead ${dHead}`, async () => {
      await useFastestKernel();
      const q = random([batch, heads, queries, dHead], 1);
      const k = random([batch, heads, keys, dHead], 2);
      const v = random([batch, heads, keys, dHead], 3);
      for (const m of [undefined, mask(batch, queries, keys), random([keys], 4)]) {
        const options = { scale: 1 / Math.sqrt(dHead), mask: m };
        const fused = attend(q, k, v, options);
        const reference = unfused(() => attend(q, k, v, options));
        assertClose(fused.z, reference.z, 'z');
        assertClose(fused.pattern, reference.pattern, 'pattern');
      }
    });
  }

  test('a row whose keys are all masked attends to nothing, as the unfused softmax', async () => {
    await useFastestKernel();
    const q = random([1, 1, 1, 4], 5);
    const k = random([1, 1, 3, 4], 6);
    const hidden = new Tensor('f32', [1, 1, 1, 3], new Float32Array(3).fill(-Infinity));
    const fused = attend(q, k, k, { mask: hidden });
    assert.deepEqual([...fused.pattern.f32()], [0, 0, 0]);
    assert.deepEqual([...fused.z.f32()], [0, 0, 0, 0]);
    assertClose(fused.pattern, unfused(() => attend(q, k, k, { mask: hidden })).pattern, 'pattern');
  });

  test('with a hook attached the unfused path runs, so the hook sees and changes the pattern', async () => {
    await useFastestKernel();
    const q = random([1, 2, 1, 4], 7);
    const k = random([1, 2, 5, 4], 8);
    let seen: Tensor | undefined;
    const hooks = new Hooks().add('pattern', (p) => {
      seen = p;
      return new Tensor('f32', p.shape, new Float32Array(p.size)); // ablate every head
    });
    const out = attend(q, k, k, { scale: 0.5, hooks });
    assert.ok(seen);
    assert.deepEqual(seen.shape, [1, 2, 1, 5]);
    assert.ok([...out.z.f32()].every((x) => x === 0));
  });

  test('the native kernel rejects a mask its strides overrun, with a RangeError', () => {
    const native = loadNativeKernel().kernel;
    if (!native) return;
    const f = (n: number) => new Float32Array(n);
    assert.throws(() => native.attend(f(4), f(12), f(12), f(2), Float32Array.from([0, 0, 0, 1]), 1, f(3), f(4), 1, 1, 1, 3, 4), RangeError);
    assert.throws(() => native.attend(f(4), f(8), f(12), null, f(4), 1, f(3), f(4), 1, 1, 1, 3, 4), RangeError);
  });
});
