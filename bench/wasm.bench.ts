/**
 * The WebAssembly SIMD kernel against tfjs-backend-wasm (XNNPACK), the
 * blocked TypeScript kernel and the reference loops, in GFLOP/s, on the
 * shapes of GPT-2 small and BERT base. Runs are interleaved round-robin after
 * a warm-up, so a noisy neighbour slows every contender alike; a cell is the
 * median (best in brackets).
 *
 * tfjs gets its best case: its tensors are created once outside the timing
 * (their data already in its WebAssembly memory; it also keeps the weight it
 * packed for XNNPACK between runs), and the weight as [k, n], because its
 * transposeB path measured 1–2 GFLOP/s here. A run is `matMul` and `dataSync`
 * (C copied out, as ours copies C out). tfjs-backend-wasm has no threads in
 * Node (its flag WASM_HAS_MULTITHREAD_SUPPORT is false there), so it runs on
 * one thread; ours is shown at 1 and 2.
 *
 * "copy" is the part of our one-thread time spent copying A and B into the
 * module's memory and C out (the same `Float32Array.set`s, timed alone).
 * The ceilings: the WebAssembly FMA loop (`fmaPeak`: 12 independent
 * f32x4 multiply-add chains on registers) and, when the native addon is
 * built, its AVX-512 one-core FMA peak.
 *
 * "Resident weights" compares, interleaved, `gemm` (the weight copied into
 * the module's memory on every call) with `gemmPacked` on a weight prepacked
 * once (kept in the module's memory: rows for decode, packed panels for
 * 128 rows) and tfjs-backend-wasm, which keeps its weights in its memory too.
 * Decode runs on one weight (it stays in L3 between runs) and on 12 weights
 * in turn (113 MB, as a model's layers: read from DRAM).
 */
import { createRequire } from 'node:module';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { blockedMatmul, createWasmKernel, referenceMatmul, type WasmMatmulKernel } from '../src/kernels/index.js';
import { loadNativeKernel } from '../src/kernels/native.js';
import { f32ToBf16 } from '../src/tensor/dtype.js';
import { prove } from './proof.js';
import { median, filled } from './stats.js';

interface Shape {
  label: string;
  m: number;
  n: number;
  k: number;
  // Runs of the slow contenders are capped for the big shapes.
  big: boolean;
}

const SHAPES: Shape[] = [
  { label: 'GPT-2 attention proj [128×768]·[768×768]ᵀ', m: 128, n: 768, k: 768, big: false },
  { label: 'GPT-2 MLP up [128×768]·[768×3072]ᵀ', m: 128, n: 3072, k: 768, big: false },
  { label: 'GPT-2 MLP down [128×3072]·[3072×768]ᵀ', m: 128, n: 768, k: 3072, big: false },
  { label: 'BERT batch 32×128 QKV [4096×768]·[768×768]ᵀ', m: 4096, n: 768, k: 768, big: true },
  { label: 'square [1024×1024]·[1024×1024]ᵀ', m: 1024, n: 1024, k: 1024, big: true },
  { label: 'decode [1×768]·[768×3072]ᵀ', m: 1, n: 3072, k: 768, big: false },
];

interface Contender {
  label: string;
  // One run on the shape's operands (made by `setUp`), untimed set-up excluded.
  setUp(shape: Shape, a: Float32Array, b: Float32Array, bKn: Float32Array): () => void;
  maxRuns(shape: Shape): number;
  budgetMs: number;
}

/** B [n, k] as [k, n]: the layout tfjs multiplies fastest. */
function transposed(b: Float32Array, n: number, k: number): Float32Array {
  const out = new Float32Array(n * k);
  for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) out[p * n + j] = b[j * k + p];
  return out;
}

interface Timing {
  median: number;
  best: number;
}

