import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { jsAttentionKernel } from '../../src/kernels/attention-js.js';
import { fusedAttentionKernel, setFusedAttentionKernel, type FusedAttentionKernel } from '../../src/kernels/attention.js';
import { setElementwiseKernel } from '../../src/kernels/elementwise.js';
import { kernelInfo, matmulKernel, referenceMatmul, setMatmulKernel, useFastestKernel } from '../../src/kernels/index.js';
import { attend } from '../../src/nn/attention.js';
import { ShapeError } from '../../src/errors.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { randomArray } from '../helpers/random.js';
import { countTypedArrays, firstDifference, outsideWasmKernel } from '../helpers/typed-arrays.js';

const F32_MIN = -3.4028234663852886e38;

function random(shape: number[], seed: number, amplitude = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor('f32', shape, randomArray(n, seed).map((x) => x * amplitude));
}

/** Rows of dim floats as the kernel reads them: the array from the first head's start and three element strides. */
interface Rows {
  data: Float32Array;
  strides: [number, number, number];
}

/**
 * t [batch, heads, n, dim] laid out as a caller hands it to the kernel:
 * `packed` as is; `merged` as heads side by side in rows wider than them, from
 * an offset (q, k, v read from a fused projection); `cache` in a KV cache with
 * spare positions after the n filled ones. Every float the layout does not use
 * is NaN, so a read outside the operand shows in the result.
 */
function layout(t: Tensor, kind: 'packed' | 'merged' | 'cache'): Rows {
  const [batch, heads, n, dim] = t.shape;
  const src = t.f32();
  if (kind === 'packed') return { data: src, strides: [heads * n * dim, n * dim, dim] };
  if (kind === 'merged') {
    const [start, width] = [3, heads * dim + 5];
    const buffer = new Float32Array(start + batch * n * width).fill(Number.NaN);
    for (let b = 0; b < batch; b++) for (let h = 0; h < heads; h++) for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) buffer[start + (b * n + i) * width + h * dim + d] = src[((b * heads + h) * n + i) * dim + d];
    return { data: buffer.subarray(start), strides: [n * width, dim, width] };
  }
  const capacity = n + 7;
  const buffer = new Float32Array(batch * heads * capacity * dim).fill(Number.NaN);
  for (let b = 0; b < batch; b++) for (let h = 0; h < heads; h++) buffer.set(src.subarray(((b * heads + h) * n) * dim, ((b * heads + h) * n + n) * dim), ((b * heads + h) * capacity) * dim);
  return { data: buffer, strides: [heads * capacity * dim, capacity * dim, dim] };
}

/** z [batch, heads, queries, dim] read back from `rows`. */
function readRows(rows: Rows, shape: number[]): Tensor {
  const [batch, heads, n, dim] = shape;
  const out = new Float32Array(batch * heads * n * dim);
  const [sb, sh, si] = rows.strides;
  for (let b = 0; b < batch; b++) for (let h = 0; h < heads; h++) for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) out[((b * heads + h) * n + i) * dim + d] = rows.data[b * sb + h * sh + i * si + d];
  return new Tensor('f32', shape, out);
}

/** An additive term (mask or bias): the tensor the unfused ops add, and the floats and strides the kernel reads. */
interface Term {
  tensor: Tensor;
  data: Float32Array;
  strides: [number, number, number, number];
}

/** A term of shape [b, h, q, k] (1 on repeated axes) whose key rows lie `rowStride` apart (≥ k: a session's growing mask buffer). */
function term(values: Tensor, rowStride = values.shape[3]): Term {
  const [b, h, q, k] = values.shape;
  const data = new Float32Array(b * h * q * rowStride).fill(Number.NaN);
  const src = values.f32();
  for (let r = 0; r < b * h * q; r++) data.set(src.subarray(r * k, (r + 1) * k), r * rowStride);
  const strides: [number, number, number, number] = [b === 1 ? 0 : h * q * rowStride, h === 1 ? 0 : q * rowStride, q === 1 ? 0 : rowStride, 1];
  return { tensor: values, data, strides };
}

