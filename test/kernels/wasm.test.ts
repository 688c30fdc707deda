import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ShapeError } from '../../src/errors.js';
import { type Code, encodeModule, f32x4, I32, i32, local, v128 } from '../../src/kernels/wasm/emit.js';
import { createWasmKernel, detectWasmFeatures, type WasmMatmulKernel } from '../../src/kernels/wasm/kernel.js';
import { assertGemmAgrees, type GemmCase as Case, runGemm, SENTINEL } from '../helpers/gemm.js';
import { randomArray } from '../helpers/random.js';
import { HF_TINY, REPO } from '../helpers/shared.js';

const AWKWARD = [1, 3, 17, 65, 129];

/** Every m, n and k of the awkward sizes (not multiples of the 6×8 tile, 4-float vectors or the GEMV groups), both layouts. */
function awkwardCases(): Case[] {
  const cases: Case[] = [];
  for (const m of AWKWARD) {
    for (const n of AWKWARD) {
      for (const k of AWKWARD) {
        const offsets: [number, number, number] = (m + n + k) % 3 === 0 ? [0, 0, 0] : [3, 17, 5];
        cases.push({ m, n, k, transB: true, offsets }, { m, n, k, transB: false, offsets });
      }
    }
  }
  return cases;
}

// What a transformer multiplies: decode (1–4 rows) against GPT-2 sized weights
// in both layouts, a prompt's projections, deeper than one k block (384), wider
// than one column block (3072), and big enough to be split across threads.
const MODEL_CASES: Case[] = [
  { m: 1, n: 3072, k: 768, transB: true, offsets: [0, 0, 0] },
  { m: 1, n: 3072, k: 768, transB: false, offsets: [7, 1, 9] },
  { m: 2, n: 5003, k: 769, transB: true, offsets: [1, 3, 2] },
  { m: 3, n: 301, k: 770, transB: false, offsets: [0, 5, 0] },
  { m: 4, n: 768, k: 3072, transB: true, offsets: [0, 0, 0] },
  { m: 4, n: 2900, k: 190, transB: false, offsets: [0, 9, 0] },
  { m: 5, n: 40, k: 3072, transB: false, offsets: [2, 4, 6] },
  { m: 128, n: 768, k: 768, transB: true, offsets: [0, 0, 0] },
  { m: 64, n: 3100, k: 400, transB: true, offsets: [1, 1, 1] },
  { m: 37, n: 4133, k: 300, transB: false, offsets: [0, 0, 0] },
  { m: 700, n: 65, k: 129, transB: true, offsets: [11, 0, 13] },
  { m: 129, n: 600, k: 129, transB: false, offsets: [0, 2, 0] },
];

const run = (k: WasmMatmulKernel, c: Case): Float32Array => runGemm(k, c, randomArray);
const assertAgrees = (k: WasmMatmulKernel, c: Case): void => assertGemmAgrees(k, c, randomArray, `${k.name} ×${k.threads()}`);

