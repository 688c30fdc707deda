import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fusedAttentionKernel, setFusedAttentionKernel, type FusedAttentionKernel } from '../../src/kernels/attention.js';
import { useFastestKernel } from '../../src/kernels/index.js';
import { loadNativeKernel } from '../../src/kernels/native.js';
import { attend, attendKV, attendRows, attendValues, MultiHeadAttention } from '../../src/nn/attention.js';
import { attendTo, projectKeysValues } from '../../src/nn/encoder-decoder-cache.js';
import { Linear } from '../../src/nn/linear.js';
import { groupedQueryAttend } from '../../src/nn/causal-lm.js';
import { Hooks, noHooks } from '../../src/nn/hooks.js';
import { KVCache } from '../../src/nn/kv-cache.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { forEachIsa } from '../helpers/native.js';

const F32_MIN = -3.4028234663852886e38;

/** Deterministic values in [-1, 1) (an LCG), so a failure reproduces. */
function random(shape: number[], seed: number, amplitude = 1): Tensor {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  let state = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = amplitude * (state / 2 ** 31 - 1);
  }
  return new Tensor('f32', shape, data);
}

/**
 * A causal-and-padding mask [batch, 1, queries, keys] as GPT-2 builds it: the
 * queries are the last `queries` positions (a KV offset of keys − queries),
 * row b has b padded keys at the front; 0 visible, F32 min hidden.
 */
function causalMask(batch: number, queries: number, keys: number): Tensor {
  const data = new Float32Array(batch * queries * keys);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < queries; i++) {
      for (let j = 0; j < keys; j++) {
        const padded = j < b;
        const future = j > keys - queries + i;
        data[(b * queries + i) * keys + j] = padded || future ? F32_MIN : 0;
      }
    }
  }
  return new Tensor('f32', [batch, 1, queries, keys], data);
}

/** A padding mask [batch, 1, 1, keys] (encoders, cross-attention): row b hides its last b keys with −∞. */
function paddingMask(batch: number, keys: number): Tensor {
  const data = new Float32Array(batch * keys);
  for (let b = 0; b < batch; b++) for (let j = keys - b; j < keys; j++) if (j >= 0) data[b * keys + j] = -Infinity;
  return new Tensor('f32', [batch, 1, 1, keys], data);
}

function unfused<T>(fn: () => T): T {
  const previous = setFusedAttentionKernel(undefined);
  try {
    return fn();
  } finally {
    setFusedAttentionKernel(previous);
  }
}

function assertClose(actual: Tensor, expected: Tensor, what: string, tolerance = 2e-6): void {
  assert.deepEqual(actual.shape, expected.shape, what);
  const a = actual.f32();
  const e = expected.f32();
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - e[i]) <= tolerance, `${what}[${i}]: ${a[i]} vs ${e[i]}`);
}

/** The native kernel, or a skip reason when the addon is off. */
async function native(): Promise<FusedAttentionKernel | undefined> {
  await useFastestKernel();
  return fusedAttentionKernel();
}

