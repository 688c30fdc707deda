/**
 * Matmul kernels side by side: native (1 and 2 threads), blocked TypeScript
 * and the reference loops, in GFLOP/s, on the shapes a GPT-2 sized model
 * meets. Runs are interleaved round-robin (so a noisy neighbour slows every
 * kernel alike), each kernel is warmed up first, and a cell is the median of
 * its runs (native cells add the best run in brackets). The reference only
 * gets a few runs: it is slow.
 *
 * Then decode's limit and the GEMVs against it: the read bandwidth of one pass
 * over 512 MB (the addon's `streamRead`, 1 and 2 threads, with and without
 * software prefetch), and each GEMV on cold weights (rotating copies that add
 * up to more than the last-level cache, as a model's layers do), in GB/s of
 * weights and as a fraction of the one-thread read (decode runs on one thread).
 */
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { blockedMatmul, referenceMatmul } from '../src/kernels/index.js';
import { loadNativeKernel, type NativeMatmulKernel } from '../src/kernels/native.js';
import type { MatmulKernel } from '../src/kernels/types.js';
import { median, filled } from './stats.js';

interface Shape {
  label: string;
  m: number;
  n: number;
  k: number;
  transB: boolean;
}

const SHAPES: Shape[] = [
  { label: '[1×768]·[768×3072] decode, MLP up', m: 1, n: 3072, k: 768, transB: true },
  { label: '[1×768]·[768×50257] decode, logits', m: 1, n: 50257, k: 768, transB: true },
  { label: '[128×768]·[768×768] attention proj', m: 128, n: 768, k: 768, transB: true },
  { label: '[128×768]·[768×3072] MLP up', m: 128, n: 3072, k: 768, transB: true },
  { label: '[128×768]·[768×3072] B as [k,n]', m: 128, n: 3072, k: 768, transB: false },
  { label: '[1024×1024]·[1024×1024]', m: 1024, n: 1024, k: 1024, transB: false },
  { label: '[1024×1024]·[1024×1024]ᵀ', m: 1024, n: 1024, k: 1024, transB: true },
];

interface Contender {
  label: string;
  kernel: MatmulKernel;
  // Called before every run, e.g. to set the native thread count.
  prepare?: () => void;
  maxRuns: number;
  budgetMs: number;
  // Skip the untimed warm-up run when one run costs more than this (the reference on big shapes).
  warmUpBelowMs: number;
  // A rough rate, to estimate what a run costs before making one.
  expectedGflops: number;
}

interface Timing {
  median: number;
  best: number;
}

/** Median and best milliseconds per run for each contender, interleaved round-robin. */
function measure(shape: Shape, contenders: Contender[]): (Timing | undefined)[] {
  const { m, n, k, transB } = shape;
  const a = filled(m * k, 1);
  const b = filled(k * n, 2);
  const c = new Float32Array(m * n);
  const flops = 2 * m * n * k;
  const runOnce = (x: Contender): number => {
    x.prepare?.();
    const start = performance.now();
    x.kernel.gemm(a, 0, b, 0, c, 0, m, n, k, transB);
    return performance.now() - start;
  };
  const times: number[][] = contenders.map(() => []);
  const spent = contenders.map(() => 0);
  contenders.forEach((x) => {
    if (flops / (x.expectedGflops * 1e6) < x.warmUpBelowMs) runOnce(x);
  });
  for (let round = 0; round < Math.max(...contenders.map((x) => x.maxRuns)); round++) {
    contenders.forEach((x, i) => {
      if (times[i].length >= x.maxRuns || spent[i] >= x.budgetMs) return;
      const ms = runOnce(x);
      times[i].push(ms);
      spent[i] += ms;
    });
  }
  return times.map((t) => (t.length === 0 ? undefined : { median: median(t), best: Math.min(...t) }));
}

const fmt = (value: number | undefined, digits = 1): string => (value === undefined ? '—' : value.toFixed(digits));

