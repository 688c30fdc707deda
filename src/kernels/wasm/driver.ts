/**
 * The GEMM loop nest over the WebAssembly functions (gemm-module.ts), and the
 * job a product is split into for threads. The same code runs on the calling
 * thread and in every worker (worker.ts): each instance of the module shares
 * one memory, so a job is a few integers in a control block at address 0 and
 * a thread's part is a range of C.
 *
 * Loop nest (Goto and van de Geijn, ACM TOMS 2008, as in native/driver.h):
 * the operand every part needs is packed once, on the calling thread, before
 * the parts start ("shared"); each part packs its own slice of the other
 * operand into its thread's scratch.
 *
 *   split along n (A shared):  for jc in part by NC: for pc by KC: pack B[pc, jc] → for ic by MC: block
 *   split along m (B shared):  for ic in part by MC: for pc by KC: pack A[ic, pc] → for jc by NC: block
 */
import type { GemmExports } from './gemm-module.js';

/** Columns of the register tile (gemm-module.ts tileFor); its rows (MR) depend on the module and travel in the job. */
export const NR = 8;
const MAX_MR = 6;
// Depth of a k block: a B panel [KC][NR] (12 KB) stays in L1 while A panels
// stream; a deeper block writes C fewer times (measured in docs/performance.md).
export const KC = 384;
// Register tiles in the rows of an A block [MC = 24·MR][KC] (216 KB at MR = 6, L2).
const MC_TILES = 24;
// Columns of a B block [KC][NC] (4.5 MB, L3); GPT-2's widest weight (3072) is one block.
export const NC = 3072;

/** Bytes of one thread's scratch: an A block, a B block and one tile of C. */
const SCRATCH_BYTES = (MC_TILES * MAX_MR * KC + KC * NC + MAX_MR * NR) * 4;

/** Slots of the control block (an Int32Array over the memory's first bytes). */
export const CTL = {
  /** Job sequence number (high 20 bits) and the next part to claim (low 12). */
  job: 0,
  /** Parts finished. */
  done: 1,
  /** Workers that have started. */
  ready: 2,
  /** Threads the current job may use, counting the caller; worker i (1-based) takes part while i < active. */
  active: 3,
  m: 4,
  n: 5,
  k: 6,
  transB: 7,
  a: 8,
  b: 9,
  c: 10,
  shared: 11,
  parts: 12,
  splitN: 13,
  partSize: 14,
  mr: 16,
  bPanels: 17,
  /** Parts the workers have finished since the pool started (tests and benchmarks check that threads took part). */
  workerParts: 15,
} as const;
export const CTL_BYTES = 4096;
const PART_BITS = 12;
const PART_MASK = (1 << PART_BITS) - 1;

/** Where the thread's scratch starts: after the control block, one region a thread. */
export function scratchAddress(thread: number): number {
  return CTL_BYTES + thread * SCRATCH_BYTES;
}

/** One product: sizes, byte addresses of the operands, and how it is split. */
export interface Job {
  /** Rows of the module's register tile. */
  mr: number;
  m: number;
  n: number;
  k: number;
  transB: boolean;
  a: number;
  b: number;
  c: number;
  /** The packed shared operand (A when splitting along n, else B). */
  shared: number;
  /**
   * B already packed, every k block (a resident weight, resident.ts), or 0:
   * then no part packs B (split along m, it is also \`shared\`).
   */
  bPanels: number;
  parts: number;
  splitN: boolean;
  /** Columns (split along n) or rows (along m) of one part, a whole number of tiles. */
  partSize: number;
}

export const roundUp = (x: number, multiple: number): number => Math.ceil(x / multiple) * multiple;

/** Bytes of the packed shared operand: every k block of A (or B) in panels. */
export function sharedBytes(m: number, n: number, k: number, splitN: boolean, mr: number): number {
  return (splitN ? roundUp(m, mr) : roundUp(n, NR)) * k * 4;
}

/**
 * How to split C[m × n] for `threads` threads: along n unless C is tall and
 * narrow, in whole tiles, about three parts a thread so a thread slowed by
 * another process leaves its remaining parts to the others.
 */
export function plan(m: number, n: number, threads: number, mr: number): Pick<Job, 'parts' | 'splitN' | 'partSize'> {
  const splitN = n >= m || n >= 512;
  const tile = splitN ? NR : mr;
  const tiles = Math.ceil((splitN ? n : m) / tile);
  const wanted = threads === 1 ? 1 : Math.min(tiles, threads * 3, PART_MASK);
  const partSize = Math.ceil(tiles / wanted) * tile;
  return { parts: Math.ceil((splitN ? n : m) / partSize), splitN, partSize };
}

/** Packs the shared operand, every k block, into job.shared (calling thread, before the parts start). */
export function packShared(e: GemmExports, job: Job): void {
  const { m, n, k, transB } = job;
  if (!job.splitN && job.bPanels !== 0) return;
  for (let pc = 0; pc < k; pc += KC) {
    const kc = Math.min(KC, k - pc);
    if (job.splitN) {
      e.packA(job.a + pc * 4, k * 4, m, kc, job.shared + roundUp(m, job.mr) * pc * 4);
    } else {
      const [rowStep, colStep] = transB ? [4, k * 4] : [n * 4, 4];
      e.packB(job.b + pc * rowStep, rowStep, colStep, kc, n, job.shared + roundUp(n, NR) * pc * 4);
    }
  }
}