describe('fused attention', () => {
  test('the native addon provides it once the fastest kernel is chosen (unless GLASSFORMER_NATIVE=0)', async () => {
    await useFastestKernel();
    if (process.env.GLASSFORMER_NATIVE === '0') {
      assert.equal(fusedAttentionKernel(), undefined);
      return;
    }
    assert.ok(loadNativeKernel().kernel, 'the native addon did not load: npm install builds it (node scripts/build-native.mjs)');
    assert.ok(fusedAttentionKernel());
  });

  // Decode steps (1–4 queries) and prompts (more queries than one 32-query
  // block, more keys than one 128-key tile), odd sizes throughout.
  const shapes = [
    { batch: 1, heads: 12, queries: 1, keys: 48, dHead: 64 },
    { batch: 3, heads: 2, queries: 4, keys: 37, dHead: 13 },
    { batch: 2, heads: 3, queries: 2, keys: 1, dHead: 8 },
    { batch: 2, heads: 2, queries: 1, keys: 513, dHead: 80 },
    { batch: 2, heads: 3, queries: 17, keys: 17, dHead: 8 },
    { batch: 1, heads: 2, queries: 65, keys: 65, dHead: 64 },
    { batch: 2, heads: 1, queries: 33, keys: 513, dHead: 80 },
    { batch: 3, heads: 2, queries: 40, keys: 300, dHead: 64 },
  ];
  for (const { batch, heads, queries, keys, dHead } of shapes) {
    test(`equals the unfused ops on every ISA: ${batch}×${heads} heads, ${queries} queries, ${keys} keys, dHead ${dHead}`, async () => {
      if (!(await native())) return;
      const q = random([batch, heads, queries, dHead], 1);
      const k = random([batch, heads, keys, dHead], 2);
      const v = random([batch, heads, keys, dHead], 3);
      const masks = [undefined, causalMask(batch, queries, keys), random([keys], 4), paddingMask(batch, keys), random([batch, heads, queries, keys], 5)];
      forEachIsa((isa) => {
        for (const [m, mask] of masks.entries()) {
          const options = { scale: 1 / Math.sqrt(dHead), mask };
          const fused = attend(q, k, v, options);
          const reference = unfused(() => attend(q, k, v, options));
          assertClose(fused.z, reference.z, `${isa} mask ${m} z`);
          assertClose(fused.pattern, reference.pattern, `${isa} mask ${m} pattern`);
        }
      });
    });
  }

  test("T5's additive position bias (one row for the batch) and a padding mask together", async () => {
    if (!(await native())) return;
    const [batch, heads, queries, keys, dHead] = [3, 4, 19, 19, 16];
    const q = random([batch, heads, queries, dHead], 6, 3);
    const k = random([batch, heads, keys, dHead], 7, 3);
    const v = random([batch, heads, keys, dHead], 8);
    const options = { mask: paddingMask(batch, keys), positionBias: random([1, heads, queries, keys], 9, 4) };
    const fused = attend(q, k, v, options);
    const reference = unfused(() => attend(q, k, v, options));
    assertClose(fused.z, reference.z, 'z', 1e-5);
    assertClose(fused.pattern, reference.pattern, 'pattern', 1e-5);
  });

  test('large scores (a sharp softmax) stay stable across key tiles', async () => {
    if (!(await native())) return;
    const q = random([1, 2, 5, 8], 10, 30);
    const k = random([1, 2, 300, 8], 11, 30);
    const v = random([1, 2, 300, 8], 12);
    const fused = attend(q, k, v);
    const reference = unfused(() => attend(q, k, v));
    assertClose(fused.z, reference.z, 'z', 1e-5);
    assertClose(fused.pattern, reference.pattern, 'pattern', 1e-5);
  });

  test('a row whose keys are all masked attends to nothing, as the unfused softmax', async () => {
    if (!(await native())) return;
    const q = random([1, 1, 2, 4], 5);
    const k = random([1, 1, 130, 4], 6);
    const hidden = new Float32Array(2 * 130).fill(-Infinity);
    hidden.fill(0, 130 + 129); // the second query sees only the last key, in the second tile
    const mask = new Tensor('f32', [1, 1, 2, 130], hidden);
    const fused = attend(q, k, k, { mask });
    assert.ok(fused.pattern.f32().subarray(0, 130).every((p) => p === 0));
    assert.ok(fused.z.f32().subarray(0, 4).every((x) => x === 0));
    assert.equal(fused.pattern.get(0, 0, 1, 129), 1);
    assertClose(fused.z, unfused(() => attend(q, k, k, { mask })).z, 'z');
  });

  test('grouped-query attention: each KV head serves its group of query heads, as the unfused grouped path', async () => {
    if (!(await native())) return;
    const [batch, heads, kvHeads, queries, keys, dHead] = [2, 6, 2, 3, 21, 8];
    const q = random([batch, heads, queries, dHead], 13);
    const k = random([batch, kvHeads, keys, dHead], 14);
    const v = random([batch, kvHeads, keys, dHead], 15);
    const mask = causalMask(batch, queries, keys);
    const fused = attendKV(q, { key: k, value: v }, { scale: 0.3, mask });
    const reference = groupedQueryAttend(q, k, v, { scale: 0.3, mask, hooks: noHooks });
    assertClose(fused.z, reference.z, 'z');
    assertClose(fused.pattern, reference.pattern, 'pattern');
  });

  test('keys read in place from a KV cache with spare capacity equal the packed keys, step after step', async () => {
    if (!(await native())) return;
    const [batch, heads, dHead] = [2, 3, 8];
    const cache = new KVCache(1);
    const prompt = 5;
    let kv = cache.append(0, random([batch, heads, prompt, dHead], 16), random([batch, heads, prompt, dHead], 17));
    for (let step = 0; step < 70; step++) {
      const keys = prompt + step + 1;
      kv = cache.append(0, random([batch, heads, 1, dHead], 100 + step), random([batch, heads, 1, dHead], 200 + step));
      if (step % 23 !== 0 && step !== 69) continue;
      const q = random([batch, heads, 1, dHead], 300 + step);
      const mask = causalMask(batch, 1, keys);
      const fused = attendKV(q, kv, { scale: 0.35, mask });
      const reference = unfused(() => attend(q, kv.key, kv.value, { scale: 0.35, mask }));
      assert.deepEqual(kv.key.shape, [batch, heads, keys, dHead]);
      assertClose(fused.z, reference.z, `step ${step} z`);
      assertClose(fused.pattern, reference.pattern, `step ${step} pattern`);
    }
  });

  test('attendValues (no pattern asked for) gives the same z as attend, fused and unfused', async () => {
    if (!(await native())) return;
    const q = random([2, 3, 40, 16], 23);
    const k = random([2, 3, 150, 16], 24);
    const v = random([2, 3, 150, 16], 25);
    const options = { scale: 0.25, mask: paddingMask(2, 150) };
    const reference = unfused(() => attend(q, k, v, options));
    assertClose(attendValues(q, k, v, options), reference.z, 'fused z');
    assertClose(unfused(() => attendValues(q, k, v, options)), reference.z, 'unfused z');
  });

  test('MultiHeadAttention reads its projections as heads in place: forward and output equal the unfused ops (self and cross)', async () => {
    if (!(await native())) return;
    const d = 24;
    const linear = (seed: number) => new Linear(random([d, d], seed, 0.3), random([d], seed + 1, 0.1));
    const attention = new MultiHeadAttention(linear(30), linear(32), linear(34), linear(36), 3);
    const x = random([2, 7, d], 38);
    const memory = random([2, 11, d], 39);
    for (const options of [{ scale: 0.4, mask: causalMask(2, 7, 7) }, { scale: 0.4, context: memory, mask: paddingMask(2, 11) }]) {
      const reference = unfused(() => attention.forward(x, options));
      const fused = attention.forward(x, options);
      assertClose(fused.out, reference.out, 'out', 1e-5);
      assertClose(fused.pattern, reference.pattern, 'pattern');
      assertClose(attention.output(x, options), reference.out, 'output', 1e-5);
    }
  });

  test('attendTo reads the query projection as heads in place, against packed keys and a KV cache, with a position bias', async () => {
    if (!(await native())) return;
    const d = 24;
    const linear = (seed: number) => new Linear(random([d, d], seed, 0.3), random([d], seed + 1, 0.1));
    const attention = new MultiHeadAttention(linear(40), linear(42), linear(44), linear(46), 4);
    const x = random([2, 3, d], 48);
    const memory = random([2, 9, d], 49);
    const cache = new KVCache(1);
    const packed = projectKeysValues(attention, memory);
    const cached = cache.append(0, packed.key, packed.value);
    const options = { queryScale: 0.5, mask: paddingMask(2, 9), positionBias: random([1, 4, 3, 9], 50) };
    const reference = unfused(() => attendTo(attention, x, packed, options));
    for (const kv of [packed, cached]) {
      const fused = attendTo(attention, x, kv, options);
      assertClose(fused.out, reference.out, 'out', 1e-5);
      assertClose(fused.pattern, reference.pattern, 'pattern');
    }
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

  test('inputs that require gradients take the unfused ops, and the gradient reaches q', async () => {
    await useFastestKernel();
    const q = random([1, 2, 6, 4], 18).requireGrad();
    const k = random([1, 2, 6, 4], 19);
    const { z } = attend(q, k, k, { mask: causalMask(1, 6, 6) });
    assert.ok(z.requiresGrad);
  });

  test('the native kernel checks every extent: short arrays, strides that overrun, bad head counts', async () => {
    const kernel = await native();
    if (!kernel) return;
    const f = (n: number) => new Float32Array(n);
    // One batch row, 2 query heads sharing 1 KV head, 1 query, 3 keys of dim 4; the keys 6 rows apart (a cache of capacity 6).
    const strides = (change: Record<number, number> = {}) => {
      const s = Float64Array.from([8, 4, 4, 24, 24, 4, 24, 24, 4, 8, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0]);
      for (const [i, v] of Object.entries(change)) s[Number(i)] = v;
      return s;
    };
    // q, k, v, z, pattern, mask, bias, strides, scale, batch, heads, kvHeads, queries, keys, dim
    assert.doesNotThrow(() => kernel.attention(f(8), f(24), f(24), f(8), f(6), null, null, strides(), 1, 1, 2, 1, 1, 3, 4));
    assert.throws(() => kernel.attention(f(8), f(11), f(24), f(8), f(6), null, null, strides(), 1, 1, 2, 1, 1, 3, 4), /attention: k needs 12 elements for its strides but has length 11/);
    assert.throws(() => kernel.attention(f(8), f(24), f(24), f(8), f(6), null, null, strides({ 5: 12 }), 1, 1, 2, 1, 1, 3, 4), /k needs 28 elements/);
    assert.throws(() => kernel.attention(f(7), f(24), f(24), f(8), f(6), null, null, strides(), 1, 1, 2, 1, 1, 3, 4), /q needs 8/);
    assert.throws(() => kernel.attention(f(8), f(24), f(24), f(8), f(6), null, null, strides({ 10: 5 }), 1, 1, 2, 1, 1, 3, 4), /z needs 9/);
    assert.throws(() => kernel.attention(f(8), f(24), f(24), f(8), f(5), null, null, strides(), 1, 1, 2, 1, 1, 3, 4), /pattern needs 6/);
    assert.throws(() => kernel.attention(f(8), f(24), f(24), f(8), null, null, null, strides({ 0: -1 }), 1, 1, 2, 1, 1, 3, 4), /strides\[0\] must be a non-negative integer/);
    assert.throws(() => kernel.attention(f(8), f(24), f(24), f(8), null, null, null, strides(), 1, 1, 2, 3, 1, 3, 4), /multiple of kvHeads/);
    assert.throws(() => kernel.attention(f(8), f(24), f(24), f(8), null, f(2), null, strides({ 15: 1 }), 1, 1, 2, 1, 1, 3, 4), /mask's strides reach element 2/);
    assert.throws(() => kernel.attention(f(8), f(24), f(24), f(8), null, null, f(3), strides({ 17: 3, 19: 1 }), 1, 1, 2, 1, 1, 3, 4), /bias's strides reach element 5/);
    assert.throws(() => kernel.attention(f(8), f(24), f(24), f(8), null, null, null, new Float64Array(8), 1, 1, 2, 1, 1, 3, 4), /strides needs 20/);
    assert.throws(() => kernel.attention(f(8), f(24), f(24), f(8), null, null, null, strides({ 4: Number.NaN }), 1, 1, 2, 1, 1, 3, 4), /strides\[4\] must be a non-negative integer/);
    // Strides so large that int64 sums would wrap around still count as reaching past the end.
    assert.throws(() => kernel.attention(f(8), f(24), f(24), f(8), null, null, null, strides({ 5: 2 ** 62 }), 1, 1, 2, 1, 1, 3, 4), /strides\[5\] must be a non-negative integer/);
    assert.throws(() => kernel.attention(f(8), f(24), f(24), f(8), null, null, null, strides({ 5: 2 ** 52 }), 1, 1, 2, 1, 1, 3, 4), /k needs 9007199254740992 elements/);
    assert.throws(() => kernel.attention(f(8), f(24), f(24), f(8), null, f(4), null, strides({ 15: 2 ** 52 }), 1, 1, 2, 1, 1, 3, 4), /mask's strides reach element 9007199254740992/);
    assert.throws(() => kernel.attention(f(8), f(24), f(24), f(8), null, null, null, strides({ 13: 0.5 }), 1, 1, 2, 1, 1, 3, 4), /strides\[13\] must be a non-negative integer/);
    assert.throws(() => kernel.attention(f(8), f(24), f(24), f(8), null, null, null, strides(), 1, 1, 2, 1, 1.5, 3, 4), /queries must be a non-negative integer/);
    assert.throws(() => kernel.attention(f(8), new Int8Array(24) as unknown as Float32Array, f(24), f(8), null, null, null, strides(), 1, 1, 2, 1, 1, 3, 4), TypeError);
  });

  test('q, k and v read straight from a fused q|k|v projection and z written as merged heads equal the packed call', async () => {
    if (!(await native())) return;
    const [batch, seq, heads, dHead] = [2, 5, 3, 8];
    const width = heads * dHead;
    const qkv = random([batch, seq, 3 * width], 22); // [batch, seq, 3·heads·dHead]
    const heads4 = (t: Tensor) => t.reshape([batch, seq, heads, dHead]).permute([0, 2, 1, 3]); // [batch, heads, seq, dHead]
    const part = (i: number) => heads4(qkv.slice(2, i * width, (i + 1) * width));
    const mask = causalMask(batch, seq, seq);
    const reference = unfused(() => attend(part(0), part(1), part(2), { scale: 0.4, mask }));
    const z = new Float32Array(batch * seq * width); // [batch, seq, heads·dHead]
    const rows = (offset: number) => ({ data: qkv.f32().subarray(offset), strides: [seq * 3 * width, dHead, 3 * width] as const });
    const pattern = attendRows({ q: rows(0), k: rows(width), v: rows(2 * width), z: { data: z, strides: [seq * width, dHead, width] } }, { batch, heads, kvHeads: heads, queries: seq, keys: seq, dHead }, { scale: 0.4, mask });
    assertClose(pattern, reference.pattern, 'pattern');
    assertClose(new Tensor('f32', [batch, seq, heads, dHead], z).permute([0, 2, 1, 3]), reference.z, 'z');
  });
});