/** Causal and left padding [batch, 1, queries, keys] as GPT-2 builds it (F32 min hidden): row b pads its first b keys. */
function causalMask(batch: number, queries: number, keys: number): Tensor {
  const data = new Float32Array(batch * queries * keys);
  for (let b = 0; b < batch; b++) for (let i = 0; i < queries; i++) for (let j = 0; j < keys; j++) data[(b * queries + i) * keys + j] = j < b || j > keys - queries + i ? F32_MIN : 0;
  return new Tensor('f32', [batch, 1, queries, keys], data);
}

/** Padding [batch, 1, 1, keys] with −∞: row b hides its last b keys (all of them when b ≥ keys: rows that attend to nothing). */
function paddingMask(batch: number, keys: number): Tensor {
  const data = new Float32Array(batch * keys);
  for (let b = 0; b < batch; b++) for (let j = Math.max(0, keys - b); j < keys; j++) data[b * keys + j] = -Infinity;
  return new Tensor('f32', [batch, 1, 1, keys], data);
}

/** Each KV head repeated for its group of query heads: [batch, kvHeads, n, dim] → [batch, heads, n, dim]. */
function repeatHeads(t: Tensor, heads: number): Tensor {
  const [batch, kvHeads, n, dim] = t.shape;
  const group = heads / kvHeads;
  const out = new Float32Array(batch * heads * n * dim);
  const src = t.f32();
  for (let b = 0; b < batch; b++) for (let h = 0; h < heads; h++) out.set(src.subarray(((b * kvHeads + Math.floor(h / group)) * n) * dim, ((b * kvHeads + Math.floor(h / group)) * n + n) * dim), ((b * heads + h) * n) * dim);
  return new Tensor('f32', [batch, heads, n, dim], out);
}

/** The unfused ops (matmul, scale, add, softmax, matmul): the reference. */
function reference(q: Tensor, k: Tensor, v: Tensor, scale: number, mask?: Term, bias?: Term): { z: Tensor; pattern: Tensor } {
  const previous = setFusedAttentionKernel(undefined);
  try {
    const heads = q.shape[1];
    return attend(q, repeatHeads(k, heads), repeatHeads(v, heads), { scale, mask: mask?.tensor, positionBias: bias?.tensor });
  } finally {
    setFusedAttentionKernel(previous);
  }
}

interface Case {
  batch: number;
  heads: number;
  kvHeads: number;
  queries: number;
  keys: number;
  dim: number;
  layout: 'packed' | 'merged' | 'cache';
  mask?: (batch: number, queries: number, keys: number) => Term;
  bias?: boolean;
}

/** The kernel's z and pattern (or none) for q, k, v in `c.layout`, z written as merged heads for the merged layout. */
function run(kernel: FusedAttentionKernel, c: Case, q: Tensor, k: Tensor, v: Tensor, scale: number, withPattern: boolean, mask?: Term, bias?: Term): { z: Tensor; pattern?: Tensor } {
  const { batch, heads, kvHeads, queries, keys, dim } = c;
  const [qr, kr, vr] = [layout(q, c.layout === 'cache' ? 'packed' : c.layout), layout(k, c.layout), layout(v, c.layout)];
  const zRows = layout(new Tensor('f32', [batch, heads, queries, dim], new Float32Array(batch * heads * queries * dim)), c.layout === 'merged' ? 'merged' : 'packed');
  const pattern = withPattern ? new Float32Array(batch * heads * queries * keys).fill(Number.NaN) : null;
  const strides = Float64Array.from([...qr.strides, ...kr.strides, ...vr.strides, ...zRows.strides, ...(mask?.strides ?? [0, 0, 0, 0]), ...(bias?.strides ?? [0, 0, 0, 0])]);
  kernel.attention(qr.data, kr.data, vr.data, zRows.data, pattern, mask?.data ?? null, bias?.data ?? null, strides, scale, batch, heads, kvHeads, queries, keys, dim);
  return { z: readRows(zRows, [batch, heads, queries, dim]), pattern: pattern ? new Tensor('f32', [batch, heads, queries, keys], pattern) : undefined };
}

function assertClose(actual: Tensor, expected: Tensor, what: string, tolerance: number): void {
  assert.deepEqual(actual.shape, expected.shape, what);
  const a = actual.f32();
  const e = expected.f32();
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - e[i]) <= tolerance, `${what}[${i}]: ${a[i]} vs ${e[i]}`);
}

