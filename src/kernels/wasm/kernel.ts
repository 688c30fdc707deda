/**
 * The WebAssembly SIMD matmul kernel: browsers, and Node when the native addon
 * cannot load. The module is generated in TypeScript (gemm-module.ts, with
 * emit.ts), so nothing is fetched or built.
 *
 * Operands live in the module's linear memory: each call copies A and B in
 * and C out, through a workspace that grows to the largest product seen and
 * is reused. A weight packed by `prepack` stays in that memory instead
 * (resident.ts): its products skip the copy, and with more than a few rows
 * the packing too. heap.ts allocates the memory to both.
 * With shared memory (Node always; browsers when `crossOriginIsolated`),
 * worker threads each instantiate the module on the same memory and take
 * parts of C (driver.ts). The calling thread takes parts too, then waits for
 * the others: with `Atomics.wait` in Node and in workers, by spinning on
 * `Atomics.load` on a browser's main thread, which may not block.
 *
 * This file imports no `node:` module statically, so a browser build can include it.
 */
import { ShapeError, UnsupportedError } from '../../errors.js';
import { f32ToBf16 } from '../../tensor/dtype.js';
import { quantizeRow } from '../int8.js';
import type { Bf16MatmulKernel, Int8MatmulKernel, PackedMatrix, PrepackingMatmulKernel, ThreadedMatmulKernel } from '../types.js';
import { claim, CTL, CTL_BYTES, finish, KC, NR, packShared, plan, publish, roundUp, runPart, scratchAddress, sharedBytes, type Job } from './driver.js';
import {
  GEMV_KN_VECTORS, GEMV_NK_GROUP, GEMV_ROWS_GROUP, type GemmExports, gemmModuleBytes, gemvNKName, gemvRowsName, interleaveRowsName,
  relaxedProbeBytes, ROWS_BLOCK, simdProbeBytes, tileFor, type WeightStorage,
} from './gemm-module.js';
import { Heap } from './heap.js';
import { ResidentStore, ResidentWeight } from './resident.js';
import type { WorkerInit } from './worker.js';

export interface WasmMatmulKernel extends ThreadedMatmulKernel, PrepackingMatmulKernel, Bf16MatmulKernel, Int8MatmulKernel {
  /** A bf16 weight B [n, k] kept resident as `prepack` keeps an f32 one (2 bytes a weight for decode). */
  prepackBf16(b: Uint16Array, bOffset: number, n: number, k: number): PackedMatrix;
  /** `gemmBf16` from a weight packed by `prepackBf16`: the same bits. */
  gemmBf16Packed(a: Float32Array, aOffset: number, packed: PackedMatrix, c: Float32Array, cOffset: number, m: number): void;
  /** An int8 weight Q [n, k] and its per-row scales kept resident (1 byte a weight for decode). */
  prepackInt8(q: Int8Array, qOffset: number, scales: Float32Array, n: number, k: number): PackedMatrix;
  /** `gemmInt8` from a weight packed by `prepackInt8`: the same bits. */
  gemmInt8Packed(a: Float32Array, aOffset: number, packed: PackedMatrix, c: Float32Array, cOffset: number, m: number): void;
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
  /**
   * Fewest rows for which `gemmPacked` is the faster product: 1, since
   * a packed weight stays in the module's memory and decode's few rows
   * stream it from there (`gemm` copies the weight in on every call).
   */
  readonly packedMinRows: number;
  /**
   * Sets the bytes resident weights may hold in the module's memory
   * (default 1 GiB; a WebAssembly memory holds at most 2 GiB here, and
   * browsers may refuse to grow it that far), evicting the least recently
   * used ones until the rest fit. Returns the previous budget.
   */
  setResidentBudget(bytes: number): number;
  /** Bytes resident weights hold now. */
  residentBytes(): number;
  /** Resident forms evicted so far (to stay within the budget or the memory). */
  residentEvictions(): number;
}

export interface WasmKernelOptions {
  /** Use relaxed SIMD if the engine has it (default), or never. */
  readonly relaxed?: boolean;
  /** Largest thread pool (default: the cores; 1 without shared memory). */
  readonly maxThreads?: number;
  /** Bytes resident weights may hold (default 1 GiB); see `setResidentBudget`. */
  readonly residentBudget?: number;
}

