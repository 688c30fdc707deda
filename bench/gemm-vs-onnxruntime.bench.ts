/**
 * glassformer's native GEMM against onnxruntime-node (a devDependency used
 * only here) on the transformer's shapes, at 1 thread and then 2, with the
 * fraction of the FMA peak measured in the same run.
 *
 * onnxruntime runs a one-node MatMul graph built by onnx-matmul.ts, with B as
 * an initializer so it pre-packs the weight at session creation (its best
 * case); its per-run overhead (a few µs) is included, as a caller pays it.
 * Native runs twice: `gemm`, which packs (and transposes) B on every call, and
 * `gemmPacked` on a B packed once by `prepack`, onnxruntime's arrangement
 * (decode's few rows stream B unpacked, so that row has no prepacked figure).
 * Runs alternate native / prepacked / onnxruntime after a warm-up, so a noisy
 * neighbour on this shared machine slows all alike, and go round the shapes in
 * passes, so each shape's samples spread over the whole section; a cell is
 * the median (best in brackets).
 * onnxruntime's pool is told not to spin, so the two pools do not starve each
 * other between runs.
 */
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';
import { loadNativeKernel, type NativeMatmulKernel } from '../src/kernels/native.js';
import { matmulModel } from './onnx-matmul.js';
import { prove } from './proof.js';
import { median, filled } from './stats.js';

interface Shape {
  label: string;
  m: number;
  n: number;
  k: number;
}

// Weights are nn.Linear layout [n, k] for glassformer (transB), [k, n] for the ONNX MatMul.
const SHAPES: Shape[] = [
  { label: 'GPT-2 attention proj [128×768]·[768×768]ᵀ', m: 128, n: 768, k: 768 },
  { label: 'GPT-2 MLP up [128×768]·[768×3072]ᵀ', m: 128, n: 3072, k: 768 },
  { label: 'GPT-2 MLP down [128×3072]·[3072×768]ᵀ', m: 128, n: 768, k: 3072 },
  { label: 'BERT batch 32×128 QKV [4096×768]·[768×768]ᵀ', m: 4096, n: 768, k: 768 },
  { label: 'square [1024×1024]·[1024×1024]ᵀ', m: 1024, n: 1024, k: 1024 },
  { label: 'decode [1×768]·[768×3072]ᵀ', m: 1, n: 3072, k: 768 },
];

const PASSES = 25;
// Per thread count, at most (a pass on one thread takes about 0.5 s).
const BUDGET_MS = 12_000;

/** [n, k] → [k, n]. */
function transpose(w: Float32Array, n: number, k: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) out[p * n + j] = w[j * k + p];
  return out;
}

interface Pair {
  native: number[];
  packed: number[];
  ort: number[];
}

// Decode's rows: below this, gemm streams B unpacked and prepacking does not apply.
const PACKED_MIN_ROWS = 5;

/** One shape at one thread count, ready to time: each run* call times one product. */
interface Contender {
  shape: Shape;
  runNative(): number;
  runPacked?: () => number;
  runOrt(): Promise<number>;
  release(): Promise<void>;
}