const MASKS = {
  none: undefined,
  causal: (b: number, q: number, k: number) => term(causalMask(b, q, k)),
  'causal in a wider session buffer': (b: number, q: number, k: number) => term(causalMask(b, q, k), k + 9),
  'padding with −∞ (some rows all hidden)': (b: number, _q: number, k: number) => term(paddingMask(b, k)),
  'one random row for everything': (_b: number, _q: number, k: number) => term(random([1, 1, 1, k], 41, 2)),
};

// Decode steps (1 query, a few for beams or speculative steps) and prompts; odd sizes throughout.
const SHAPES = [
  { batch: 1, heads: 12, kvHeads: 12, queries: 1, keys: 48, dim: 64 },
  { batch: 3, heads: 4, kvHeads: 2, queries: 1, keys: 37, dim: 13 },
  { batch: 2, heads: 6, kvHeads: 2, queries: 3, keys: 21, dim: 8 },
  { batch: 2, heads: 3, kvHeads: 3, queries: 2, keys: 1, dim: 8 },
  { batch: 2, heads: 2, kvHeads: 1, queries: 1, keys: 300, dim: 80 },
  { batch: 3, heads: 2, kvHeads: 2, queries: 17, keys: 17, dim: 7 },
  { batch: 1, heads: 4, kvHeads: 4, queries: 65, keys: 130, dim: 64 },
];