export async function run(): Promise<void> {
  const loaded = loadNativeKernel();
  const native = loaded.kernel;
  const cores = cpus().length;
  console.log(`CPU: ${cpus()[0]?.model ?? 'unknown'}, ${cores} logical cores; load average ${loadavg()[0].toFixed(2)}`);
  if (!native) {
    console.log(`native kernel unavailable (${loaded.reason}); measuring the JavaScript kernels only`);
  }
  const threadsBefore = native?.threads() ?? 1;
  // A peak is a maximum: the best of several short runs, measured again
  // between shapes, so a busy neighbour lowers it less.
  const measurePeak = (): number => (native ? Math.max(...[0, 1, 2, 3, 4].map(() => native.fmaPeak(0.05))) : 0);
  let peak = measurePeak();

  const contenders: Contender[] = [];
  if (native) {
    for (const threads of [1, 2]) {
      contenders.push({
        label: `native ${threads}T`,
        kernel: native,
        prepare: () => native.setThreads(threads),
        maxRuns: 21,
        budgetMs: 1500,
        warmUpBelowMs: Infinity,
        expectedGflops: 50,
      });
    }
  }
  contenders.push({
    label: 'blocked TS',
    kernel: blockedMatmul,
    maxRuns: 7,
    budgetMs: 2500,
    warmUpBelowMs: Infinity,
    expectedGflops: 2,
  });
  contenders.push({
    label: 'reference',
    kernel: referenceMatmul,
    maxRuns: 3,
    budgetMs: 2500,
    warmUpBelowMs: 300,
    expectedGflops: 0.4,
  });

  const results = SHAPES.map((shape) => {
    const ms = measure(shape, contenders);
    peak = Math.max(peak, measurePeak());
    return { shape, ms };
  });

  if (native) {
    console.log(`native ISA: ${native.isa()}; one-core FMA peak (register-only loop): ${peak.toFixed(1)} GFLOP/s\n`);
  }
  const header = [
    'shape',
    ...contenders.map((x) => (x.kernel === native ? `${x.label} GFLOP/s (best)` : `${x.label} GFLOP/s`)),
    ...(native ? ['native 1T % peak', 'native 2T % 2×peak'] : []),
    'blocked / ref',
    ...(native ? ['native 2T / ref'] : []),
  ];
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
  const bandwidth: string[] = [];
  for (const { shape, ms } of results) {
    const flops = 2 * shape.m * shape.n * shape.k;
    const gflops = ms.map((t) => (t === undefined ? undefined : flops / (t.median * 1e6)));
    const bestGflops = ms.map((t) => (t === undefined ? undefined : flops / (t.best * 1e6)));
    const byLabel = (label: string): number | undefined => gflops[contenders.findIndex((x) => x.label === label)];
    const reference = byLabel('reference');
    const ratio = (x: number | undefined): string =>
      x === undefined || reference === undefined ? '—' : `${(x / reference).toFixed(0)}×`;
    const percent = (x: number | undefined, of: number): string =>
      x === undefined ? '—' : `${((100 * x) / of).toFixed(0)}%`;
    // Native cells add the best run: on a shared machine the median carries the neighbours' load.
    const cells = [
      shape.label,
      ...gflops.map((g, i) => (contenders[i].kernel === native ? `${fmt(g)} (${fmt(bestGflops[i])})` : fmt(g))),
    ];
    if (native) cells.push(percent(byLabel('native 1T'), peak), percent(byLabel('native 2T'), 2 * peak));
    cells.push(ratio(byLabel('blocked TS')));
    if (native) cells.push(ratio(byLabel('native 2T')));
    console.log(`| ${cells.join(' | ')} |`);
    if (native && shape.m === 1) {
      // Decode reads every weight once: its speed is memory bandwidth, not arithmetic.
      const bytes = shape.n * shape.k * 4;
      const rates = [1, 2].map((t) => {
        const time = ms[contenders.findIndex((x) => x.label === `native ${t}T`)];
        return time === undefined ? '—' : `${(bytes / (time.median * 1e6)).toFixed(1)} GB/s`;
      });
      bandwidth.push(`${shape.label}: weights streamed at ${rates[0]} (1T), ${rates[1]} (2T)`);
    }
  }
  if (bandwidth.length > 0) console.log(`\n${bandwidth.join('\n')}  (warm: the same weight every run)`);
  native?.setThreads(threadsBefore);
  if (native) streamingSection(native);
  console.log(`load average after: ${loadavg()[0].toFixed(2)}`);
}

const STREAM_FLOATS = 128 << 20; // 512 MB, 16× the 32 MB L3
const STREAM_RUNS = 5;
// Cold weights: copies of one weight, used in turn, that add up to at least this.
const COLD_BYTES = 120 << 20;

interface Gemv {
  label: string;
  /** Bytes of weights one call reads. */
  bytes: number;
  /** One call on copy `i`. */
  call: (i: number) => void;
  copies: number;
}

