/**
 * The WebAssembly SIMD matmul kernel: browsers, and Node when the native addon
 * cannot load. The module is generated in TypeScript (gemm-module.ts, with
 * emit.ts), so nothing is fetched or built.
 *
 * Operands live in the module's linear memory: each call copies A and B in
 * and C out (the memory grows once to the largest product seen and is reused).
 * With shared memory (Node always; browsers when `crossOriginIsolated`),
 * worker threads each instantiate the module on the same memory and take
 * parts of C (driver.ts). The calling thread takes parts too, then waits for
 * the others: with `Atomics.wait` in Node and in workers, by spinning on
 * `Atomics.load` on a browser's main thread, which may not block.
 *
 * This file imports no `node:` module statically, so a browser build can include it.
 */
import { ShapeError, UnsupportedError } from '../../errors.js';
import type { ThreadedMatmulKernel } from '../types.js';
import { claim, CTL, CTL_BYTES, finish, packShared, plan, publish, runPart, scratchAddress, sharedBytes, type Job } from './driver.js';
import { GEMV_KN_VECTORS, GEMV_NK_GROUP, gemmModuleBytes, type GemmExports, relaxedProbeBytes, simdProbeBytes, tileFor } from './gemm-module.js';
import type { WorkerInit } from './worker.js';

export interface WasmMatmulKernel extends ThreadedMatmulKernel {
  /** Whether the module multiplies with `f32x4.relaxed_madd` (else `f32x4.mul` + `f32x4.add`). */
  readonly relaxed: boolean;
  /** Threads this engine allows (1 without shared memory). */
  readonly maxThreads: number;
  /** GFLOP/s of one thread running independent multiply-adds on registers: the ceiling for this module here. */
  fmaPeak(seconds?: number): number;
  /** Workers that have instantiated the module and serve jobs (they start in the background). */
  readyWorkers(): number;
  /** Parts of products the workers (not the calling thread) have computed so far. */
  workerParts(): number;
}

export interface WasmKernelOptions {
  /** Use relaxed SIMD if the engine has it (default), or never. */
  readonly relaxed?: boolean;
  /** Largest thread pool (default: the cores; 1 without shared memory). */
  readonly maxThreads?: number;
}

const PAGE = 65536;
// 2 GiB: a shared memory's maximum is reserved up front, and 2 GiB is what
// every engine allows.
const MAXIMUM_PAGES = 32768;
// A few-row product copies its weight in slices of this many bytes (256 KB,
// measured against 32–128 KB): they stay in L2 until the product reads them back.
const SLICE_BYTES = 1 << 18;
// Below this many multiply-adds one thread finishes before a sleeping worker wakes.
const THREADED_MIN_MACS = 1 << 22;

const isNode = typeof globalThis.process?.versions?.node === 'string';

/** Which engine features the kernel can use here. */
export interface WasmFeatures {
  readonly simd: boolean;
  readonly relaxed: boolean;
  readonly threads: boolean;
}

let relaxedFlagTried = false;

/**
 * Feature detection by validating tiny modules. Node 20 has relaxed SIMD only
 * behind --experimental-wasm-relaxed-simd, which NODE_OPTIONS refuses; the
 * flag can still be set from inside before a module is compiled.
 */
export async function detectWasmFeatures(): Promise<WasmFeatures> {
  const simd = typeof WebAssembly === 'object' && WebAssembly.validate(simdProbeBytes());
  let relaxed = simd && WebAssembly.validate(relaxedProbeBytes());
  if (simd && !relaxed && isNode && !relaxedFlagTried) {
    relaxedFlagTried = true;
    const v8 = 'node:' + 'v8';
    const { setFlagsFromString } = (await import(/* @vite-ignore */ /* webpackIgnore: true */ v8)) as typeof import('node:v8');
    setFlagsFromString('--experimental-wasm-relaxed-simd');
    relaxed = WebAssembly.validate(relaxedProbeBytes());
  }
  const crossOriginIsolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  const threads = typeof SharedArrayBuffer === 'function' && (isNode || crossOriginIsolated);
  return { simd, relaxed, threads };
}