async function prepare(native: NativeMatmulKernel, shape: Shape, threads: number): Promise<Contender> {
  const { m, n, k } = shape;
  const a = filled(m * k, 1);
  const w = filled(n * k, 2);
  const c = new Float32Array(m * n);
  const session = await InferenceSession.create(matmulModel(m, n, k, transpose(w, n, k)), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  const feeds = { A: new OrtTensor('float32', a, [m, k]) };
  const runNative = (): number => {
    const start = performance.now();
    native.gemm(a, 0, w, 0, c, 0, m, n, k, true);
    return performance.now() - start;
  };
  const packedB = native.prepack(w, 0, n, k, true);
  const runPacked = (): number => {
    const start = performance.now();
    native.gemmPacked(a, 0, packedB, c, 0, m);
    return performance.now() - start;
  };
  const runOrt = async (): Promise<number> => {
    const start = performance.now();
    await session.run(feeds);
    return performance.now() - start;
  };
  try {
    runNative();
    const check = (await session.run(feeds)).C.data as Float32Array;
    runNative();
    // Both must compute the same product, or the race means nothing.
    let worst = 0;
    for (let i = 0; i < c.length; i++) worst = Math.max(worst, Math.abs(c[i] - check[i]) / (1 + Math.abs(check[i])));
    if (worst > 1e-3) throw new Error(`${shape.label}: native and onnxruntime differ by ${worst.toExponential(2)}`);
    if (m >= PACKED_MIN_ROWS) {
      const expected = Float32Array.from(c);
      runPacked();
      if (!c.every((v, i) => v === expected[i])) throw new Error(`${shape.label}: gemmPacked differs from gemm`);
    }
  } catch (error) {
    await session.release();
    throw error;
  }
  return { shape, runNative, runPacked: m >= PACKED_MIN_ROWS ? runPacked : undefined, runOrt, release: () => session.release() };
}

/**
 * Times every shape at one thread count in round-robin passes (each pass: for
 * each shape, native, prepacked, onnxruntime), so each shape's samples spread
 * over the whole section: a neighbour's burst of a few tens of milliseconds
 * costs every shape a sample or two, rather than all of one small shape's
 * runs (fifteen runs of a sub-millisecond product took ~30 ms).
 */
async function measureAll(native: NativeMatmulKernel, threads: number): Promise<Pair[]> {
  native.setThreads(threads);
  const contenders: Contender[] = [];
  try {
    for (const shape of SHAPES) contenders.push(await prepare(native, shape, threads));
    const pairs: Pair[] = contenders.map(() => ({ native: [], packed: [], ort: [] }));
    const started = performance.now();
    for (let pass = 0; pass < PASSES && performance.now() - started < BUDGET_MS; pass++) {
      for (const [i, contender] of contenders.entries()) {
        // Once untimed, to bring this shape's operands back into the caches
        // the other shapes evicted: the figures are warm-cache rates, as
        // GEMM benchmarks report (decode's cold-weight rate is the decoder
        // section's business).
        for (const timed of [false, true]) {
          const tn = contender.runNative();
          const tp = contender.runPacked?.();
          const to = await contender.runOrt();
          if (!timed) continue;
          pairs[i].native.push(tn);
          if (tp !== undefined) pairs[i].packed.push(tp);
          pairs[i].ort.push(to);
        }
      }
    }
    return pairs;
  } finally {
    for (const contender of contenders) await contender.release();
  }
}

export async function run(): Promise<void> {
  const loaded = loadNativeKernel();
  if (!loaded.kernel) {
    console.log(`native kernel unavailable (${loaded.reason}): nothing to compare`);
    return;
  }
  const native = loaded.kernel;
  const threadsBefore = native.threads();
  console.log(`CPU: ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} logical cores; load average ${loadavg()[0].toFixed(2)}`);
  const peakOnce = (): number => Math.max(...[0, 1, 2].map(() => native.fmaPeak(0.05)));
  let peak = peakOnce();
  const lines = [
    '| shape | threads | native GFLOP/s (best) | native prepacked (best) | onnxruntime (best) | native / ort | prepacked / ort | native % of peak | prepacked % of peak | ort % of peak |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  // One-thread figures first for every shape, then two: the 2-thread ones are the noisier.
  const rows: { shape: Shape; threads: number; pair: Pair }[] = [];
  try {
    for (const threads of [1, 2]) {
      const pairs = await measureAll(native, threads);
      pairs.forEach((pair, i) => rows.push({ shape: SHAPES[i], threads, pair }));
      peak = Math.max(peak, peakOnce());
    }
  } finally {
    native.setThreads(threadsBefore);
  }
  for (const { shape, threads, pair } of rows) {
    const flops = 2 * shape.m * shape.n * shape.k;
    const rate = (ms: number): number => flops / (ms * 1e6);
    const nat = rate(median(pair.native));
    const ort = rate(median(pair.ort));
    const natBest = rate(Math.min(...pair.native));
    const ortBest = rate(Math.min(...pair.ort));
    const ceiling = peak * threads;
    const percent = (x: number): string => `${((100 * x) / ceiling).toFixed(0)}%`;
    const packed = pair.packed.length > 0 ? rate(median(pair.packed)) : undefined;
    const packedCells =
      packed === undefined
        ? ['—', '—', '—']
        : [`${packed.toFixed(1)} (${rate(Math.min(...pair.packed)).toFixed(1)})`, `${(packed / ort).toFixed(2)}×`, percent(packed)];
    lines.push(
      `| ${shape.label} | ${threads} | ${nat.toFixed(1)} (${natBest.toFixed(1)}) | ${packedCells[0]} | ${ort.toFixed(1)} (${ortBest.toFixed(1)}) | ` +
        `${(nat / ort).toFixed(2)}× | ${packedCells[1]} | ${percent(nat)} | ${packedCells[2]} | ${percent(ort)} |`,
    );
    // The bars: ≥ 1.0× onnxruntime (whose weights are prepacked initializers, so against native's prepacked product where
    // there is one) and ≥ 80% of threads × the FMA peak, for the GEMM shapes; decode is bandwidth-bound and gets no bar.
    const bars = shape.m > 4;
    const best = packed ?? nat;
    prove('gemm-vs-onnxruntime', `${shape.label}, ${threads} thread${threads > 1 ? 's' : ''}: native${packed === undefined ? '' : ' prepacked'} / onnxruntime`, best / ort, '×', bars ? 1 : undefined);
    prove('gemm-vs-onnxruntime', `${shape.label}, ${threads} thread${threads > 1 ? 's' : ''}: native${packed === undefined ? '' : ' prepacked'} share of ${threads} × FMA peak`, best / ceiling, '%', bars ? 0.8 : undefined);
  }
  console.log(`native ISA: ${native.isa()}; one-core FMA peak (register-only loop, best of the run): ${peak.toFixed(1)} GFLOP/s\n`);
  console.log(lines.join('\n'));
  console.log(`\n"% of peak" is against threads × the one-core peak. Load average after: ${loadavg()[0].toFixed(2)}`);
}