const PAGE = 65536;
// 2 GiB: a shared memory's maximum is reserved up front, and 2 GiB is what
// every engine allows.
const MAXIMUM_PAGES = 32768;
// A few-row product copies its weight in slices of this many bytes (256 KB,
// measured against 32–128 KB): they stay in L2 until the product reads them back.
const SLICE_BYTES = 1 << 18;
// Widening works in whole vectors, so it may read and write up to 3 elements
// past a block: room for them after the staged weight (the widened one ends
// before a 64-byte aligned region, so its overrun lands in the alignment gap).
const STAGING_SLACK = 64;
// |Σ a8 · q| ≤ 127² · k stays inside an int32 up to here (the interface's limit).
const MAX_QUANTIZED_K = 65536;
// Below this many multiply-adds one thread finishes before a sleeping worker wakes.
const THREADED_MIN_MACS = 1 << 22;
// Half of the memory's maximum: the other half leaves room for the workspace.
const DEFAULT_RESIDENT_BUDGET = 2 ** 30;
// A resident weight [k, n] has its columns padded to a multiple of every
// few-row product's strip (32, 16, 12, 8 floats: 4 · GEMV_KN_VECTORS).
const RESIDENT_COLUMN_STRIPS = 96;

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
  const threaded = maxThreads > 1;
  const [plainModule, sharedModule] = gemmModuleBytes({ ...tileFor(relaxed), relaxed, maximumPages: MAXIMUM_PAGES }, threaded ? [false, true] : [false]);
  const budget = options.residentBudget ?? DEFAULT_RESIDENT_BUDGET;
  const local = await Arena.create(await WebAssembly.compile(plainModule), false, scratchAddress(1));
  if (!threaded) return new WasmKernel(local, local, relaxed, 1, budget, () => undefined);
  const module = await WebAssembly.compile(sharedModule);
  const pool = await Arena.create(module, true, scratchAddress(maxThreads));
  const spawn = await workerSpawner();
  const kernel = new WasmKernel(local, pool, relaxed, maxThreads, budget, (index) => spawn({ module, memory: pool.memory, index }));
  kernel.setThreads(maxThreads);
  return kernel;
}

const align = (address: number): number => roundUp(address, 64);

/**
 * One instance of the module on its own memory. Above the control block and
 * the threads' scratch (`base`) the memory is allocated by a Heap: one
 * workspace for a product's operands, which grows to the largest product
 * seen and is reused, and resident weights (on the arena that holds them).
 * The memory grows as they need and never shrinks.
 */
class Arena {
  heap: Float32Array;
  readonly blocks: Heap;
  /** Evicts one resident weight's form to make room; false when none is left (set by the arena's ResidentStore). */
  makeRoom: () => boolean = () => false;
  private workspaceAt = 0;
  private workspaceBytes = 0;

  private constructor(readonly e: GemmExports, readonly memory: WebAssembly.Memory, base: number) {
    this.heap = new Float32Array(memory.buffer);
    this.blocks = new Heap(base, (end) => this.grow(end));
  }

  static async create(module: WebAssembly.Module, shared: boolean, base: number): Promise<Arena> {
    const memory = new WebAssembly.Memory({ initial: Math.ceil(base / PAGE), maximum: MAXIMUM_PAGES, shared });
    const instance = await WebAssembly.instantiate(module, { env: { memory } });
    return new Arena(instance.exports as unknown as GemmExports, memory, base);
  }

  /** Makes the memory at least `end` bytes; false past its maximum or when the engine refuses to grow it. */
  private grow(end: number): boolean {
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      if (end > MAXIMUM_PAGES * PAGE) return false;
      try {
        this.memory.grow(Math.ceil((end - have) / PAGE));
      } catch {
        // The engine could not reserve the pages (a browser tab's limit).
        return false;
      }
    }
    this.renewView();
    return true;
  }

  /** Growing a memory that is not shared detaches its old buffer, and a shared one's old buffer keeps its old length: either way, a new view. */
  private renewView(): void {
    if (this.heap.buffer.byteLength !== this.memory.buffer.byteLength) this.heap = new Float32Array(this.memory.buffer);
  }

  /**
   * The byte address of a workspace of at least `bytes` for one product's
   * operands (64-byte aligned, valid until the next call), evicting resident
   * weights when the memory cannot hold it otherwise.
   */
  workspace(bytes: number): number {
    if (bytes > this.workspaceBytes) {
      if (this.workspaceBytes > 0) this.blocks.release(this.workspaceAt);
      this.workspaceBytes = 0;
      let at = this.blocks.alloc(bytes);
      while (at === undefined && this.makeRoom()) at = this.blocks.alloc(bytes);
      if (at === undefined) {
        throw new UnsupportedError(`WebAssembly matmul: the operands need ${Math.ceil(bytes / 2 ** 20)} MiB, more than this WebAssembly memory can hold (2 GiB at most)`);
      }
      this.workspaceAt = at;
      this.workspaceBytes = bytes;
    }
    this.renewView();
    return this.workspaceAt;
  }

  /** C (m × n, rows `stride` floats apart in the heap from float index `at`) out to the caller's array. */
  copyOut(at: number, stride: number, c: Float32Array, cOffset: number, rows: number, cols: number): void {
    if (stride === cols) {
      c.set(this.heap.subarray(at, at + rows * cols), cOffset);
      return;
    }
    for (let r = 0; r < rows; r++) c.set(this.heap.subarray(at + r * stride, at + r * stride + cols), cOffset + r * cols);
  }
}

/**
 * Two arenas: `pool` on the shared memory the workers use, for products
 * split across threads, and `local` on a plain memory for everything run on
 * the calling thread alone (one arena when there are no threads). V8 copies
 * into a SharedArrayBuffer with relaxed atomic word copies, slower than the
 * plain memcpy: decode ran at two thirds of the speed on the shared memory.
 * Resident weights live in the pool's memory, where every thread reads them;
 * their products copy only A in and C out.
 */