async function coreCount(): Promise<number> {
  if (isNode) {
    const os = 'node:' + 'os';
    return ((await import(/* @vite-ignore */ /* webpackIgnore: true */ os)) as typeof import('node:os')).availableParallelism();
  }
  return (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
}

/** Starts a worker thread of the pool; nothing about it keeps a Node process alive. */
type SpawnWorker = (init: WorkerInit) => void;

async function workerSpawner(): Promise<SpawnWorker> {
  const url = new URL('./worker.js', import.meta.url);
  if (isNode) {
    const threads = 'node:worker_' + 'threads';
    const { Worker } = (await import(/* @vite-ignore */ /* webpackIgnore: true */ threads)) as typeof import('node:worker_threads');
    return (init) => new Worker(url, { workerData: init }).unref();
  }
  return (init) => new Worker(url, { type: 'module' }).postMessage(init);
}

/**
 * The WebAssembly kernel, or an error saying what the engine lacks
 * (UnsupportedError without SIMD). The thread pool starts with every core.
 */
export async function createWasmKernel(options: WasmKernelOptions = {}): Promise<WasmMatmulKernel> {
  const features = await detectWasmFeatures();
  if (!features.simd) throw new UnsupportedError('this JavaScript engine has no WebAssembly SIMD (128-bit vectors)');
  const relaxed = features.relaxed && options.relaxed !== false;
  const maxThreads = features.threads ? Math.max(1, Math.min(options.maxThreads ?? (await coreCount()), 64)) : 1;
  const shared = maxThreads > 1;
  const bytes = gemmModuleBytes({ ...tileFor(relaxed), relaxed, shared, maximumPages: MAXIMUM_PAGES });
  const module = await WebAssembly.compile(bytes);
  const base = scratchAddress(maxThreads);
  const memory = new WebAssembly.Memory({ initial: Math.ceil(base / PAGE), maximum: MAXIMUM_PAGES, shared });
  const instance = await WebAssembly.instantiate(module, { env: { memory } });
  const spawn = shared ? await workerSpawner() : undefined;
  const kernel = new WasmKernel(instance.exports as unknown as GemmExports, memory, base, relaxed, maxThreads,
    (index) => spawn?.({ module, memory, index }));
  kernel.setThreads(maxThreads);
  return kernel;
}

const roundUp = (x: number, multiple: number): number => Math.ceil(x / multiple) * multiple;
const align = (address: number): number => roundUp(address, 64);

class WasmKernel implements WasmMatmulKernel {
  private activeThreads = 1;
  private workers = 0;
  private heap: Float32Array;
  private ctl: Int32Array;
  private readonly canBlock: boolean;

  constructor(
    private readonly e: GemmExports,
    private readonly memory: WebAssembly.Memory,
    private readonly base: number,
    readonly relaxed: boolean,
    readonly maxThreads: number,
    private readonly startWorker: (index: number) => void,
  ) {
    this.heap = new Float32Array(memory.buffer);
    this.ctl = new Int32Array(memory.buffer, 0, CTL_BYTES / 4);
    // A browser's main thread may not call Atomics.wait; workers and Node may.
    this.canBlock = isNode || typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== 'undefined';
  }

  get name(): string {
    return this.relaxed ? 'wasm-relaxed-simd' : 'wasm-simd';
  }

  threads(): number {
    return this.activeThreads;
  }

  setThreads(threads: number): number {
    if (!Number.isInteger(threads) || threads < 1) {
      throw new ShapeError(`setThreads: threads must be an integer of at least 1, got ${threads}`);
    }
    this.activeThreads = Math.min(threads, this.maxThreads);
    // Workers start once and stay; until one has instantiated the module the others (and the caller) take its parts.
    while (this.workers < this.activeThreads - 1) this.startWorker(++this.workers);
    return this.activeThreads;
  }

  readyWorkers(): number {
    return Atomics.load(this.ctl, CTL.ready);
  }

  workerParts(): number {
    return Atomics.load(this.ctl, CTL.workerParts);
  }

  fmaPeak(seconds = 0.2): number {
    const iterations = 1 << 20;
    this.e.fmaPeak(iterations);
    let best = 0;
    const end = performance.now() + seconds * 1000;
    do {
      const start = performance.now();
      this.e.fmaPeak(iterations);
      best = Math.max(best, (iterations * 96) / ((performance.now() - start) * 1e6));
    } while (performance.now() < end);
    return best;
  }

  gemm(a: Float32Array, aOffset: number, b: Float32Array, bOffset: number, c: Float32Array, cOffset: number,
    m: number, n: number, k: number, transB: boolean): void {
    checkArguments(a, aOffset, b, bOffset, c, cOffset, m, n, k);
    if (m === 0 || n === 0) return;
    if (k === 0) {
      c.fill(0, cOffset, cOffset + m * n);
      return;
    }
    if (m <= 4) {
      if (transB) this.gemvNK(a, aOffset, b, bOffset, c, cOffset, m, n, k);
      else this.gemvKN(a, aOffset, b, bOffset, c, cOffset, m, n, k);
      return;
    }
    const threads = m * n * k >= THREADED_MIN_MACS ? this.activeThreads : 1;
    const mr = tileFor(this.relaxed).mr;
    const split = plan(m, n, threads, mr);
    const aAt = this.base;
    const bAt = align(aAt + m * k * 4);
    const cAt = align(bAt + n * k * 4);
    const sharedAt = align(cAt + m * n * 4);
    this.reserve(sharedAt + sharedBytes(m, n, k, split.splitN, mr));
    const job: Job = { mr, m, n, k, transB, a: aAt, b: bAt, c: cAt, shared: sharedAt, ...split };
    const heap = this.heap;
    heap.set(a.subarray(aOffset, aOffset + m * k), aAt / 4);
    heap.set(b.subarray(bOffset, bOffset + n * k), bAt / 4);
    packShared(this.e, job);
    if (threads === 1) {
      for (let part = 0; part < job.parts; part++) runPart(this.e, job, part, scratchAddress(0));
    } else {
      this.runThreaded(job, threads);
    }
    c.set(heap.subarray(cAt / 4, cAt / 4 + m * n), cOffset);
  }

  private runThreaded(job: Job, threads: number): void {
    const ctl = this.ctl;
    publish(ctl, job, threads);
    for (let part = claim(ctl); part >= 0; part = claim(ctl)) {
      runPart(this.e, job, part, scratchAddress(0));
      finish(ctl);
    }
    // Only parts a worker has claimed remain; a worker that had not started gets none.
    for (let done = Atomics.load(ctl, CTL.done); done < job.parts; done = Atomics.load(ctl, CTL.done)) {
      if (this.canBlock) Atomics.wait(ctl, CTL.done, done);
    }
  }

  /**
   * C = A · Bᵀ for B as [n, k] and m ≤ 4, B copied in slices of rows that
   * stay in L2 until the product has read them (k padded to whole vectors and
   * the last slice to whole groups, with zeros).
   */
  private gemvNK(a: Float32Array, aOffset: number, b: Float32Array, bOffset: number, c: Float32Array, cOffset: number,
    m: number, n: number, k: number): void {
    const group = GEMV_NK_GROUP[m];
    const kp = roundUp(k, 4);
    const np = roundUp(n, group);
    const sliceRows = Math.max(group, Math.floor(SLICE_BYTES / (kp * 4 * group)) * group);
    const aAt = this.base;
    const cAt = align(aAt + m * kp * 4);
    const sliceAt = align(cAt + m * np * 4);
    this.reserve(sliceAt + sliceRows * kp * 4);
    this.copyRows(a, aOffset, m, k, aAt / 4, kp);
    for (let j0 = 0; j0 < n; j0 += sliceRows) {
      const rows = Math.min(sliceRows, n - j0);
      const padded = roundUp(rows, group);
      this.copyRows(b, bOffset + j0 * k, rows, k, sliceAt / 4, kp);
      this.heap.fill(0, sliceAt / 4 + rows * kp, sliceAt / 4 + padded * kp);
      this.e[`gemvNK${m}`](aAt, kp * 4, sliceAt, kp * 4, kp * 4, padded, cAt + j0 * 4, np * 4);
    }
    this.copyOut(cAt / 4, np, c, cOffset, m, n);
  }

  /**
   * C = A · B for B as [k, n] and m ≤ 4, B copied in slices of rows (a slice
   * of k) that stay in L2 until the product has read them, each slice's sums
   * added to C; rows padded to whole strips with zeros.
   */
  private gemvKN(a: Float32Array, aOffset: number, b: Float32Array, bOffset: number, c: Float32Array, cOffset: number,
    m: number, n: number, k: number): void {
    const np = roundUp(n, 4 * GEMV_KN_VECTORS[m]);
    const sliceRows = Math.max(1, Math.floor(SLICE_BYTES / (np * 4)));
    const aAt = this.base;
    const cAt = align(aAt + m * k * 4);
    const sliceAt = align(cAt + m * np * 4);
    this.reserve(sliceAt + sliceRows * np * 4);
    this.copyRows(a, aOffset, m, k, aAt / 4, k);
    for (let p0 = 0; p0 < k; p0 += sliceRows) {
      const rows = Math.min(sliceRows, k - p0);
      this.copyRows(b, bOffset + p0 * n, rows, n, sliceAt / 4, np);
      this.e[`gemvKN${m}`](aAt + p0 * 4, k * 4, sliceAt, np * 4, rows, np * 4, cAt, np * 4, p0 > 0 ? 1 : 0);
    }
    this.copyOut(cAt / 4, np, c, cOffset, m, n);
  }

  /** rows × cols from `src` into the heap at `at` with row stride `stride` ≥ cols, the padding zeroed. */
  private copyRows(src: Float32Array, offset: number, rows: number, cols: number, at: number, stride: number): void {
    const heap = this.heap;
    if (stride === cols) {
      heap.set(src.subarray(offset, offset + rows * cols), at);
      return;
    }
    for (let r = 0; r < rows; r++) {
      heap.set(src.subarray(offset + r * cols, offset + (r + 1) * cols), at + r * stride);
      heap.fill(0, at + r * stride + cols, at + (r + 1) * stride);
    }
  }

  private copyOut(at: number, stride: number, c: Float32Array, cOffset: number, rows: number, cols: number): void {
    if (stride === cols) {
      c.set(this.heap.subarray(at, at + rows * cols), cOffset);
      return;
    }
    for (let r = 0; r < rows; r++) c.set(this.heap.subarray(at + r * stride, at + r * stride + cols), cOffset + r * cols);
  }

  /** Grows the memory to at least `bytes` (never shrinks it) and renews the views on it. */
  private reserve(bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (bytes > have) {
      if (bytes > MAXIMUM_PAGES * PAGE) {
        throw new UnsupportedError(`WebAssembly matmul: the operands need ${Math.ceil(bytes / 2 ** 20)} MiB, more than the 2 GiB a WebAssembly memory may hold`);
      }
      this.memory.grow(Math.ceil((bytes - have) / PAGE));
    }
    // Growing a memory that is not shared detaches its old buffer, and a
    // shared one's old buffer keeps its old length: either way, new views.
    if (this.heap.buffer.byteLength !== this.memory.buffer.byteLength) {
      this.heap = new Float32Array(this.memory.buffer);
      this.ctl = new Int32Array(this.memory.buffer, 0, CTL_BYTES / 4);
    }
  }
}

/** Sizes must be non-negative integers and every matrix must fit its array from its offset. */
function checkArguments(a: Float32Array, aOffset: number, b: Float32Array, bOffset: number, c: Float32Array, cOffset: number,
  m: number, n: number, k: number): void {
  for (const [label, value] of [['m', m], ['n', n], ['k', k], ['aOffset', aOffset], ['bOffset', bOffset], ['cOffset', cOffset]] as const) {
    if (!Number.isInteger(value) || value < 0) throw new ShapeError(`WebAssembly matmul: ${label} must be a non-negative integer, got ${value}`);
  }
  for (const [label, array, offset, size, shape] of [
    ['A', a, aOffset, m * k, `[${m}, ${k}]`],
    ['B', b, bOffset, k * n, `${k * n} floats (k = ${k}, n = ${n})`],
    ['C', c, cOffset, m * n, `[${m}, ${n}]`],
  ] as const) {
    if (!(array instanceof Float32Array)) throw new ShapeError(`WebAssembly matmul: ${label} must be a Float32Array`);
    if (offset + size > array.length) {
      throw new ShapeError(`WebAssembly matmul: ${label} ${shape} from offset ${offset} needs ${offset + size} floats, the array has ${array.length}`);
    }
  }
}