/** Waits until the pool's workers have started (they instantiate the module in the background). */
async function workersReady(kernel: WasmMatmulKernel): Promise<void> {
  for (let tries = 0; kernel.readyWorkers() < kernel.maxThreads - 1; tries++) {
    assert.ok(tries < 500, `only ${kernel.readyWorkers()} of ${kernel.maxThreads - 1} workers started in 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const features = await detectWasmFeatures();

describe('WebAssembly feature detection', () => {
  test('Node has SIMD, shared-memory threads and (behind the flag the kernel sets) relaxed SIMD', () => {
    assert.deepEqual(features, { simd: true, relaxed: true, threads: true });
  });

  test('the emitter writes modules the engine validates, and a type error is caught', () => {
    const add = (body: Code) => encodeModule({
      memory: { initialPages: 1, maximumPages: 1, shared: false },
      functions: [{ name: 'f', params: [I32], results: [I32], locals: [], body, exported: true }],
    });
    const good = add(i32.add(local(0), i32.const(-129)));
    const instance = new WebAssembly.Instance(new WebAssembly.Module(good), { env: { memory: new WebAssembly.Memory({ initial: 1, maximum: 1 }) } });
    assert.equal((instance.exports.f as (x: number) => number)(1000), 871);
    // A vector where an i32 is due must not validate.
    assert.equal(WebAssembly.validate(add(f32x4.add(v128.zero(), v128.zero()))), false);
  });
});

for (const relaxed of [true, false]) {
  describe(`WebAssembly kernel, ${relaxed ? 'relaxed_madd' : 'mul + add'}`, () => {
    let kernel: WasmMatmulKernel;
    before(async () => {
      kernel = await createWasmKernel({ relaxed, maxThreads: 2 });
      await workersReady(kernel);
    });
    after(() => kernel.setThreads(1));

    test('is named for the instructions it uses and starts on every allowed thread', () => {
      assert.equal(kernel.name, relaxed ? 'wasm-relaxed-simd' : 'wasm-simd');
      assert.equal(kernel.relaxed, relaxed);
      assert.equal(kernel.threads(), 2);
    });

    for (const threads of [1, 2]) {
      test(`agrees with the reference on every awkward and transformer shape, ${threads} thread(s)`, () => {
        kernel.setThreads(threads);
        for (const c of awkwardCases()) assertAgrees(kernel, c);
        for (const c of MODEL_CASES) assertAgrees(kernel, c);
      });
    }

    test('one and two threads give bit-identical results, and the worker computes parts', () => {
      const before = kernel.workerParts();
      for (const c of MODEL_CASES) {
        kernel.setThreads(1);
        const one = run(kernel, c);
        kernel.setThreads(2);
        const two = run(kernel, c);
        assert.deepEqual(two, one, `m=${c.m} n=${c.n} k=${c.k} transB=${c.transB}`);
      }
      assert.ok(kernel.workerParts() > before, 'no part of any product ran on the worker');
    });

    test('writes zeros when k is 0 and nothing when m or n is 0', () => {
      const out = new Float32Array(8).fill(SENTINEL);
      kernel.gemm(new Float32Array(0), 0, new Float32Array(0), 0, out, 1, 2, 3, 0, false);
      assert.deepEqual([...out], [SENTINEL, 0, 0, 0, 0, 0, 0, SENTINEL]);
      const untouched = new Float32Array(2).fill(SENTINEL);
      kernel.gemm(new Float32Array(4), 0, new Float32Array(4), 0, untouched, 0, 0, 2, 2, true);
      kernel.gemm(new Float32Array(4), 0, new Float32Array(4), 0, untouched, 0, 2, 0, 2, true);
      assert.deepEqual([...untouched], [SENTINEL, SENTINEL]);
    });

    test('the FMA ceiling is a positive rate', () => {
      assert.ok(kernel.fmaPeak(0.02) > 0.5);
    });
  });
}

describe('WebAssembly kernel arguments', () => {
  let kernel: WasmMatmulKernel;
  before(async () => {
    kernel = await createWasmKernel({ maxThreads: 1 });
  });

  test('rejects matrices that do not fit their arrays, bad sizes and arrays that are not Float32Array', () => {
    const a = new Float32Array(6);
    const b = new Float32Array(6);
    const c = new Float32Array(4);
    assert.throws(() => kernel.gemm(a, 1, b, 0, c, 0, 2, 2, 3, false), /A \[2, 3\] from offset 1 needs 7 elements, the array has 6/);
    assert.throws(() => kernel.gemm(a, 0, b, 0, c, 1, 2, 2, 3, true), /C \[2, 2\] from offset 1 needs 5 elements/);
    assert.throws(() => kernel.gemm(a, 0, b, 0, c, 0, 2, 3, 3, false), ShapeError);
    assert.throws(() => kernel.gemm(a, 0, b, 0, c, 0, -1, 2, 3, false), /m must be a non-negative integer, got -1/);
    assert.throws(() => kernel.gemm(a, 0, b, 0, c, 0, 1.5, 2, 3, false), ShapeError);
    const notF32 = new Float64Array(6) as unknown as Float32Array;
    assert.throws(() => kernel.gemm(notF32, 0, b, 0, c, 0, 2, 2, 3, false), /A must be a Float32Array/);
  });

  test('without shared memory (a one-thread pool) the memory grows between products and the kernel keeps agreeing', () => {
    for (const c of [MODEL_CASES[0], MODEL_CASES[7], MODEL_CASES[9], MODEL_CASES[3]]) assertAgrees(kernel, c);
    assert.equal(kernel.workerParts(), 0);
    assert.equal(kernel.readyWorkers(), 0);
  });

  test('setThreads refuses a count below 1 and caps at the pool size', () => {
    assert.throws(() => kernel.setThreads(0), ShapeError);
    assert.equal(kernel.setThreads(8), 1);
  });
});

/** Runs node with the given environment and arguments from the repository root. */
function node(env: Record<string, string>, args: string[]) {
  const result = spawnSync(process.execPath, args, { cwd: REPO, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000 });
  assert.equal(result.status, 0, result.stderr);
  return result;
}

const kernelInfoScript = `
  const { useFastestKernel } = await import(${JSON.stringify(join(REPO, 'dist', 'src', 'kernels', 'index.js'))});
  console.log(JSON.stringify(await useFastestKernel()));
`;

describe('kernel selection without the native addon', () => {
  test('GLASSFORMER_NATIVE=0 runs WebAssembly SIMD on both cores, and says why native is off', () => {
    const { stdout } = node({ GLASSFORMER_NATIVE: '0' }, ['--input-type=module', '-e', kernelInfoScript]);
    assert.deepEqual(JSON.parse(stdout), { name: 'wasm-relaxed-simd', threads: 2, nativeUnavailable: 'GLASSFORMER_NATIVE=0' });
  });

  test('GLASSFORMER_WASM=0 as well leaves the blocked TypeScript kernel', () => {
    const { stdout } = node({ GLASSFORMER_NATIVE: '0', GLASSFORMER_WASM: '0' }, ['--input-type=module', '-e', kernelInfoScript]);
    assert.deepEqual(JSON.parse(stdout), { name: 'blocked', threads: 1, nativeUnavailable: 'GLASSFORMER_NATIVE=0' });
  });

  test('GPT-2 on the WebAssembly kernel matches the recorded Hugging Face logits and generations', () => {
    const { stdout } = node({ GLASSFORMER_NATIVE: '0' }, [join(REPO, 'dist', 'src', 'cli', 'main.js'), 'verify', join(HF_TINY, 'gpt2')]);
    assert.match(stdout, /PASS {2}logits/);
    assert.match(stdout, /all match\s*$/);
  });
});
