import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ShapeError, UnsupportedError } from '../../src/errors.js';
import { matmulKernel, setMatmulKernel } from '../../src/kernels/index.js';
import { type Code, encodeModule, f32x4, I32, i32, local, v128 } from '../../src/kernels/wasm/emit.js';
import { createWasmKernel, detectWasmFeatures, type WasmMatmulKernel } from '../../src/kernels/wasm/kernel.js';
import { assertGemmAgrees, type GemmCase as Case, gemmOperands, runGemm, SENTINEL } from '../helpers/gemm.js';
import { randomArray } from '../helpers/random.js';
import { HF_TINY, REPO } from '../helpers/shared.js';
import { forgetPackedWeights, Linear, setWeightPrepacking } from '../../src/nn/linear.js';
import { Tensor } from '../../src/tensor/tensor.js';

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

/** The kernel's products from resident weights: `gemm` made of prepack and gemmPacked, for the shared checks. */
function resident(kernel: WasmMatmulKernel): Pick<WasmMatmulKernel, 'gemm'> {
  return {
    gemm: (a, aOffset, b, bOffset, c, cOffset, m, n, k, transB) => kernel.gemmPacked(a, aOffset, kernel.prepack(b, bOffset, n, k, transB), c, cOffset, m),
  };
}

/** Asserts the resident product of the case has the bits of the copying one (and so the reference's agreement). */
function assertSameBits(kernel: WasmMatmulKernel, c: Case, from: Pick<WasmMatmulKernel, 'gemm'>, label: string): void {
  const copied = runGemm(kernel, c, randomArray);
  const kept = runGemm(from, c, randomArray);
  assert.deepEqual(kept, copied, `${label}: m=${c.m} n=${c.n} k=${c.k} transB=${c.transB} offsets=${c.offsets.join(',')}`);
}

for (const relaxed of [true, false]) {
  describe(`WebAssembly kernel, resident weights, ${relaxed ? 'relaxed_madd' : 'mul + add'}`, () => {
    let kernel: WasmMatmulKernel;
    before(async () => {
      kernel = await createWasmKernel({ relaxed, maxThreads: 2 });
      await workersReady(kernel);
    });
    after(() => kernel.setThreads(1));

    for (const threads of [1, 2]) {
      test(`gemmPacked gives gemm's bits on every awkward and transformer shape (rows for m ≤ 4, panels above), ${threads} thread(s)`, () => {
        kernel.setThreads(threads);
        const before = kernel.workerParts();
        const kept = resident(kernel);
        for (const c of [...awkwardCases(), ...MODEL_CASES]) {
          assertSameBits(kernel, c, kept, `${kernel.name} ×${threads}`);
          assertAgrees(kernel, c);
        }
        assert.ok(kernel.residentBytes() > 0, 'nothing stayed resident');
        if (threads === 2) assert.ok(kernel.workerParts() > before, 'no part of a resident product ran on the worker');
      });
    }

    test('a packed weight multiplied again (rows, then panels, then rows) reuses its forms and keeps its bits', () => {
      const b = randomArray(3072 * 768, 5);
      const packed = kernel.prepack(b, 0, 3072, 768, true);
      const held = kernel.residentBytes();
      for (const m of [1, 3, 130, 1, 130]) {
        const a = randomArray(m * 768, m);
        const expected = new Float32Array(m * 3072);
        const actual = new Float32Array(m * 3072);
        kernel.gemm(a, 0, b, 0, expected, 0, m, 3072, 768, true);
        kernel.gemmPacked(a, 0, packed, actual, 0, m);
        assert.deepEqual(actual, expected, `m=${m}`);
      }
      // Rows padded to 3072 × 768 floats, panels 3072 × 768: both resident once.
      assert.equal(kernel.residentBytes() - held, 2 * 3072 * 768 * 4);
    });
  });
}