describe('the TypeScript fused attention kernel', () => {
  test('is the active kernel until the addon loads, and the native one after (unless GLASSFORMER_NATIVE=0)', async () => {
    await useFastestKernel();
    if (kernelInfo().name.startsWith('native')) assert.notEqual(fusedAttentionKernel(), jsAttentionKernel);
    else assert.equal(fusedAttentionKernel(), jsAttentionKernel);
  });

  // On the fastest matmul kernel (native, or WebAssembly under GLASSFORMER_NATIVE=0) and on the reference one (a browser without WebAssembly SIMD).
  for (const matmul of ['fastest', 'reference'] as const) {
    for (const shape of SHAPES) {
      test(`equals the unfused ops (${matmul} matmul): ${shape.batch}×${shape.heads} heads over ${shape.kvHeads} KV heads, ${shape.queries} queries, ${shape.keys} keys, dim ${shape.dim}; every layout, mask, pattern on and off`, async () => {
        await useFastestKernel();
        const previous = matmul === 'reference' ? setMatmulKernel(referenceMatmul) : matmulKernel();
        try {
          const { batch, heads, kvHeads, queries, keys, dim } = shape;
          const q = random([batch, heads, queries, dim], 1);
          const k = random([batch, kvHeads, keys, dim], 2);
          const v = random([batch, kvHeads, keys, dim], 3);
          const scale = 1 / Math.sqrt(dim);
          for (const kind of ['packed', 'merged', 'cache'] as const) {
            for (const [name, makeMask] of Object.entries(MASKS)) {
              const mask = makeMask?.(batch, queries, keys);
              const want = reference(q, k, v, scale, mask);
              for (const withPattern of [true, false]) {
                const got = run(jsAttentionKernel, { ...shape, layout: kind }, q, k, v, scale, withPattern, mask);
                const what = `${kind}, mask ${name}, pattern ${withPattern ? 'on' : 'off'}`;
                assertClose(got.z, want.z, `${what}: z`, 2e-6);
                if (got.pattern) assertClose(got.pattern, want.pattern, `${what}: pattern`, 2e-6);
              }
            }
          }
        } finally {
          setMatmulKernel(previous);
        }
      });
    }
  }

  test('gives the unfused ops\' bits when the elementwise ops run in TypeScript too (as without the addon): every shape, layout and mask', async () => {
    await useFastestKernel();
    const elementwise = setElementwiseKernel(undefined);
    try {
      for (const shape of SHAPES) {
        const { batch, heads, kvHeads, queries, keys, dim } = shape;
        const q = random([batch, heads, queries, dim], 51);
        const k = random([batch, kvHeads, keys, dim], 52);
        const v = random([batch, kvHeads, keys, dim], 53);
        const bias = term(random([1, heads, queries, keys], 54, 3));
        for (const [name, makeMask] of Object.entries(MASKS)) {
          const mask = makeMask?.(batch, queries, keys);
          const want = reference(q, k, v, 1 / Math.sqrt(dim), mask, bias);
          for (const kind of ['packed', 'merged', 'cache'] as const) {
            const got = run(jsAttentionKernel, { ...shape, layout: kind }, q, k, v, 1 / Math.sqrt(dim), true, mask, bias);
            const what = `${queries}×${keys} ${kind}, mask ${name}`;
            assert.equal(firstDifference(got.z, want.z), -1, `${what}: z`);
            assert.equal(firstDifference(got.pattern as Tensor, want.pattern), -1, `${what}: pattern`);
          }
        }
      }
    } finally {
      setElementwiseKernel(elementwise);
    }
  });

  test("T5's position bias (one row for the batch, per head) with a padding mask, decode step and prompt", async () => {
    await useFastestKernel();
    for (const queries of [1, 19]) {
      const [batch, heads, keys, dim] = [3, 4, 19, 16];
      const q = random([batch, heads, queries, dim], 6, 3);
      const k = random([batch, heads, keys, dim], 7, 3);
      const v = random([batch, heads, keys, dim], 8);
      const mask = term(paddingMask(batch, keys));
      const bias = term(random([1, heads, queries, keys], 9, 4), keys + 3);
      const want = reference(q, k, v, 1, mask, bias);
      const got = run(jsAttentionKernel, { batch, heads, kvHeads: heads, queries, keys, dim, layout: 'cache' }, q, k, v, 1, true, mask, bias);
      assertClose(got.z, want.z, `${queries} queries: z`, 1e-5);
      assertClose(got.pattern as Tensor, want.pattern, `${queries} queries: pattern`, 1e-5);
    }
  });

  test('a row whose keys are all hidden attends to nothing (z and pattern 0) with −∞, and uniformly with F32 min, as the unfused softmax', async () => {
    await useFastestKernel();
    const [batch, heads, queries, keys, dim] = [1, 2, 3, 5, 4];
    const q = random([batch, heads, queries, dim], 11);
    const k = random([batch, heads, keys, dim], 12);
    const v = random([batch, heads, keys, dim], 13);
    // Query 0 sees every key, query 1 none (−∞), query 2 none (F32 min, as Hugging Face masks).
    const rows = new Float32Array(queries * keys);
    rows.fill(-Infinity, keys, 2 * keys);
    rows.fill(F32_MIN, 2 * keys);
    const mask = term(new Tensor('f32', [1, 1, queries, keys], rows));
    for (const queriesRun of [queries]) {
      const got = run(jsAttentionKernel, { batch, heads, kvHeads: heads, queries: queriesRun, keys, dim, layout: 'packed' }, q, k, v, 0.5, true, mask);
      const want = reference(q, k, v, 0.5, mask);
      assertClose(got.z, want.z, 'z', 2e-6);
      assertClose(got.pattern as Tensor, want.pattern, 'pattern', 2e-6);
      for (let h = 0; h < heads; h++) {
        assert.deepEqual([...got.z.f32().subarray((h * queries + 1) * dim, (h * queries + 2) * dim)], [0, 0, 0, 0]);
        assert.deepEqual([...(got.pattern as Tensor).f32().subarray((h * queries + 2) * keys, (h * queries + 3) * keys)], [0.2, 0.2, 0.2, 0.2, 0.2].map(Math.fround));
      }
    }
  });

  test('agrees with the native kernel when the addon is loaded', async (t) => {
    await useFastestKernel();
    const native = fusedAttentionKernel();
    if (!native || native === jsAttentionKernel) {
      t.skip('no native addon (GLASSFORMER_NATIVE=0)');
      return;
    }
    for (const shape of SHAPES) {
      const { batch, heads, kvHeads, queries, keys, dim } = shape;
      const q = random([batch, heads, queries, dim], 21);
      const k = random([batch, kvHeads, keys, dim], 22);
      const v = random([batch, kvHeads, keys, dim], 23);
      const mask = term(causalMask(batch, queries, keys), keys + 2);
      const bias = term(random([1, heads, queries, keys], 24, 2));
      for (const kind of ['merged', 'cache'] as const) {
        const got = run(jsAttentionKernel, { ...shape, layout: kind }, q, k, v, 0.3, true, mask, bias);
        const want = run(native, { ...shape, layout: kind }, q, k, v, 0.3, true, mask, bias);
        assertClose(got.z, want.z, `${kind} ${queries}×${keys}: z`, 1e-5);
        assertClose(got.pattern as Tensor, want.pattern as Tensor, `${kind} ${queries}×${keys}: pattern`, 1e-5);
      }
    }
  });

  test('a decode step allocates no typed array once its scratch blocks have grown (outside the WebAssembly matmul)', async () => {
    await useFastestKernel();
    const shape = { batch: 2, heads: 4, kvHeads: 2, queries: 1, keys: 200, dim: 24, layout: 'merged' as const };
    const q = random([2, 4, 1, 24], 31);
    const k = random([2, 2, 200, 24], 32);
    const v = random([2, 2, 200, 24], 33);
    const mask = term(causalMask(2, 1, 200), 256);
    const [qr, kr, vr] = [layout(q, 'merged'), layout(k, 'cache'), layout(v, 'cache')];
    const z = layout(new Tensor('f32', [2, 4, 1, 24], new Float32Array(2 * 4 * 24)), 'merged');
    const strides = Float64Array.from([...qr.strides, ...kr.strides, ...vr.strides, ...z.strides, ...mask.strides, 0, 0, 0, 0]);
    const step = () => jsAttentionKernel.attention(qr.data, kr.data, vr.data, z.data, null, mask.data, null, strides, 0.2, shape.batch, shape.heads, shape.kvHeads, shape.queries, shape.keys, shape.dim);
    step();
    const { where } = countTypedArrays(() => {
      for (let i = 0; i < 5; i++) step();
    });
    const counted = kernelInfo().name.startsWith('wasm') ? outsideWasmKernel(where) : where;
    assert.deepEqual(counted, []);
  });

  test('checks every extent with a typed error naming the operand, as the native kernel', () => {
    const f = (n: number) => new Float32Array(n);
    // One batch row, 2 query heads sharing 1 KV head, 1 query, 3 keys of dim 4; the keys 6 rows apart (a cache of capacity 6).
    const strides = (change: Record<number, number> = {}) => {
      const s = Float64Array.from([8, 4, 4, 24, 24, 4, 24, 24, 4, 8, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0]);
      for (const [i, v] of Object.entries(change)) s[Number(i)] = v;
      return s;
    };
    const call = (q: Float32Array, k: Float32Array, z: Float32Array, pattern: Float32Array | null, mask: Float32Array | null, bias: Float32Array | null, s: Float64Array, kvHeads = 1) =>
      () => jsAttentionKernel.attention(q, k, f(24), z, pattern, mask, bias, s, 1, 1, 2, kvHeads, 1, 3, 4);
    assert.doesNotThrow(call(f(8), f(24), f(8), f(6), null, null, strides()));
    assert.throws(call(f(8), f(11), f(8), f(6), null, null, strides()), (e: Error) => e instanceof ShapeError && /attention: k needs 12 elements for its strides but has length 11/.test(e.message));
    assert.throws(call(f(7), f(24), f(8), f(6), null, null, strides()), /q needs 8/);
    assert.throws(call(f(8), f(24), f(8), f(6), null, null, strides({ 10: 5 })), /z needs 9/);
    assert.throws(call(f(8), f(24), f(8), f(5), null, null, strides()), /pattern needs 6/);
    assert.throws(call(f(8), f(24), f(8), null, null, null, strides(), 3), /multiple of kvHeads/);
    assert.throws(call(f(8), f(24), f(8), null, f(2), null, strides({ 15: 1 })), /mask's strides reach element 2/);
    assert.throws(call(f(8), f(24), f(8), null, null, f(3), strides({ 17: 3, 19: 1 })), /bias's strides reach element 5/);
    assert.throws(call(f(8), f(24), f(8), null, null, null, new Float64Array(8)), /strides needs 20/);
    assert.throws(call(f(8), f(24), f(8), null, null, null, strides({ 4: Number.NaN })), /strides\[4\] must be a non-negative integer/);
    assert.throws(call(f(8), new Int8Array(24) as unknown as Float32Array, f(8), null, null, null, strides()), TypeError);
  });
});