/** Computes part `index` of the job with the thread's scratch. */
export function runPart(e: GemmExports, job: Job, index: number, scratch: number): void {
  const { m, n, k, transB, mr } = job;
  const [rowStep, colStep] = transB ? [4, k * 4] : [n * 4, 4];
  const mcMax = MC_TILES * mr;
  const aBlock = scratch;
  const bBlock = scratch + MC_TILES * MAX_MR * KC * 4;
  const tile = bBlock + KC * NC * 4;
  const ldc = n * 4;
  const from = index * job.partSize;
  if (job.splitN) {
    const to = Math.min(n, from + job.partSize);
    const mPad = roundUp(m, mr);
    const nPad = roundUp(n, NR);
    for (let jc = from; jc < to; jc += NC) {
      const nc = Math.min(NC, to - jc);
      for (let pc = 0; pc < k; pc += KC) {
        const kc = Math.min(KC, k - pc);
        // Resident panels hold these columns as packing them here would (parts start at whole panels).
        const bPanels = job.bPanels !== 0 ? job.bPanels + (nPad * pc + jc * kc) * 4 : bBlock;
        if (job.bPanels === 0) e.packB(job.b + pc * rowStep + jc * colStep, rowStep, colStep, kc, nc, bBlock);
        for (let ic = 0; ic < m; ic += mcMax) {
          const mc = Math.min(mcMax, m - ic);
          const aPanels = job.shared + (mPad * pc + ic * kc) * 4;
          e.block(mc, nc, kc, aPanels, bPanels, job.c + (ic * n + jc) * 4, ldc, pc > 0 ? 1 : 0, tile);
        }
      }
    }
  } else {
    const to = Math.min(m, from + job.partSize);
    const nPad = roundUp(n, NR);
    for (let ic = from; ic < to; ic += mcMax) {
      const mc = Math.min(mcMax, to - ic);
      for (let pc = 0; pc < k; pc += KC) {
        const kc = Math.min(KC, k - pc);
        e.packA(job.a + (ic * k + pc) * 4, k * 4, mc, kc, aBlock);
        for (let jc = 0; jc < n; jc += NC) {
          const nc = Math.min(NC, n - jc);
          const bPanels = job.shared + (nPad * pc + jc * kc) * 4;
          e.block(mc, nc, kc, aBlock, bPanels, job.c + (ic * n + jc) * 4, ldc, pc > 0 ? 1 : 0, tile);
        }
      }
    }
  }
}

/** Writes a job into the control block and opens it to the workers (a new sequence number, part 0 next). */
export function publish(ctl: Int32Array, job: Job, threads: number): void {
  ctl[CTL.mr] = job.mr;
  ctl[CTL.m] = job.m;
  ctl[CTL.n] = job.n;
  ctl[CTL.k] = job.k;
  ctl[CTL.transB] = job.transB ? 1 : 0;
  ctl[CTL.a] = job.a;
  ctl[CTL.b] = job.b;
  ctl[CTL.c] = job.c;
  ctl[CTL.shared] = job.shared;
  ctl[CTL.bPanels] = job.bPanels;
  ctl[CTL.parts] = job.parts;
  ctl[CTL.splitN] = job.splitN ? 1 : 0;
  ctl[CTL.partSize] = job.partSize;
  Atomics.store(ctl, CTL.done, 0);
  Atomics.store(ctl, CTL.active, threads);
  const sequence = (Atomics.load(ctl, CTL.job) >>> PART_BITS) + 1;
  // The stores above are ordered before this one (sequentially consistent atomics).
  Atomics.store(ctl, CTL.job, (sequence << PART_BITS) & ~PART_MASK);
  Atomics.notify(ctl, CTL.job);
}

/** The job in the control block; read only after claiming a part, when it cannot change. */
export function readJob(ctl: Int32Array): Job {
  return {
    mr: ctl[CTL.mr],
    m: ctl[CTL.m],
    n: ctl[CTL.n],
    k: ctl[CTL.k],
    transB: ctl[CTL.transB] === 1,
    a: ctl[CTL.a],
    b: ctl[CTL.b],
    c: ctl[CTL.c],
    shared: ctl[CTL.shared],
    bPanels: ctl[CTL.bPanels],
    parts: ctl[CTL.parts],
    splitN: ctl[CTL.splitN] === 1,
    partSize: ctl[CTL.partSize],
  };
}

/**
 * Claims the next part of the current job: its index, or -1 when none is
 * left. The job word changes when a part is claimed or a job published, so
 * a compare-and-swap that succeeds proves the job was still open, and the job
 * cannot finish (nor be replaced) before the claimed part is done.
 */
export function claim(ctl: Int32Array): number {
  for (;;) {
    const word = Atomics.load(ctl, CTL.job);
    const next = word & PART_MASK;
    if (next >= Atomics.load(ctl, CTL.parts)) return -1;
    if (Atomics.compareExchange(ctl, CTL.job, word, word + 1) === word) return next;
  }
}

/** Marks a part done and wakes a caller waiting for the last one. */
export function finish(ctl: Int32Array): void {
  Atomics.add(ctl, CTL.done, 1);
  Atomics.notify(ctl, CTL.done);
}