class WasmKernel implements WasmMatmulKernel {
  readonly packedMinRows = 1;
  private activeThreads = 1;
  private workers = 0;
  private readonly canBlock: boolean;
  private readonly store: ResidentStore;
  /** Frees the resident forms of a packed weight once the caller has dropped it. */
  private readonly finalizer: FinalizationRegistry<ResidentWeight>;

  constructor(
    private readonly local: Arena,
    private readonly pool: Arena,
    readonly relaxed: boolean,
    readonly maxThreads: number,
    residentBudget: number,
    private readonly startWorker: (index: number) => void,
  ) {
    // A browser's main thread may not call Atomics.wait; workers and Node may.
    this.canBlock = isNode || typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== 'undefined';
    checkBudget(residentBudget);
    const store = new ResidentStore(pool.blocks, residentBudget);
    pool.makeRoom = () => store.evictOldest();
    this.store = store;
    this.finalizer = new FinalizationRegistry((weight) => store.drop(weight));
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

  /** The control block of the pool's jobs (a new view: a plain memory's buffer changes when it grows). */
  private ctl(): Int32Array {
    return new Int32Array(this.pool.memory.buffer, 0, CTL_BYTES / 4);
  }

  readyWorkers(): number {
    return Atomics.load(this.ctl(), CTL.ready);
  }

  workerParts(): number {
    return Atomics.load(this.ctl(), CTL.workerParts);
  }

  fmaPeak(seconds = 0.2): number {
    const iterations = 1 << 20;
    const e = this.local.e;
    e.fmaPeak(iterations);
    let best = 0;
    const end = performance.now() + seconds * 1000;
    do {
      const start = performance.now();
      e.fmaPeak(iterations);
      best = Math.max(best, (iterations * 96) / ((performance.now() - start) * 1e6));
    } while (performance.now() < end);
    return best;
  }

  gemm(a: Float32Array, aOffset: number, b: Float32Array, bOffset: number, c: Float32Array, cOffset: number,
    m: number, n: number, k: number, transB: boolean): void {
    checkArguments(a, aOffset, { label: 'B', array: b, type: Float32Array, offset: bOffset }, c, cOffset, m, n, k);
    this.gemmFrom(a, aOffset, f32Rows(b, bOffset), c, cOffset, m, n, k, transB);
  }

  /** C = A · Bᵀ with B [n, k] as bf16 bits, each widened exactly to f32 in the module; f32 sums. */
  gemmBf16(a: Float32Array, aOffset: number, b: Uint16Array, bOffset: number, c: Float32Array, cOffset: number,
    m: number, n: number, k: number): void {
    checkArguments(a, aOffset, { label: 'B', array: b, type: Uint16Array, offset: bOffset }, c, cOffset, m, n, k);
    this.gemmFrom(a, aOffset, narrowRows(b, bOffset), c, cOffset, m, n, k, true);
  }

  /**
   * gemmBf16 with A rounded to bf16 first. Products of two bf16 values are
   * exact in f32, so this is the interface's product; WebAssembly has no
   * bf16 dot product, so it runs at the f32 rate.
   */
  gemmBf16Rounded(a: Float32Array, aOffset: number, b: Uint16Array, bOffset: number, c: Float32Array, cOffset: number,
    m: number, n: number, k: number): void {
    checkArguments(a, aOffset, { label: 'B', array: b, type: Uint16Array, offset: bOffset }, c, cOffset, m, n, k);
    const rounded = new Float32Array(m * k);
    const bits = new Uint32Array(rounded.buffer);
    for (let e = 0; e < m * k; e++) bits[e] = f32ToBf16(a[aOffset + e]) << 16;
    this.gemmFrom(rounded, 0, narrowRows(b, bOffset), c, cOffset, m, n, k, true);
  }

  /** C = A · (s ⊙ Q)ᵀ with int8 Q [n, k]: Q widened to f32 in the module, f32 sums, each column of C times its scale. */
  gemmInt8(a: Float32Array, aOffset: number, q: Int8Array, qOffset: number, scales: Float32Array, c: Float32Array,
    cOffset: number, m: number, n: number, k: number): void {
    checkArguments(a, aOffset, { label: 'Q', array: q, type: Int8Array, offset: qOffset }, c, cOffset, m, n, k);
    checkScales(scales, n);
    this.gemmFrom(a, aOffset, narrowRows(q, qOffset), c, cOffset, m, n, k, true);
    scaleColumns(c, cOffset, scales, m, n);
  }

  /**
   * C = A · (s ⊙ Q)ᵀ with A quantized per row as `quantizeRow` (int8.ts) does:
   * integer dot products, exact in i32 (i32x4.dot_i16x8_s on both operands
   * widened to i16), then the two scales in the interface's order, so the
   * bits equal the reference's.
   */
  gemmInt8Quantized(a: Float32Array, aOffset: number, q: Int8Array, qOffset: number, scales: Float32Array, c: Float32Array,
    cOffset: number, m: number, n: number, k: number): void {
    checkArguments(a, aOffset, { label: 'Q', array: q, type: Int8Array, offset: qOffset }, c, cOffset, m, n, k);
    checkScales(scales, n);
    if (k > MAX_QUANTIZED_K) {
      throw new ShapeError(`WebAssembly gemmInt8Quantized: k = ${k} could overflow the int32 dot products (127² · k); at most ${MAX_QUANTIZED_K}`);
    }
    if (m === 0 || n === 0) return;
    if (k === 0) {
      c.fill(0, cOffset, cOffset + m * n);
      return;
    }
    // k padded to whole i16x8 vectors, m to whole 4-row tiles, each slice of Q to whole pairs of rows.
    const kp = roundUp(k, 8);
    const mp = roundUp(m, 4);
    const np = roundUp(n, 2);
    const sliceRows = Math.max(2, Math.floor(SLICE_BYTES / (kp * 4)) * 2);
    const arena = this.local;
    const dotSlot = align(mp * kp * 2);
    const sliceSlot = align(dotSlot + mp * np * 4);
    const stagingSlot = align(sliceSlot + sliceRows * kp * 2);
    const aAt = arena.workspace(stagingSlot + sliceRows * kp);
    const [dotAt, sliceAt, stagingAt] = [dotSlot, sliceSlot, stagingSlot].map((offset) => aAt + offset);
    const words = new Int16Array(arena.memory.buffer);
    const levels = new Int32Array(k);
    const rowScales = new Float32Array(m);
    for (let i = 0; i < m; i++) {
      rowScales[i] = quantizeRow(a, aOffset + i * k, k, levels);
      words.set(levels, aAt / 2 + i * kp);
      words.fill(0, aAt / 2 + i * kp + k, aAt / 2 + (i + 1) * kp);
    }
    words.fill(0, aAt / 2 + m * kp, aAt / 2 + mp * kp);
    for (let j0 = 0; j0 < n; j0 += sliceRows) {
      const rows = Math.min(sliceRows, n - j0);
      const padded = roundUp(rows, 2);
      const staged = new Int8Array(arena.memory.buffer, stagingAt, padded * kp);
      copyRows(staged, q, qOffset + j0 * k, rows, k, 0, kp);
      staged.fill(0, rows * kp);
      arena.e.widenInt8ToI16(stagingAt, sliceAt, padded * kp);
      arena.e.dotI16(aAt, mp, sliceAt, padded, kp * 2, dotAt + j0 * 4, np * 4);
    }
    const dots = new Int32Array(arena.memory.buffer, dotAt, mp * np);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        c[cOffset + i * n + j] = Math.fround(Math.fround(Math.fround(dots[i * np + j]) * rowScales[i]) * scales[j]);
      }
    }
  }

  /** C = A · op(B) for B placed in the module's memory as f32 by `weight`. */
  private gemmFrom(a: Float32Array, aOffset: number, weight: WeightRows, c: Float32Array, cOffset: number,
    m: number, n: number, k: number, transB: boolean): void {
    if (m === 0 || n === 0) return;
    if (k === 0) {
      c.fill(0, cOffset, cOffset + m * n);
      return;
    }
    if (m <= 4) {
      if (transB) this.gemvNK(a, aOffset, weight, c, cOffset, m, n, k);
      else this.gemvKN(a, aOffset, weight, c, cOffset, m, n, k);
      return;
    }
    const threads = this.threadsFor(m, n, k);
    const mr = tileFor(this.relaxed).mr;
    const split = plan(m, n, threads, mr);
    const arena = threads > 1 ? this.pool : this.local;
    const bSlot = align(m * k * 4);
    const cSlot = align(bSlot + n * k * 4);
    const sharedSlot = align(cSlot + m * n * 4);
    const stagingSlot = align(sharedSlot + sharedBytes(m, n, k, split.splitN, mr));
    const aAt = arena.workspace(stagingSlot + (weight.storage === 'f32' ? 0 : weight.bytes * n * k + STAGING_SLACK));
    const [bAt, cAt, sharedAt, stagingAt] = [bSlot, cSlot, sharedSlot, stagingSlot].map((offset) => aAt + offset);
    const job: Job = { mr, m, n, k, transB, a: aAt, b: bAt, c: cAt, shared: sharedAt, bPanels: 0, ...split };
    arena.heap.set(a.subarray(aOffset, aOffset + m * k), aAt / 4);
    // B as one block of rows, whichever layout: [n, k] or [k, n].
    if (transB) weight.copy(arena, 0, n, k, bAt, k, stagingAt);
    else weight.copy(arena, 0, k, n, bAt, n, stagingAt);
    this.multiply(arena, job, threads, c, cOffset);
  }

  /** Threads a product of this size uses: below THREADED_MIN_MACS the caller alone. */
  private threadsFor(m: number, n: number, k: number): number {
    return m * n * k >= THREADED_MIN_MACS ? this.activeThreads : 1;
  }

  /** Runs a job whose operands are in the arena (packing the shared one first) and copies C out. */
  private multiply(arena: Arena, job: Job, threads: number, c: Float32Array, cOffset: number): void {
    packShared(arena.e, job);
    if (threads === 1) {
      for (let part = 0; part < job.parts; part++) runPart(arena.e, job, part, scratchAddress(0));
    } else {
      this.runThreaded(job, threads);
    }
    c.set(arena.heap.subarray(job.c / 4, job.c / 4 + job.m * job.n), cOffset);
  }

  private runThreaded(job: Job, threads: number): void {
    const ctl = this.ctl();
    publish(ctl, job, threads);
    for (let part = claim(ctl); part >= 0; part = claim(ctl)) {
      runPart(this.pool.e, job, part, scratchAddress(0));
      finish(ctl);
    }
    // Only parts a worker has claimed remain; a worker that had not started gets none.
    for (let done = Atomics.load(ctl, CTL.done); done < job.parts; done = Atomics.load(ctl, CTL.done)) {
      if (this.canBlock) Atomics.wait(ctl, CTL.done, done);
    }
  }

  /**
   * C = A · Bᵀ for B as [n, k] and m ≤ 4, B copied in its stored form (f32,
   * bf16 or int8: 4, 2 or 1 bytes a weight) in slices of rows that stay in L2
   * until the product, which widens as it loads, has read them (k padded to
   * whole vectors and the last slice to whole groups, with zeros).
   */
  private gemvNK(a: Float32Array, aOffset: number, weight: WeightRows, c: Float32Array, cOffset: number,
    m: number, n: number, k: number): void {
    const group = GEMV_NK_GROUP[m];
    const kp = roundUp(k, 4);
    const np = roundUp(n, group);
    const sliceRows = Math.max(group, Math.floor(SLICE_BYTES / (kp * weight.bytes * group)) * group);
    const arena = this.local;
    const cSlot = align(m * kp * 4);
    const sliceSlot = align(cSlot + m * np * 4);
    const aAt = arena.workspace(sliceSlot + sliceRows * kp * weight.bytes);
    const [cAt, sliceAt] = [aAt + cSlot, aAt + sliceSlot];
    copyRows(arena.heap, a, aOffset, m, k, aAt / 4, kp);
    const product = arena.e[gemvNKName(weight.storage, m)];
    for (let j0 = 0; j0 < n; j0 += sliceRows) {
      const rows = Math.min(sliceRows, n - j0);
      const padded = roundUp(rows, group);
      weight.stored(arena, j0, rows, k, sliceAt, kp);
      new Uint8Array(arena.memory.buffer, sliceAt + rows * kp * weight.bytes, (padded - rows) * kp * weight.bytes).fill(0);
      product(aAt, kp * 4, sliceAt, kp * weight.bytes, kp * 4, padded, cAt + j0 * 4, np * 4);
    }
    arena.copyOut(cAt / 4, np, c, cOffset, m, n);
  }

  /**
   * C = A · B for B as [k, n] and m ≤ 4, B copied in slices of rows (a slice
   * of k) that stay in L2 until the product has read them, each slice's sums
   * added to C; rows padded to whole strips with zeros.
   */
  private gemvKN(a: Float32Array, aOffset: number, weight: WeightRows, c: Float32Array, cOffset: number,
    m: number, n: number, k: number): void {
    const np = roundUp(n, 4 * GEMV_KN_VECTORS[m]);
    const sliceRows = Math.max(1, Math.floor(SLICE_BYTES / (np * 4)));
    const arena = this.local;
    const cSlot = align(m * k * 4);
    const sliceSlot = align(cSlot + m * np * 4);
    const stagingSlot = align(sliceSlot + sliceRows * np * 4);
    const aAt = arena.workspace(stagingSlot + (weight.storage === 'f32' ? 0 : weight.bytes * sliceRows * np + STAGING_SLACK));
    const [cAt, sliceAt, stagingAt] = [cSlot, sliceSlot, stagingSlot].map((offset) => aAt + offset);
    copyRows(arena.heap, a, aOffset, m, k, aAt / 4, k);
    for (let p0 = 0; p0 < k; p0 += sliceRows) {
      const rows = Math.min(sliceRows, k - p0);
      weight.copy(arena, p0, rows, n, sliceAt, np, stagingAt);
      arena.e[`gemvKN${m}`](aAt + p0 * 4, k * 4, sliceAt, np * 4, rows, np * 4, cAt, np * 4, p0 > 0 ? 1 : 0);
    }
    arena.copyOut(cAt / 4, np, c, cOffset, m, n);
  }

  setResidentBudget(bytes: number): number {
    checkBudget(bytes);
    return this.store.setBudget(bytes);
  }

  residentBytes(): number {
    return this.store.used;
  }

  residentEvictions(): number {
    return this.store.evicted;
  }

  /**
   * A handle on op(B) for products from the module's memory. Its resident
   * forms are made on first use (the rows for decode's few rows, the packed
   * panels for more) and may be evicted and made again from `b` later, so
   * `b` must not be written while the handle is in use: linear.ts forgets
   * its packs after every optimizer step and never packs a weight that
   * requires gradients. Dropping the handle frees its forms.
   */
  prepack(b: Float32Array, bOffset: number, n: number, k: number, transB: boolean): PackedMatrix {
    checkArguments(new Float32Array(0), 0, { label: 'B', array: b, type: Float32Array, offset: bOffset }, new Float32Array(0), 0, 0, n, k);
    return this.keep(new WasmPacked(this, this.name, 'f32', b, bOffset, n, k, transB));
  }

  prepackBf16(b: Uint16Array, bOffset: number, n: number, k: number): PackedMatrix {
    checkArguments(new Float32Array(0), 0, { label: 'B', array: b, type: Uint16Array, offset: bOffset }, new Float32Array(0), 0, 0, n, k);
    return this.keep(new WasmPacked(this, this.name, 'bf16', b, bOffset, n, k, true));
  }

  prepackInt8(q: Int8Array, qOffset: number, scales: Float32Array, n: number, k: number): PackedMatrix {
    checkArguments(new Float32Array(0), 0, { label: 'Q', array: q, type: Int8Array, offset: qOffset }, new Float32Array(0), 0, 0, n, k);
    checkScales(scales, n);
    return this.keep(new WasmPacked(this, this.name, 'int8', q, qOffset, n, k, true, scales));
  }

  /** The handle, its resident forms freed once it is collected. */
  private keep(packed: WasmPacked): WasmPacked {
    this.finalizer.register(packed, packed.resident);
    return packed;
  }

  /**
   * C = A · op(B) from B's resident form: the same bits as `gemm` at every
   * m (the same functions over the same values), without B's copy, and with
   * more than 4 rows without its packing. A form that cannot be resident
   * (larger than the budget or the memory) is copied in as `gemm` does.
   */
  gemmPacked(a: Float32Array, aOffset: number, packed: PackedMatrix, c: Float32Array, cOffset: number, m: number): void {
    this.fromPacked('gemmPacked', 'f32', a, aOffset, packed, c, cOffset, m);
  }

  gemmBf16Packed(a: Float32Array, aOffset: number, packed: PackedMatrix, c: Float32Array, cOffset: number, m: number): void {
    this.fromPacked('gemmBf16Packed', 'bf16', a, aOffset, packed, c, cOffset, m);
  }

  gemmInt8Packed(a: Float32Array, aOffset: number, packed: PackedMatrix, c: Float32Array, cOffset: number, m: number): void {
    this.fromPacked('gemmInt8Packed', 'int8', a, aOffset, packed, c, cOffset, m);
  }

  /** The product from a packed weight of the storage the method takes; int8 columns then times their scales, as gemmInt8 does. */
  private fromPacked(method: string, storage: WeightStorage, a: Float32Array, aOffset: number, packed: PackedMatrix,
    c: Float32Array, cOffset: number, m: number): void {
    if (!(packed instanceof WasmPacked)) {
      throw new UnsupportedError(`${method}: the weight was packed by ${packed.kernel}, not by a WebAssembly kernel`);
    }
    if (packed.storage !== storage) {
      throw new UnsupportedError(`${method}: the weight was packed as ${packed.storage}, this product takes ${storage} weights`);
    }
    const { n, k } = packed;
    checkArguments(a, aOffset, { label: 'B', array: packed.source, type: packed.source.constructor as WeightArgument['type'], offset: packed.offset },
      c, cOffset, m, n, k);
    // Another kernel's pack lives in that kernel's memory.
    const done = packed.owner === this && m > 0 && n > 0 && k > 0 && (m <= 4
      ? (packed.transB ? this.gemvNKResident(a, aOffset, packed, c, cOffset, m) : this.gemvKNResident(a, aOffset, packed, c, cOffset, m))
      : this.gemmResident(a, aOffset, packed, c, cOffset, m));
    if (!done) {
      this.gemmFrom(a, aOffset, weightRows(packed), c, cOffset, m, n, k, packed.transB);
    }
    if (packed.scales !== undefined) scaleColumns(c, cOffset, packed.scales, m, n);
  }

  /**
   * gemvNK's product over B's resident rows, interleaved in blocks for
   * streaming (gemvRows: the same sums, so the same bits), k padded to
   * vectors and n to whole blocks; false when they cannot be resident.
   */
  private gemvNKResident(a: Float32Array, aOffset: number, packed: WasmPacked, c: Float32Array, cOffset: number, m: number): boolean {
    const { n, k, storage } = packed;
    const weight = weightRows(packed);
    const kp = roundUp(k, 4);
    const np = roundUp(n, GEMV_ROWS_GROUP[m]);
    const rowsN = roundUp(n, ROWS_BLOCK);
    const formBytes = rowsN * kp * weight.bytes;
    const arena = this.pool;
    const cSlot = align(m * kp * 4);
    const stagingSlot = align(cSlot + m * np * 4);
    const making = !this.store.has(packed.resident, 'rows');
    const aAt = arena.workspace(stagingSlot + (making ? formBytes : 0));
    const bAt = this.store.acquire(packed.resident, 'rows', formBytes, (at) => {
      const staging = aAt + stagingSlot;
      weight.stored(arena, 0, n, k, staging, kp);
      new Uint8Array(arena.memory.buffer, staging + n * kp * weight.bytes, (rowsN - n) * kp * weight.bytes).fill(0);
      arena.e[interleaveRowsName(storage)](staging, at, kp * 4, rowsN);
    });
    if (bAt === undefined) return false;
    copyRows(arena.heap, a, aOffset, m, k, aAt / 4, kp);
    // On the caller alone, as every decode product: split between two threads
    // on this shared machine, GPT-2-small decode from resident weights took
    // 66-73 ms a token against 42 on one (a worker that waits for its core).
    arena.e[gemvRowsName(storage, m)](aAt, kp * 4, bAt, kp * 4, np, aAt + cSlot, np * 4);
    arena.copyOut((aAt + cSlot) / 4, np, c, cOffset, m, n);
    return true;
  }

  /** gemvKN over B's resident rows ([k, n], n padded to RESIDENT_COLUMN_STRIPS); false when they cannot be resident. */
  private gemvKNResident(a: Float32Array, aOffset: number, packed: WasmPacked, c: Float32Array, cOffset: number, m: number): boolean {
    const { n, k } = packed;
    const weight = weightRows(packed);
    const np = roundUp(n, 4 * GEMV_KN_VECTORS[m]);
    const stride = roundUp(n, RESIDENT_COLUMN_STRIPS);
    const arena = this.pool;
    const cSlot = align(m * k * 4);
    const aAt = arena.workspace(cSlot + m * np * 4);
    const bAt = this.store.acquire(packed.resident, 'rows', k * stride * 4, (at) => weight.stored(arena, 0, k, n, at, stride));
    if (bAt === undefined) return false;
    copyRows(arena.heap, a, aOffset, m, k, aAt / 4, k);
    arena.e[`gemvKN${m}`](aAt, k * 4, bAt, stride * 4, k, np * 4, aAt + cSlot, np * 4, 0);
    arena.copyOut((aAt + cSlot) / 4, np, c, cOffset, m, n);
    return true;
  }

  /**
   * The GEMM over B's resident panels (every k block packed as packShared
   * packs B), so no thread packs B; false when they cannot be resident. The
   * panels are made from B staged in the workspace.
   */
  private gemmResident(a: Float32Array, aOffset: number, packed: WasmPacked, c: Float32Array, cOffset: number, m: number): boolean {
    const { n, k, transB } = packed;
    const weight = weightRows(packed);
    const threads = this.threadsFor(m, n, k);
    const mr = tileFor(this.relaxed).mr;
    const split = plan(m, n, threads, mr);
    const arena = this.pool;
    const cSlot = align(m * k * 4);
    const sharedSlot = align(cSlot + m * n * 4);
    const stagingSlot = align(sharedSlot + (split.splitN ? sharedBytes(m, n, k, true, mr) : 0));
    const making = !this.store.has(packed.resident, 'panels');
    // B widened to f32 at staging, a bf16 or int8 B staged after it first.
    const narrowSlot = align(stagingSlot + n * k * 4);
    const aAt = arena.workspace(making ? narrowSlot + (weight.storage === 'f32' ? 0 : weight.bytes * n * k + STAGING_SLACK) : stagingSlot);
    const nPad = roundUp(n, NR);
    const bPanels = this.store.acquire(packed.resident, 'panels', nPad * k * 4, (at) => {
      const staging = aAt + stagingSlot;
      if (transB) weight.copy(arena, 0, n, k, staging, k, aAt + narrowSlot);
      else weight.copy(arena, 0, k, n, staging, n, aAt + narrowSlot);
      const [rowStep, colStep] = transB ? [4, k * 4] : [n * 4, 4];
      for (let pc = 0; pc < k; pc += KC) arena.e.packB(staging + pc * rowStep, rowStep, colStep, Math.min(KC, k - pc), n, at + nPad * pc * 4);
    });
    if (bPanels === undefined) return false;
    const shared = split.splitN ? aAt + sharedSlot : bPanels;
    const job: Job = { mr, m, n, k, transB, a: aAt, b: 0, c: aAt + cSlot, shared, bPanels, ...split };
    arena.heap.set(a.subarray(aOffset, aOffset + m * k), aAt / 4);
    this.multiply(arena, job, threads, c, cOffset);
    return true;
  }
}

