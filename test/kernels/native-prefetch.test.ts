/**
 * The native addon's work between decode products (native/addon.cc,
 * split_gemv; native/thread_pool.cc; native/ops.cc): the idle helper
 * prefetching the next product's weight, the helper taking its chunks from the
 * back, and a decode step's attention split between polling helpers. None of
 * it may change a bit of any result, and a prefetched weight that was freed
 * meanwhile must be harmless.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { loadAddon } from '../../src/kernels/native.js';
import { randomArray } from '../helpers/random.js';

interface PrefetchAddon {
  gemm(a: Float32Array, aOffset: number, b: Float32Array, bOffset: number, c: Float32Array, cOffset: number, m: number, n: number, k: number, transB: boolean): void;
  gemmBf16(a: Float32Array, aOffset: number, b: Uint16Array, bOffset: number, c: Float32Array, cOffset: number, m: number, n: number, k: number): void;
  gemmInt8(a: Float32Array, aOffset: number, q: Int8Array, qOffset: number, scales: Float32Array, c: Float32Array, cOffset: number, m: number, n: number, k: number): void;
  gemmInt8Quantized(a: Float32Array, aOffset: number, q: Int8Array, qOffset: number, scales: Float32Array, c: Float32Array, cOffset: number, m: number, n: number, k: number): void;
  attention(
    q: Float32Array, k: Float32Array, v: Float32Array, z: Float32Array, pattern: Float32Array | null, mask: Float32Array | null, bias: Float32Array | null,
    strides: Float64Array, scale: number, batch: number, heads: number, kvHeads: number, queries: number, keys: number, dim: number,
  ): void;
  setDecodePrefetch(bytes: number): number;
  setThreads(threads: number): number;
  threads(): number;
}

const loaded = loadAddon();
const addon = 'addon' in loaded ? (loaded.addon as unknown as PrefetchAddon) : undefined;

/** The calling thread busy for `us` microseconds: the gap in which the helper prefetches. */
function busy(us: number): void {
  const end = performance.now() + us / 1000;
  while (performance.now() < end);
}

/** C = A · Wᵀ in f64, W [n, k] as f32 values: the yardstick. */
function referenceRows(a: Float32Array, w: ArrayLike<number>, m: number, n: number, k: number, scale = (j: number) => 1 + 0 * j): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) sum += a[i * k + p] * w[j * k + p];
      c[i * n + j] = sum * scale(j);
    }
  }
  return c;
}

function assertClose(actual: Float32Array, expected: Float64Array, tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tolerance, `${what}: element ${i} is ${actual[i]}, expected ${expected[i]}`);
  }
}

/** The low 16 bits of each f32 dropped: bf16 bits. */
function toBf16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  return new Uint16Array(values.length).map((_, i) => bits[i] >>> 16);
}

interface Product {
  name: string;
  /** Writes the product into a fresh array. */
  run(): Float32Array;
}

/** Decode products over 1 MB (split between threads, so prefetched) in every weight dtype and both f32 layouts, m of 1 and 3. */
function decodeProducts(native: PrefetchAddon): Product[] {
  const k = 600;
  const a1 = randomArray(k, 1);
  const a3 = randomArray(3 * k, 2);
  const f32Rows = randomArray(601 * k, 3); // [n, k], n off the 64-column blocks
  const f32Cols = randomArray(k * 450, 4); // [k, n]
  const bf16 = toBf16(randomArray(1000 * k, 5));
  const int8 = new Int8Array(2100 * k).map((_, i) => ((i * 37) % 255) - 127);
  const scales = randomArray(2100, 6).map((s) => 0.01 + Math.abs(s) / 50);
  return [
    { name: 'f32 [n, k], m = 1', run: () => { const c = new Float32Array(601); native.gemm(a1, 0, f32Rows, 0, c, 0, 1, 601, k, true); return c; } },
    { name: 'f32 [k, n], m = 3', run: () => { const c = new Float32Array(3 * 450); native.gemm(a3, 0, f32Cols, 0, c, 0, 3, 450, k, false); return c; } },
    { name: 'bf16, m = 3', run: () => { const c = new Float32Array(3 * 1000); native.gemmBf16(a3, 0, bf16, 0, c, 0, 3, 1000, k); return c; } },
    { name: 'int8, m = 1', run: () => { const c = new Float32Array(2100); native.gemmInt8(a1, 0, int8, 0, scales, c, 0, 1, 2100, k); return c; } },
    { name: 'int8 quantized, m = 3', run: () => { const c = new Float32Array(3 * 2100); native.gemmInt8Quantized(a3, 0, int8, 0, scales, c, 0, 3, 2100, k); return c; } },
    { name: 'f32 [n, k] again, m = 3', run: () => { const c = new Float32Array(3 * 601); native.gemm(a3, 0, f32Rows, 0, c, 0, 3, 601, k, true); return c; } },
  ];
}

