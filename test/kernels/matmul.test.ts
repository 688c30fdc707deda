import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  blockedMatmul,
  kernelInfo,
  matmulKernel,
  setMatmulKernel,
  useFastestKernel,
} from '../../src/kernels/index.js';
import { loadNativeKernel } from '../../src/kernels/native.js';
import type { MatmulKernel } from '../../src/kernels/types.js';
import { assertGemmAgrees, type GemmCase as Case, runGemm, SENTINEL } from '../helpers/gemm.js';

/** Deterministic values in [-1, 1) (mulberry32), so a failure reproduces. */
function randomArray(length: number, seed: number): Float32Array {
  let state = seed >>> 0;
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  }
  return out;
}

const SIZES = [1, 2, 3, 7, 16, 31, 33, 64, 100, 257];

/** Every m with every n, k cycling through the sizes, both B layouts, odd offsets on half of them. */
function shapeCases(): Case[] {
  const cases: Case[] = [];
  SIZES.forEach((m, i) => {
    SIZES.forEach((n, j) => {
      const k = SIZES[(3 * i + 7 * j) % SIZES.length];
      const offsets: [number, number, number] = (i + j) % 2 === 0 ? [0, 0, 0] : [3, 17, 5];
      cases.push({ m, n, k, transB: (i + j) % 2 === 0, offsets });
      cases.push({ m, n, k, transB: (i + j) % 2 === 1, offsets });
    });
  });
  return cases;
}

// Shapes a transformer meets: decode (m = 1, or a few beams) against GPT-2
// sized weights in both layouts, a deep k as in GPT-2's MLP down projection, and shapes wider
// than one cache block.
const MODEL_CASES: Case[] = [
  { m: 1, n: 3072, k: 768, transB: true, offsets: [0, 0, 0] },
  { m: 1, n: 3072, k: 768, transB: false, offsets: [7, 1, 9] },
  { m: 1, n: 5003, k: 769, transB: true, offsets: [1, 3, 2] },
  { m: 2, n: 768, k: 3072, transB: true, offsets: [0, 0, 0] },
  { m: 3, n: 3001, k: 200, transB: true, offsets: [5, 0, 1] },
  { m: 4, n: 2900, k: 190, transB: false, offsets: [0, 9, 0] },
  { m: 5, n: 40, k: 3072, transB: false, offsets: [2, 4, 6] },
  { m: 37, n: 4133, k: 300, transB: false, offsets: [0, 0, 0] },
  { m: 300, n: 70, k: 529, transB: true, offsets: [11, 0, 13] },
  { m: 128, n: 96, k: 768, transB: true, offsets: [0, 0, 0] },
];

function run(kernel: MatmulKernel, c: Case): Float32Array {
  return runGemm(kernel, c, randomArray);
}

function assertAgrees(kernel: MatmulKernel, c: Case): void {
  assertGemmAgrees(kernel, c, randomArray, kernel.name);
}

function assertAgreesOnAllShapes(kernel: MatmulKernel): void {
  for (const c of shapeCases()) assertAgrees(kernel, c);
  for (const c of MODEL_CASES) assertAgrees(kernel, c);
}

describe('blocked TypeScript kernel', () => {
  test('agrees with the reference on every shape, both B layouts and offset slices', () => {
    assertAgreesOnAllShapes(blockedMatmul);
  });

  test('writes zeros when k is 0 and nothing when m or n is 0', () => {
    const out = new Float32Array(6).fill(SENTINEL);
    blockedMatmul.gemm(new Float32Array(0), 0, new Float32Array(0), 0, out, 0, 2, 3, 0, false);
    assert.deepEqual([...out], [0, 0, 0, 0, 0, 0]);
    const untouched = new Float32Array(2).fill(SENTINEL);
    blockedMatmul.gemm(new Float32Array(4), 0, new Float32Array(4), 0, untouched, 0, 0, 2, 2, true);
    assert.deepEqual([...untouched], [SENTINEL, SENTINEL]);
  });
});

const root = fileURLToPath(new URL('../../..', import.meta.url));
const built = existsSync(`${root}/build/Release/glassformer_native.node`);
const loaded = loadNativeKernel();
const native = loaded.kernel;