/** A weight prepacked by a WebAssembly kernel: where to find B, and its resident forms in that kernel's memory. */
class WasmPacked implements PackedMatrix {
  readonly resident = new ResidentWeight();

  constructor(
    readonly owner: WasmKernel,
    readonly kernel: string,
    readonly storage: WeightStorage,
    readonly source: Float32Array | Uint16Array | Int8Array,
    readonly offset: number,
    readonly n: number,
    readonly k: number,
    readonly transB: boolean,
    /** An int8 weight's per-row scales. */
    readonly scales?: Float32Array,
  ) {}
}

/** The packed weight's array as the copying products take it. */
function weightRows(packed: WasmPacked): WeightRows {
  return packed.source instanceof Float32Array ? f32Rows(packed.source, packed.offset) : narrowRows(packed.source, packed.offset);
}

/** Each column j of C [m, n] times scales[j] (int8 weights' per-row scales). */
function scaleColumns(c: Float32Array, cOffset: number, scales: Float32Array, m: number, n: number): void {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) c[cOffset + i * n + j] *= scales[j];
  }
}

/** A budget is a non-negative number of bytes. */
function checkBudget(bytes: number): void {
  if (!Number.isInteger(bytes) || bytes < 0) throw new ShapeError(`setResidentBudget: bytes must be a non-negative integer, got ${bytes}`);
}