describe('WebAssembly kernel, resident weights under a budget', () => {
  let kernel: WasmMatmulKernel;
  before(async () => {
    kernel = await createWasmKernel({ maxThreads: 2 });
    await workersReady(kernel);
  });
  after(() => kernel.setThreads(1));

  test('a budget of one weight evicts the least recently used, gives the same bits, threaded, and never holds more than the budget', () => {
    kernel.setThreads(2);
    // Resident forms of 2.4, 5.0, 1.2, 5.0 and 0.04 MB, and one of 9.4 MB that never fits.
    const shapes = [MODEL_CASES[0], MODEL_CASES[7], MODEL_CASES[8], MODEL_CASES[3], MODEL_CASES[9], MODEL_CASES[10]];
    const budget = 6_000_000;
    kernel.setResidentBudget(budget);
    const evicted = kernel.residentEvictions();
    const packs = shapes.map((c) => {
      const { b } = gemmOperands(c, randomArray);
      return kernel.prepack(b, c.offsets[1], c.n, c.k, c.transB);
    });
    for (let round = 0; round < 2; round++) {
      shapes.forEach((c, i) => {
        assertSameBits(kernel, c, { gemm: (a, aOffset, _b, _bOffset, out, cOffset, m) => kernel.gemmPacked(a, aOffset, packs[i], out, cOffset, m) }, 'tiny budget');
        assert.ok(kernel.residentBytes() <= budget, `${kernel.residentBytes()} bytes resident over a budget of ${budget}`);
      });
    }
    assert.ok(kernel.residentEvictions() - evicted >= 4, `only ${kernel.residentEvictions() - evicted} evictions`);
    // Below every weight's size nothing is resident, and the products copy as gemm does.
    assert.equal(kernel.setResidentBudget(0), budget);
    assert.equal(kernel.residentBytes(), 0);
    shapes.forEach((c, i) => assertSameBits(kernel, c, { gemm: (a, aOffset, _b, _bOffset, out, cOffset, m) => kernel.gemmPacked(a, aOffset, packs[i], out, cOffset, m) }, 'budget 0'));
    assert.equal(kernel.residentBytes(), 0);
    kernel.setResidentBudget(2 ** 30);
  });

  test('the resident copy of a weight is freed once its handle has been garbage-collected', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const held = kernel.residentBytes();
    (() => {
      const b = randomArray(700 * 300, 3);
      const c = new Float32Array(8 * 700);
      kernel.gemmPacked(randomArray(8 * 300, 4), 0, kernel.prepack(b, 0, 700, 300, true), c, 0, 8);
    })();
    assert.equal(kernel.residentBytes() - held, 704 * 300 * 4, 'the panels were resident');
    for (let tries = 0; kernel.residentBytes() > held && tries < 50; tries++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(kernel.residentBytes(), held);
  });

  test('a Linear multiplies from its resident weight with the same bits, and from the new values after forgetPackedWeights', () => {
    const previous = setMatmulKernel(kernel);
    const wasPrepacking = setWeightPrepacking(true);
    try {
      const weight = new Tensor('f32', [48, 32], randomArray(48 * 32, 11));
      const layer = new Linear(weight);
      const x = new Tensor('f32', [2, 6, 32], randomArray(12 * 32, 13)); // 12 rows: packed
      const product = (): Float32Array => {
        const c = new Float32Array(12 * 48);
        kernel.gemm(x.f32(), 0, weight.f32(), 0, c, 0, 12, 48, 32, true);
        return c;
      };
      const plain = product();
      assert.deepEqual(layer.forward(x).f32(), plain);
      assert.deepEqual(layer.forward(x).f32(), plain, 'the second call reuses the resident panels');
      assert.equal(matmulKernel(), kernel);
      // Written in place, as an optimizer step writes it, then forgotten, as the optimizers do.
      const data = weight.f32();
      for (let i = 0; i < data.length; i++) data[i] *= -0.5;
      forgetPackedWeights();
      const fresh = product();
      assert.notDeepEqual(fresh, plain);
      assert.deepEqual(layer.forward(x).f32(), fresh, 'multiplied from a copy made before the write');
    } finally {
      setWeightPrepacking(wasPrepacking);
      setMatmulKernel(previous);
    }
  });

  test('another kernel\'s pack is refused with a typed error, another WebAssembly kernel\'s is multiplied from its array', async () => {
    const b = randomArray(40 * 30, 1);
    const a = randomArray(8 * 30, 2);
    const expected = new Float32Array(8 * 40);
    kernel.gemm(a, 0, b, 0, expected, 0, 8, 40, 30, true);
    assert.throws(() => kernel.gemmPacked(a, 0, { n: 40, k: 30, kernel: 'native-avx2' }, new Float32Array(8 * 40), 0, 8), UnsupportedError);
    const other = await createWasmKernel({ maxThreads: 1 });
    const c = new Float32Array(8 * 40);
    kernel.gemmPacked(a, 0, other.prepack(b, 0, 40, 30, true), c, 0, 8);
    assert.deepEqual(c, expected);
  });

  test('prepack, gemmPacked and setResidentBudget check their arguments', () => {
    const b = randomArray(40 * 30, 1);
    assert.throws(() => kernel.prepack(b, 1, 40, 30, true), /B 1200 elements \(k = 30, n = 40\) from offset 1 needs 1201 elements, the array has 1200/);
    assert.throws(() => kernel.prepack(b, 0, -1, 30, true), ShapeError);
    const packed = kernel.prepack(b, 0, 40, 30, true);
    assert.throws(() => kernel.gemmPacked(new Float32Array(8 * 30), 1, packed, new Float32Array(8 * 40), 0, 8), /A \[8, 30\] from offset 1/);
    assert.throws(() => kernel.gemmPacked(new Float32Array(8 * 30), 0, packed, new Float32Array(8 * 40 - 1), 0, 8), /C \[8, 40\]/);
    assert.throws(() => kernel.setResidentBudget(-1), /bytes must be a non-negative integer, got -1/);
    assert.throws(() => kernel.setResidentBudget(0.5), ShapeError);
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