/** Three passes over the products in order, with a gap after each (so the sequence is learnt and prefetched); the last pass's results. */
function decodePasses(products: Product[]): Float32Array[] {
  let results: Float32Array[] = [];
  for (let pass = 0; pass < 3; pass++) {
    results = products.map((p) => {
      const c = p.run();
      busy(100);
      return c;
    });
  }
  return results;
}

/** Runs body with the addon's threads and decode prefetch set, then restores both. */
function withSettings<T>(native: PrefetchAddon, threads: number, prefetchBytes: number, body: () => T): T {
  const threadsBefore = native.threads();
  native.setThreads(threads);
  const prefetchBefore = native.setDecodePrefetch(prefetchBytes);
  try {
    return body();
  } finally {
    native.setDecodePrefetch(prefetchBefore);
    native.setThreads(threadsBefore);
  }
}

describe('native work between decode products', { skip: addon === undefined ? 'native addon not built' : false }, () => {
  const native = addon as PrefetchAddon;

  test('decode products give the same bits with the next weight prefetched, without, and on one thread', () => {
    const products = decodeProducts(native);
    const prefetched = withSettings(native, 2, 1 << 20, () => decodePasses(products));
    const plain = withSettings(native, 2, 0, () => decodePasses(products));
    const oneThread = withSettings(native, 1, 1 << 20, () => decodePasses(products));
    products.forEach((p, i) => {
      assert.deepEqual(prefetched[i], plain[i], `${p.name}: prefetch on and off`);
      assert.deepEqual(prefetched[i], oneThread[i], `${p.name}: two threads and one`);
    });
    // And the numbers are the product's: the first against the f64 yardstick.
    const k = 600;
    assertClose(prefetched[0], referenceRows(randomArray(k, 1), randomArray(601 * k, 3), 1, 601, k), 1e-4, products[0].name);
  });

  test('a split decode product narrower than its chunks (most of them empty) is still whole, in both layouts', () => {
    // 20 columns of 20000 weights (1.6 MB: split) are two 16-column blocks for fourteen chunks.
    const n = 20;
    const k = 20000;
    const a = randomArray(2 * k, 41);
    const rows = randomArray(n * k, 42); // [n, k]
    const cols = new Float32Array(k * n).map((_, i) => rows[(i % n) * k + Math.floor(i / n)]); // the same weight as [k, n]
    const expected = referenceRows(a, rows, 2, n, k);
    for (const threads of [1, 2]) {
      withSettings(native, threads, 1 << 20, () => {
        for (const transB of [true, false]) {
          const c = new Float32Array(2 * n).fill(Number.NaN);
          native.gemm(a, 0, transB ? rows : cols, 0, c, 0, 2, n, k, transB);
          assertClose(c, expected, 1e-3, `${threads} thread(s), transB ${transB}`);
        }
      });
    }
  });

  test('a weight changed in place after the sequence was learnt gives the new product', () => {
    const k = 700;
    const a = randomArray(k, 11);
    const first = randomArray(800 * k, 12); // 2.2 MB
    const second = randomArray(900 * k, 13);
    const run = (w: Float32Array, n: number) => {
      const c = new Float32Array(n);
      native.gemm(a, 0, w, 0, c, 0, 1, n, k, true);
      busy(100);
      return c;
    };
    withSettings(native, 2, 1 << 20, () => {
      for (let pass = 0; pass < 3; pass++) {
        run(first, 800);
        run(second, 900);
      }
      second.set(randomArray(900 * k, 14)); // new values where the helper prefetches from
      run(first, 800);
      assertClose(run(second, 900), referenceRows(a, second, 1, 900, k), 1e-4, 'the changed weight');
    });
  });

  test('a prefetched weight freed before its turn is harmless', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const k = 1000;
    const a = randomArray(k, 21);
    const kept = randomArray(1200 * k, 22); // 4.8 MB
    const run = (w: Float32Array, n: number) => {
      const c = new Float32Array(n);
      native.gemm(a, 0, w, 0, c, 0, 1, n, k, true);
      busy(200);
      return c;
    };
    await withSettings(native, 2, 32 << 20, async () => {
      // 48 MB: above glibc's largest mmap threshold (32 MB), so freeing it unmaps it.
      let doomed: Float32Array | undefined = randomArray(12000 * k, 23);
      for (let pass = 0; pass < 3; pass++) {
        run(kept, 1200);
        run(doomed, 12000);
      }
      doomed = undefined;
      const rssBefore = process.memoryUsage().rss;
      for (let i = 0; i < 3 && process.memoryUsage().rss > rssBefore - 40e6; i++) {
        gc();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok(process.memoryUsage().rss < rssBefore - 40e6, 'the 48 MB weight was freed (its memory returned)');
      // The helper is now asked to prefetch where the freed weight was.
      const after = run(kept, 1200);
      const again = run(kept, 1200);
      assert.deepEqual(again, after);
      assertClose(after, referenceRows(a, kept, 1, 1200, k), 1e-4, 'the product after the freed weight');
    });
  });

  test('setDecodePrefetch returns the previous setting and names its argument in errors', () => {
    const before = native.setDecodePrefetch(4096);
    try {
      assert.equal(native.setDecodePrefetch(0), 4096);
      assert.equal(native.setDecodePrefetch(1 << 20), 0);
      assert.throws(() => native.setDecodePrefetch(-1), /^RangeError: setDecodePrefetch: bytes must be a non-negative integer/);
      assert.throws(() => native.setDecodePrefetch(1.5), /^RangeError: setDecodePrefetch: bytes must be a non-negative integer/);
      assert.throws(() => native.setDecodePrefetch(64 << 20), /^RangeError: setDecodePrefetch: bytes must be at most 33554432/);
      assert.equal(native.setDecodePrefetch(1 << 20), 1 << 20, 'a rejected value leaves the setting as it was');
    } finally {
      native.setDecodePrefetch(before);
    }
  });

  test('the default prefetches 1 MB of the next weight', () => {
    const before = native.setDecodePrefetch(0);
    native.setDecodePrefetch(before);
    assert.equal(before, 1 << 20);
  });

  describe('a decode step split between polling helpers', () => {
    /** softmax(q·kᵀ·scale + mask) · v per head in f64, q [heads, dim], k/v [kvHeads, capacity, dim]. */
    function referenceAttention(q: Float32Array, k: Float32Array, v: Float32Array, mask: Float32Array, heads: number, kvHeads: number, keys: number, capacity: number, dim: number, scale: number): Float64Array {
      const z = new Float64Array(heads * dim);
      for (let h = 0; h < heads; h++) {
        const g = Math.floor(h / (heads / kvHeads));
        const scores = Array.from({ length: keys }, (_, j) => {
          let s = 0;
          for (let d = 0; d < dim; d++) s += q[h * dim + d] * k[(g * capacity + j) * dim + d];
          return s * scale + mask[j];
        });
        const max = Math.max(...scores);
        const weights = scores.map((s) => Math.exp(s - max));
        const total = weights.reduce((x, y) => x + y, 0);
        for (let d = 0; d < dim; d++) {
          let sum = 0;
          for (let j = 0; j < keys; j++) sum += weights[j] * v[(g * capacity + j) * dim + d];
          z[h * dim + d] = sum / total;
        }
      }
      return z;
    }

    for (const { heads, kvHeads, keys } of [
      { heads: 12, kvHeads: 12, keys: 35 }, // GPT-2-small, a 32-token prompt and 3 steps
      { heads: 8, kvHeads: 2, keys: 130 }, // grouped-query, more than one key tile
    ]) {
      test(`${heads} heads over ${kvHeads} KV heads, ${keys} keys: the bits of one thread, the reference's numbers`, () => {
        const dim = 64;
        const capacity = 256;
        const q = randomArray(heads * dim, 31);
        const k = randomArray(kvHeads * capacity * dim, 32);
        const v = randomArray(kvHeads * capacity * dim, 33);
        const mask = new Float32Array(keys).map((_, j) => (j % 7 === 3 ? -Infinity : 0));
        const strides = new Float64Array(20);
        // q, z [1, heads, 1, dim]; k, v [1, kvHeads, capacity, dim]; mask [1, 1, 1, keys].
        strides.set([heads * dim, dim, dim, kvHeads * capacity * dim, capacity * dim, dim, kvHeads * capacity * dim, capacity * dim, dim, heads * dim, dim, dim, 0, 0, 0, 1]);
        const weight = randomArray(1100 * 300, 34); // a 1.3 MB product first: the helpers are polling after it
        const x = randomArray(300, 35);
        const y = new Float32Array(1100);
        const step = (threads: number) =>
          withSettings(native, threads, 1 << 20, () => {
            const z = new Float32Array(heads * dim);
            native.gemm(x, 0, weight, 0, y, 0, 1, 1100, 300, true);
            native.attention(q, k, v, z, null, mask, null, strides, 0.125, 1, heads, kvHeads, 1, keys, dim);
            return z;
          });
        const one = step(1);
        const two = step(2);
        assert.deepEqual(two, one);
        assertClose(two, referenceAttention(q, k, v, mask, heads, kvHeads, keys, capacity, dim, 0.125), 2e-6, 'z');
      });
    }
  });
});