function medianBest(values: number[]): string {
  return `${median(values).toFixed(1)} (${Math.max(...values).toFixed(1)})`;
}

/** The read bandwidth decode is bound by, and every GEMV's share of it on cold weights. */
function streamingSection(native: NativeMatmulKernel): void {
  // The values do not matter to a read; filling touches every page first.
  const buffer = new Float32Array(STREAM_FLOATS).fill(1);
  const modes = [
    { threads: 1, prefetch: false },
    { threads: 1, prefetch: true },
    { threads: 2, prefetch: false },
    { threads: 2, prefetch: true },
  ];
  const reads = modes.map(() => [] as number[]);

  const k = 768;
  const a = filled(4 * k, 4);
  const copiesFor = (bytes: number): number => Math.max(1, Math.ceil(COLD_BYTES / bytes));
  const gemvs: Gemv[] = [];
  const f32Gemv = (label: string, n: number, transB: boolean): void => {
    const bytes = n * k * 4;
    const copies = copiesFor(bytes);
    const w = new Float32Array(n * k * copies).fill(0.25);
    const c = new Float32Array(n);
    gemvs.push({ label, bytes, copies, call: (i) => native.gemm(a, 0, w, i * n * k, c, 0, 1, n, k, transB) });
  };
  f32Gemv('f32 [1×768]·[50257×768]ᵀ logits', 50257, true);
  f32Gemv('f32 [1×768]·[768×3072] Conv1D [k,n]', 3072, false);
  f32Gemv('f32 [1×768]·[3072×768]ᵀ', 3072, true);
  {
    const n = 50257;
    const copies = copiesFor(n * k * 2);
    const w = new Uint16Array(n * k * copies);
    for (let i = 0; i < w.length; i++) w[i] = 0x3f00 | (i * 37) % 256; // bf16 values in [0.5, 1)
    const c = new Float32Array(n);
    gemvs.push({ label: 'bf16 logits', bytes: n * k * 2, copies, call: (i) => native.gemmBf16(a, 0, w, i * n * k, c, 0, 1, n, k) });
  }
  {
    const n = 50257;
    const copies = copiesFor(n * k);
    const q = new Int8Array(n * k * copies);
    for (let i = 0; i < q.length; i++) q[i] = ((i * 37) % 255) - 127;
    const scales = new Float32Array(n).fill(0.01);
    const c = new Float32Array(n);
    gemvs.push({ label: 'int8 logits, f32 activations', bytes: n * k, copies, call: (i) => native.gemmInt8(a, 0, q, i * n * k, scales, c, 0, 1, n, k) });
    gemvs.push({
      label: 'int8 logits, int8 activations (VNNI)',
      bytes: n * k,
      copies,
      call: (i) => native.gemmInt8Quantized(a, 0, q, i * n * k, scales, c, 0, 1, n, k),
    });
  }
  const rates = gemvs.map(() => [] as number[]);
  const next = gemvs.map(() => 0);
  gemvs.forEach((g) => g.call(0));
  // Reads and GEMVs take turns, so a neighbour's load falls on both alike.
  for (let r = 0; r < STREAM_RUNS; r++) {
    modes.forEach((mode, i) => reads[i].push(native.streamRead(buffer, mode.threads, mode.prefetch)));
    gemvs.forEach((g, i) => {
      // One pass over every copy: each call finds its weight cold.
      const start = performance.now();
      for (let c = 0; c < g.copies; c++) g.call((next[i] + c) % g.copies);
      rates[i].push((g.bytes * g.copies) / ((performance.now() - start) * 1e6));
      next[i] = (next[i] + 1) % g.copies;
    });
  }
  const limit = median(reads[0]);
  console.log(`\nStreaming read of 512 MB (GB/s, median (best) of ${STREAM_RUNS}; isa ${native.isa()}):\n`);
  console.log('| threads | prefetch | read GB/s |');
  console.log('|---:|---|---:|');
  modes.forEach((mode, i) => console.log(`| ${mode.threads} | ${mode.prefetch ? '4 KB ahead' : 'none'} | ${medianBest(reads[i])} |`));
  console.log(`\nGEMVs on cold weights, one thread, against the one-thread read (${limit.toFixed(1)} GB/s):\n`);
  console.log('| GEMV | weights GB/s | of the read |');
  console.log('|---|---:|---:|');
  gemvs.forEach((g, i) => console.log(`| ${g.label} | ${medianBest(rates[i])} | ${((100 * median(rates[i])) / limit).toFixed(0)}% |`));
}