/** Median and best milliseconds per run for each contender, interleaved round-robin after one warm-up each. */
function measure(shape: Shape, contenders: Contender[]): (Timing | undefined)[] {
  const a = filled(shape.m * shape.k, 1);
  const b = filled(shape.n * shape.k, 2);
  const bKn = transposed(b, shape.n, shape.k);
  const runs = contenders.map((x) => (x.maxRuns(shape) > 0 ? x.setUp(shape, a, b, bKn) : undefined));
  const times: number[][] = contenders.map(() => []);
  const spent = contenders.map(() => 0);
  runs.forEach((runOnce, i) => {
    if (runOnce !== undefined && contenders[i].maxRuns(shape) > 1) runOnce();
  });
  for (let round = 0; round < Math.max(...contenders.map((x) => x.maxRuns(shape))); round++) {
    runs.forEach((runOnce, i) => {
      if (runOnce === undefined || times[i].length >= contenders[i].maxRuns(shape) || spent[i] >= contenders[i].budgetMs) return;
      const start = performance.now();
      runOnce();
      const ms = performance.now() - start;
      times[i].push(ms);
      spent[i] += ms;
    });
  }
  return times.map((t) => (t.length === 0 ? undefined : { median: median(t), best: Math.min(...t) }));
}

type Tf = typeof import('@tensorflow/tfjs-core');

/** tfjs-core on tfjs-backend-wasm, its .wasm files read from node_modules (nothing downloads). */
async function loadTfjsWasm(): Promise<Tf> {
  const tf = await import('@tensorflow/tfjs-core');
  const { setWasmPaths } = await import('@tensorflow/tfjs-backend-wasm');
  const root = dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  setWasmPaths(`${join(root, 'dist')}/`);
  await tf.setBackend('wasm');
  await tf.ready();
  return tf;
}

const fmt = (value: number | undefined): string => (value === undefined ? '—' : value.toFixed(1));

/**
 * Decode products (one row) with the weight as f32, bf16 and int8 (f32
 * activations, and int8 with the activations quantized too), copied in on
 * every call and resident (prepacked), interleaved: milliseconds and the
 * rate the stored weight bytes stream at.
 */