/** How a weight reaches the module's memory: in its stored form, or widened to f32. */
interface WeightRows {
  readonly storage: WeightStorage;
  /** Bytes of a stored weight. */
  readonly bytes: 4 | 2 | 1;
  /**
   * Places `rows` rows of B (each `cols` elements, from B's row `from`) in
   * their stored form at byte address `at` of the arena, rows `stride` ≥ cols elements
   * apart, the padding zero.
   */
  stored(arena: Arena, from: number, rows: number, cols: number, at: number, stride: number): void;
  /** The same rows as f32 at byte address `at`; a bf16 or int8 form is staged at `staging` first and widened. */
  copy(arena: Arena, from: number, rows: number, cols: number, at: number, stride: number, staging: number): void;
}

/** Rows of an f32 B, copied. */
function f32Rows(b: Float32Array, bOffset: number): WeightRows {
  const stored: WeightRows['stored'] = (arena, from, rows, cols, at, stride) =>
    copyRows(arena.heap, b, bOffset + from * cols, rows, cols, at / 4, stride);
  return { storage: 'f32', bytes: 4, stored, copy: stored };
}

/** Rows of a bf16 or int8 B: copied as they are (2 or 1 bytes a weight), widened to f32 in the module. */
function narrowRows(b: Uint16Array | Int8Array, bOffset: number): WeightRows {
  const bf16 = b instanceof Uint16Array;
  const view = (arena: Arena, at: number): Uint16Array | Int8Array =>
    bf16 ? new Uint16Array(arena.memory.buffer, at) : new Int8Array(arena.memory.buffer, at);
  const stored: WeightRows['stored'] = (arena, from, rows, cols, at, stride) =>
    copyRows(view(arena, at), b, bOffset + from * cols, rows, cols, 0, stride);
  return {
    storage: bf16 ? 'bf16' : 'int8',
    bytes: bf16 ? 2 : 1,
    stored,
    copy: (arena, from, rows, cols, at, stride, staging) => {
      stored(arena, from, rows, cols, staging, stride);
      const count = roundUp(rows * stride, 4);
      if (bf16) arena.e.widenBf16(staging, at, count);
      else arena.e.widenInt8(staging, at, count);
    },
  };
}