describe('native kernel', () => {
  test('loads after npm install built it, unless GLASSFORMER_NATIVE=0 turned it off', () => {
    if (process.env.GLASSFORMER_NATIVE === '0') {
      assert.equal(native, undefined, 'GLASSFORMER_NATIVE=0 must keep the native kernel off');
      return;
    }
    assert.ok(built, `${root}/build/Release/glassformer_native.node is missing: npm install builds it (node scripts/build-native.mjs)`);
    assert.ok(native, `native kernel did not load: ${loaded.kernel ? '' : loaded.reason}`);
  });

  if (!native) return;
  const threadsBefore = native.threads();
  const isaBefore = native.isa();

  for (const isa of native.supportedIsas()) {
    for (const threads of [1, 2]) {
      test(`${isa} on ${threads} thread(s) agrees with the reference on every shape`, () => {
        native.setIsa(isa);
        native.setThreads(threads);
        try {
          assertAgreesOnAllShapes(native);
        } finally {
          native.setIsa(isaBefore);
          native.setThreads(threadsBefore);
        }
      });
    }
  }

  test('one and two threads give bit-identical results', () => {
    const cases: Case[] = [
      ...MODEL_CASES,
      { m: 200, n: 300, k: 100, transB: false, offsets: [0, 0, 0] },
      { m: 257, n: 33, k: 257, transB: true, offsets: [1, 2, 3] },
      // Decode products of weights from 1 MB up stream on both threads, in 64-column blocks (n off them here).
      { m: 3, n: 5001, k: 1000, transB: true, offsets: [1, 2, 3] },
      { m: 1, n: 5001, k: 1000, transB: false, offsets: [2, 0, 1] },
    ];
    try {
      for (const isa of native.supportedIsas()) {
        native.setIsa(isa);
        for (const c of cases) {
          native.setThreads(1);
          const one = run(native, c);
          native.setThreads(2);
          const two = run(native, c);
          assert.deepEqual(two, one, `${isa} m=${c.m} n=${c.n} k=${c.k} transB=${c.transB}`);
        }
      }
    } finally {
      native.setIsa(isaBefore);
      native.setThreads(threadsBefore);
    }
  });

  test('rejects matrices that do not fit their arrays, and arrays that are not Float32Array', () => {
    const a = new Float32Array(6);
    const b = new Float32Array(6);
    const c = new Float32Array(4);
    assert.throws(() => native.gemm(a, 1, b, 0, c, 0, 2, 2, 3, false), RangeError);
    assert.throws(() => native.gemm(a, 0, b, 0, c, 1, 2, 2, 3, true), RangeError);
    assert.throws(() => native.gemm(a, 0, b, 0, c, 0, 2, 3, 3, false), RangeError);
    assert.throws(() => native.gemm(a, 0, b, 0, c, 0, -1, 2, 3, false), RangeError);
    assert.throws(() => native.gemm(a, 0, b, 0, c, 0, 1.5, 2, 3, false), RangeError);
    const notF32 = new Float64Array(6) as unknown as Float32Array;
    assert.throws(() => native.gemm(notF32, 0, b, 0, c, 0, 2, 2, 3, false), TypeError);
  });

  test('every entry point names itself and the argument in its errors', () => {
    const a = new Float32Array(6);
    const c = new Float32Array(4);
    assert.throws(() => native.gemmInt8(new Float64Array(6) as unknown as Float32Array, 0, new Int8Array(6), 0, new Float32Array(2), c, 0, 2, 2, 3), /^TypeError: gemmInt8: a must be a Float32Array/);
    assert.throws(() => native.gemmInt8Quantized(a, 0, new Int8Array(6), 0, new Float32Array(2), c, 3, 2, 2, 3), /^RangeError: gemmInt8Quantized: c needs 2x2 elements from offset 3 but has 4/);
    assert.throws(() => native.gemmBf16(a, 0, new Uint16Array(6), 0, c, 0, 2, 2, 2.5), /^RangeError: gemmBf16: k must be a non-negative integer/);
    assert.throws(() => native.prepack(a, 0, -2, 3, false), /^RangeError: prepack: n must be a non-negative integer/);
    assert.throws(() => native.prepack(a, 0, 2, 3, 1 as unknown as boolean), /^TypeError: prepack: transB must be a boolean/);
    const packed = native.prepack(a, 0, 2, 3, false);
    assert.throws(() => native.gemmPacked(a, 1, packed, c, 0, 2), /^RangeError: gemmPacked: a needs 2x3 elements from offset 1 but has 6/);
    assert.throws(() => native.gemm(a, 0, a, 0, c, 0, 2, 2, 3, 0 as unknown as boolean), /^TypeError: gemm: transB must be a boolean/);
    assert.throws(() => native.setThreads(-1), /^RangeError: setThreads: threads must be a non-negative integer/);
    assert.throws(() => native.streamRead(a, 1, 'yes' as unknown as boolean), /^TypeError: streamRead: prefetch must be a boolean/);
    assert.throws(() => native.fmaPeak('long' as unknown as number), /^TypeError: fmaPeak: seconds must be a number/);
  });

  test('setThreads refuses a count below 1', () => {
    assert.throws(() => native.setThreads(0), RangeError);
    assert.equal(native.setThreads(threadsBefore), threadsBefore);
  });

  test('worker threads multiplying at the same time get the same results as the main thread', async () => {
    // Each worker loads the addon itself; the pool serves one caller at a time
    // and the others run their products on their own threads.
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.file);
      const { m, n, k } = workerData;
      const a = new Float32Array(m * k).map((_, i) => Math.sin(i));
      const b = new Float32Array(k * n).map((_, i) => Math.cos(i));
      const c = new Float32Array(m * n);
      for (let r = 0; r < 50; r++) addon.gemm(a, 0, b, 0, c, 0, m, n, k, r % 2 === 0);
      parentPort.postMessage(c);
    `;
    const m = 200, n = 300, k = 150;
    const a = new Float32Array(m * k).map((_, i) => Math.sin(i));
    const b = new Float32Array(k * n).map((_, i) => Math.cos(i));
    const expected = new Float32Array(m * n);
    native.gemm(a, 0, b, 0, expected, 0, m, n, k, false);
    const file = `${root}/build/Release/glassformer_native.node`;
    const results = await Promise.all(
      [0, 1, 2].map(
        () =>
          new Promise<Float32Array>((resolve, reject) => {
            const worker = new Worker(source, { eval: true, workerData: { file, m, n, k } });
            worker.once('message', resolve);
            worker.once('error', reject);
          }),
      ),
    );
    for (const got of results) assert.deepEqual(got, expected);
  });

  test('the FMA peak is a positive rate', () => {
    assert.ok(native.fmaPeak(0.02) > 0.5);
  });

  test('streamRead measures a positive bandwidth on every variant, 1 and 2 threads, and checks its arguments', () => {
    const buffer = new Float32Array((1 << 20) + 7).fill(1);
    try {
      for (const isa of native.supportedIsas()) {
        native.setIsa(isa);
        for (const threads of [1, 2]) {
          for (const prefetch of [false, true]) assert.ok(native.streamRead(buffer, threads, prefetch) > 0.1, `${isa} ${threads}T`);
        }
      }
    } finally {
      native.setIsa(isaBefore);
    }
    assert.throws(() => native.streamRead(new Float64Array(4) as unknown as Float32Array), TypeError);
    assert.throws(() => native.streamRead(buffer, 0), RangeError);
  });
});

describe('kernel selection', () => {
  test('GLASSFORMER_NATIVE=0 turns the native kernel off and says so', () => {
    const before = process.env.GLASSFORMER_NATIVE;
    process.env.GLASSFORMER_NATIVE = '0';
    try {
      assert.deepEqual(loadNativeKernel(), { kernel: undefined, reason: 'GLASSFORMER_NATIVE=0' });
    } finally {
      if (before === undefined) delete process.env.GLASSFORMER_NATIVE;
      else process.env.GLASSFORMER_NATIVE = before;
    }
  });

  test('the blocked kernel is the default, and useFastestKernel switches to native when it loads', async () => {
    const previous = matmulKernel();
    try {
      assert.equal(previous, blockedMatmul);
      assert.deepEqual(kernelInfo(), { name: 'blocked', threads: 1 });
      const info = await useFastestKernel();
      if (native) {
        assert.equal(info.name, native.name);
        assert.equal(info.threads, native.threads());
        assert.equal(info.nativeUnavailable, undefined);
      } else {
        // Without the addon WebAssembly SIMD runs (test/kernels/wasm.test.ts), unless GLASSFORMER_WASM=0.
        if (process.env.GLASSFORMER_WASM === '0') assert.equal(info.name, 'blocked');
        else assert.match(info.name, /^wasm-(relaxed-)?simd$/);
        assert.ok(info.nativeUnavailable);
      }
    } finally {
      setMatmulKernel(previous);
    }
  });
});