function decodeByWeightDtype(wasm: WasmMatmulKernel): void {
  console.log('\nDecode by weight dtype (one thread; median ms, weight bytes streamed):\n');
  console.log('| product | f32 | bf16 | int8 | int8, activations quantized | f32 resident | bf16 resident | int8 resident | bf16 / f32 speed | int8 / f32 speed | resident: bf16 / f32 | resident: int8 / f32 |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  wasm.setThreads(1);
  for (const [label, n, k] of [['GPT-2 MLP up [1×768]·[768×3072]ᵀ', 3072, 768], ['GPT-2 logits [1×768]·[768×50257]ᵀ', 50257, 768]] as const) {
    const a = filled(k, 1);
    const b = filled(n * k, 2);
    const bf16 = Uint16Array.from(b, (v) => f32ToBf16(v));
    const q = Int8Array.from(b, (v) => Math.round(v * 127));
    const scales = new Float32Array(n).fill(1 / 127);
    const c = new Float32Array(n);
    const packed = { f32: wasm.prepack(b, 0, n, k, true), bf16: wasm.prepackBf16(bf16, 0, n, k), int8: wasm.prepackInt8(q, 0, scales, n, k) };
    const runs: [number, () => void][] = [
      [4, () => wasm.gemm(a, 0, b, 0, c, 0, 1, n, k, true)],
      [2, () => wasm.gemmBf16(a, 0, bf16, 0, c, 0, 1, n, k)],
      [1, () => wasm.gemmInt8(a, 0, q, 0, scales, c, 0, 1, n, k)],
      [1, () => wasm.gemmInt8Quantized(a, 0, q, 0, scales, c, 0, 1, n, k)],
      [4, () => wasm.gemmPacked(a, 0, packed.f32, c, 0, 1)],
      [2, () => wasm.gemmBf16Packed(a, 0, packed.bf16, c, 0, 1)],
      [1, () => wasm.gemmInt8Packed(a, 0, packed.int8, c, 0, 1)],
    ];
    const times: number[][] = runs.map(() => []);
    runs.forEach(([, run]) => run());
    for (let round = 0; round < (n > 10000 ? 7 : 21); round++) {
      runs.forEach(([, run], i) => {
        const start = performance.now();
        run();
        times[i].push(performance.now() - start);
      });
    }
    const ms = times.map(median);
    const cells = ms.map((t, i) => `${t.toFixed(2)} (${((runs[i][0] * n * k) / (t * 1e6)).toFixed(1)} GB/s)`);
    const speed = (x: number, y: number): string => `${(ms[x] / ms[y]).toFixed(2)}×`;
    console.log(`| ${label} | ${cells.join(' | ')} | ${speed(0, 1)} | ${speed(0, 2)} | ${speed(4, 5)} | ${speed(4, 6)} |`);
  }
}

interface ResidentCase {
  label: string;
  m: number;
  n: number;
  k: number;
  /** Distinct weights multiplied in turn: 1 stays in cache, 12 of GPT-2's are more than L3 holds. */
  weights: number;
}

const RESIDENT_CASES: ResidentCase[] = [
  { label: 'decode [1×768]·[768×3072]ᵀ, one weight', m: 1, n: 3072, k: 768, weights: 1 },
  { label: 'decode [1×768]·[768×3072]ᵀ, 12 weights in turn', m: 1, n: 3072, k: 768, weights: 12 },
  { label: 'decode [1×3072]·[3072×768]ᵀ, 12 weights in turn', m: 1, n: 768, k: 3072, weights: 12 },
  { label: 'GPT-2 attention proj [128×768]·[768×768]ᵀ', m: 128, n: 768, k: 768, weights: 1 },
  { label: 'GPT-2 MLP up [128×768]·[768×3072]ᵀ', m: 128, n: 3072, k: 768, weights: 1 },
  { label: 'GPT-2 MLP down [128×3072]·[3072×768]ᵀ', m: 128, n: 768, k: 3072, weights: 1 },
];

/**
 * Copying against resident weights against tfjs-backend-wasm, one thread,
 * interleaved round-robin: median ms (best), GB/s of f32 weight read for
 * decode, GFLOP/s for 128 rows.
 */
function residentWeights(wasm: WasmMatmulKernel, tf: Tf): void {
  console.log('\nResident weights (median ms (best), and the weight\'s f32 bytes a second for decode or GFLOP/s for 128 rows):\n');
  const header = ['product', 'wasm copying 1T', 'wasm resident 1T', 'tfjs-wasm 1T', 'wasm resident 2T', 'resident / copying 1T', 'resident / tfjs 1T', 'resident 2T / tfjs'];
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
  for (const { label, m, n, k, weights } of RESIDENT_CASES) {
    const a = filled(m * k, 1);
    const bs = Array.from({ length: weights }, (_, i) => filled(n * k, 2 + i));
    const packs = bs.map((b) => wasm.prepack(b, 0, n, k, true));
    const ta = tf.tensor2d(a, [m, k]);
    const tbs = bs.map((b) => tf.tensor2d(transposed(b, n, k), [k, n]));
    const c = new Float32Array(m * n);
    const runs: ((i: number) => void)[] = [
      (i) => {
        wasm.setThreads(1);
        wasm.gemm(a, 0, bs[i], 0, c, 0, m, n, k, true);
      },
      (i) => {
        wasm.setThreads(1);
        wasm.gemmPacked(a, 0, packs[i], c, 0, m);
      },
      (i) => {
        const out = tf.matMul(ta, tbs[i]);
        out.dataSync();
        out.dispose();
      },
      (i) => {
        wasm.setThreads(2);
        wasm.gemmPacked(a, 0, packs[i], c, 0, m);
      },
    ];
    // A warm-up pass over every weight makes the resident forms and tfjs' packed weights.
    for (let i = 0; i < weights; i++) runs.forEach((run) => run(i));
    const times: number[][] = runs.map(() => []);
    const rounds = m === 1 ? 96 : 13;
    for (let round = 0; round < rounds; round++) {
      runs.forEach((run, r) => {
        const start = performance.now();
        run(round % weights);
        times[r].push(performance.now() - start);
      });
    }
    ta.dispose();
    for (const tb of tbs) tb.dispose();
    const ms = times.map(median);
    const rate = (t: number): string => (m === 1 ? `${((n * k * 4) / (t * 1e6)).toFixed(1)} GB/s` : `${((2 * m * n * k) / (t * 1e6)).toFixed(1)} GFLOP/s`);
    const cells = ms.map((t, r) => `${t.toFixed(3)} (${Math.min(...times[r]).toFixed(3)}), ${rate(t)}`);
    console.log(`| ${label} | ${cells.join(' | ')} | ${(ms[0] / ms[1]).toFixed(2)}× | ${(ms[2] / ms[1]).toFixed(2)}× | ${(ms[2] / ms[3]).toFixed(2)}× |`);
    prove('wasm', `${label}, 1 thread: WebAssembly resident / tfjs-backend-wasm`, ms[2] / ms[1], '×', m > 1 ? 1.2 : undefined);
  }
  console.log(`resident: ${(wasm.residentBytes() / 2 ** 20).toFixed(0)} MiB, ${wasm.residentEvictions()} evictions`);
}

export async function run(): Promise<void> {
  console.log(`CPU: ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} logical cores; load average ${loadavg()[0].toFixed(2)}`);
  const wasm = await createWasmKernel({ maxThreads: 2 });
  // The variant for engines without relaxed SIMD; one thread, so no second pool.
  const plain = await createWasmKernel({ relaxed: false, maxThreads: 1 });
  const tf = await loadTfjsWasm();
  const native = loadNativeKernel().kernel;
  // Peaks are maxima: the best of several short runs, measured again between shapes.
  const peaks = { wasm: 0, native: 0 };
  const measurePeaks = (): void => {
    for (let r = 0; r < 5; r++) {
      peaks.wasm = Math.max(peaks.wasm, wasm.fmaPeak(0.05));
      if (native) peaks.native = Math.max(peaks.native, native.fmaPeak(0.05));
    }
  };
  measurePeaks();

  const wasmContender = (label: string, kernel: WasmMatmulKernel, threads: number): Contender => ({
    label,
    setUp: ({ m, n, k }, a, b) => {
      const c = new Float32Array(m * n);
      return () => {
        kernel.setThreads(threads);
        kernel.gemm(a, 0, b, 0, c, 0, m, n, k, true);
      };
    },
    maxRuns: (s) => (s.big ? 9 : 21),
    budgetMs: 1500,
  });
  const plainContender = (label: string, kernel: typeof blockedMatmul, runs: (s: Shape) => number): Contender => ({
    label,
    setUp: ({ m, n, k }, a, b) => {
      const c = new Float32Array(m * n);
      return () => kernel.gemm(a, 0, b, 0, c, 0, m, n, k, true);
    },
    maxRuns: runs,
    budgetMs: 2500,
  });
  const contenders: Contender[] = [
    wasmContender('wasm 1T', wasm, 1),
    wasmContender('wasm mul+add 1T', plain, 1),
    {
      label: 'tfjs-wasm 1T',
      setUp: ({ m, n, k }, a, _b, bKn) => {
        const ta = tf.tensor2d(a, [m, k]);
        const tb = tf.tensor2d(bKn, [k, n]);
        return () => {
          const c = tf.matMul(ta, tb);
          c.dataSync();
          c.dispose();
        };
      },
      maxRuns: (s) => (s.big ? 9 : 21),
      budgetMs: 1500,
    },
    wasmContender('wasm 2T', wasm, 2),
    {
      label: 'copy',
      setUp: ({ m, n, k }, a, b) => {
        const heap = new Float32Array(m * k + n * k + m * n);
        const c = new Float32Array(m * n);
        return () => {
          heap.set(a, 0);
          heap.set(b, m * k);
          c.set(heap.subarray(m * k + n * k));
        };
      },
      maxRuns: (s) => (s.big ? 9 : 21),
      budgetMs: 500,
    },
    plainContender('blocked TS', blockedMatmul, (s) => (s.big ? 1 : 5)),
    // The reference takes seconds on the big shapes.
    plainContender('reference', referenceMatmul, (s) => (s.big ? 0 : s.m === 1 ? 3 : 1)),
  ];

  const results = SHAPES.map((shape) => {
    const ms = measure(shape, contenders);
    measurePeaks();
    return { shape, ms };
  });

  console.log(`WebAssembly FMA ceiling (${wasm.name}, one thread, register-only loop): ${peaks.wasm.toFixed(1)} GFLOP/s; `
    + `with mul + add (${plain.name}): ${plain.fmaPeak(0.2).toFixed(1)} GFLOP/s`);
  if (native) console.log(`native one-core FMA peak (${native.name}): ${peaks.native.toFixed(1)} GFLOP/s`);
  console.log('tfjs-backend-wasm: one thread (no threads in Node), B as [k, n]\n');
  const header = [
    'shape', 'wasm 1T GFLOP/s (best)', 'wasm mul+add 1T (best)', 'tfjs-wasm 1T (best)', 'wasm 2T (best)', 'blocked TS', 'reference',
    'wasm 1T / tfjs', 'wasm 2T / tfjs', 'wasm 1T % wasm ceiling', ...(native ? ['wasm 1T % native peak'] : []),
    'copy share (1T)', 'wasm 1T / blocked', 'wasm 1T / ref',
  ];
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
  for (const { shape, ms } of results) {
    const flops = 2 * shape.m * shape.n * shape.k;
    const rate = (label: string, which: keyof Timing = 'median'): number | undefined => {
      const t = ms[contenders.findIndex((x) => x.label === label)];
      return t === undefined ? undefined : flops / (t[which] * 1e6);
    };
    const withBest = (label: string): string => `${fmt(rate(label))} (${fmt(rate(label, 'best'))})`;
    const ratio = (x: number | undefined, y: number | undefined): string =>
      x === undefined || y === undefined ? '—' : `${(x / y).toFixed(2)}×`;
    const percent = (x: number | undefined, of: number): string => (x === undefined ? '—' : `${((100 * x) / of).toFixed(0)}%`);
    const wasm1 = rate('wasm 1T');
    const copy = ms[contenders.findIndex((x) => x.label === 'copy')];
    const wasm1Ms = ms[0];
    const cells = [
      shape.label, withBest('wasm 1T'), withBest('wasm mul+add 1T'), withBest('tfjs-wasm 1T'), withBest('wasm 2T'), fmt(rate('blocked TS')), fmt(rate('reference')),
      ratio(wasm1, rate('tfjs-wasm 1T')), ratio(rate('wasm 2T'), rate('tfjs-wasm 1T')), percent(wasm1, peaks.wasm),
      ...(native ? [percent(wasm1, peaks.native)] : []),
      copy === undefined || wasm1Ms === undefined ? '—' : `${((100 * copy.median) / wasm1Ms.median).toFixed(0)}%`,
      ratio(wasm1, rate('blocked TS')), ratio(wasm1, rate('reference')),
    ];
    console.log(`| ${cells.join(' | ')} |`);
    const tfjs = rate('tfjs-wasm 1T');
    if (wasm1 !== undefined && tfjs !== undefined) {
      // The bar is for GEMM; decode (one row) is recorded without one.
      prove('wasm', `${shape.label}, 1 thread: WebAssembly / tfjs-backend-wasm`, wasm1 / tfjs, '×', shape.m > 1 ? 1.2 : undefined);
    }
  }
  console.log(`\nworker parts: ${wasm.workerParts()} of the two-thread products ran on the worker`);
  decodeByWeightDtype(wasm);
  console.log(`load average: ${loadavg()[0].toFixed(2)}`);
  residentWeights(wasm, tf);
  console.log(`load average after: ${loadavg()[0].toFixed(2)}`);
}