type Elements = Float32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Int32Array;

/** rows × cols from `src` into `target` at `at` with row stride `stride` ≥ cols (converting element types), the padding zeroed. */
function copyRows(target: Elements, src: Elements, offset: number, rows: number, cols: number, at: number, stride: number): void {
  if (stride === cols) {
    target.set(src.subarray(offset, offset + rows * cols), at);
    return;
  }
  for (let r = 0; r < rows; r++) {
    target.set(src.subarray(offset + r * cols, offset + (r + 1) * cols), at + r * stride);
    target.fill(0, at + r * stride + cols, at + (r + 1) * stride);
  }
}

/** The weight operand as the caller passed it, and the array type its product takes. */
interface WeightArgument {
  readonly label: 'B' | 'Q';
  readonly array: unknown;
  readonly type: Float32ArrayConstructor | Uint16ArrayConstructor | Int8ArrayConstructor;
  readonly offset: number;
}

/** Sizes must be non-negative integers and every matrix must fit its array from its offset. */
function checkArguments(a: Float32Array, aOffset: number, weight: WeightArgument, c: Float32Array, cOffset: number,
  m: number, n: number, k: number): void {
  const { label: bLabel, array: b, type, offset: bOffset } = weight;
  for (const [label, value] of [['m', m], ['n', n], ['k', k], ['aOffset', aOffset], [`${bLabel === 'B' ? 'b' : 'q'}Offset`, bOffset], ['cOffset', cOffset]] as const) {
    if (!Number.isInteger(value) || value < 0) throw new ShapeError(`WebAssembly matmul: ${label} must be a non-negative integer, got ${value}`);
  }
  for (const [label, array, arrayType, offset, size, shape] of [
    ['A', a, Float32Array, aOffset, m * k, `[${m}, ${k}]`],
    [bLabel, b, type, bOffset, k * n, `${k * n} elements (k = ${k}, n = ${n})`],
    ['C', c, Float32Array, cOffset, m * n, `[${m}, ${n}]`],
  ] as const) {
    if (!(array instanceof arrayType)) throw new ShapeError(`WebAssembly matmul: ${label} must be a ${arrayType.name}`);
    if (offset + size > array.length) {
      throw new ShapeError(`WebAssembly matmul: ${label} ${shape} from offset ${offset} needs ${offset + size} elements, the array has ${array.length}`);
    }
  }
}

/** One f32 scale per row of the int8 weight. */
function checkScales(scales: Float32Array, n: number): void {
  if (!(scales instanceof Float32Array) || scales.length < n) {
    throw new ShapeError(`WebAssembly matmul: scales must be a Float32Array of at least n = ${n} per-row scales`);
  }
}
