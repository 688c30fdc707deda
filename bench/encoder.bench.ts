/**
 * Embedding throughput of a BERT-base-shaped encoder (12 layers, d 768, 12
 * heads, FFN 3072, random weights) at batch 32 × 128 tokens: the encoder pass
 * plus mean pooling and L2 normalisation, from token ids (tokenizing is
 * benchmarked elsewhere).
 *
 * - The fast path (native products, fused attention, native elementwise ops)
 *   at 1 and 2 threads, interleaved: sentences/s, where the time goes
 *   (products / attention / elementwise ops / the rest), the products'
 *   GFLOP/s, and the whole pass's GFLOP/s as a fraction of two ceilings
 *   measured in the same run: the native GEMM on BERT's [4096×768]·[768×768]ᵀ
 *   projection, and the FMA peak × threads.
 * - Slower paths on one layer and fewer sentences, scaled to 12 layers × 32
 *   sentences (labelled so): native products with the TypeScript ops, the
 *   blocked TypeScript kernel, and the reference kernel, both with the
 *   TypeScript ops.
 * - Each fused op against its TypeScript op on the BERT batch's tensors.
 * - A MiniLM-L6-shaped encoder (6 layers, d 384, FFN 1536) on the fast path.
 */
import { readFileSync } from 'node:fs';
import { fusedAttentionKernel, setFusedAttentionKernel, type FusedAttentionKernel } from '../src/kernels/attention.js';
import { elementwiseKernel, permuteLayout, setElementwiseKernel, type ElementwiseKernel } from '../src/kernels/elementwise.js';
import { blockedMatmul, kernelInfo, matmulKernel, referenceMatmul, setMatmulKernel, useFastestKernel, type MatmulKernel } from '../src/kernels/index.js';
import { loadNativeKernel, type NativeMatmulKernel } from '../src/kernels/native.js';
import { parseModelConfig } from '../src/io/config.js';
import { loadBert, type EncoderModel } from '../src/models/bert.js';
import { activationInto, add, addInto, gelu, layerNorm, layerNormInto, scale, softmax } from '../src/ops/index.js';
import { normalizeL2, pool } from '../src/tasks/pooling.js';
import { Tensor } from '../src/tensor/tensor.js';
import { randomTensor } from './random.js';
import { prove } from './proof.js';

interface Shape {
  name: string;
  layers: number;
  d: number;
  heads: number;
  ffn: number;
}

const BERT: Shape = { name: 'BERT-base shape', layers: 12, d: 768, heads: 12, ffn: 3072 };
const MINILM: Shape = { name: 'MiniLM-L6 shape', layers: 6, d: 384, heads: 12, ffn: 1536 };
const VOCAB = 30522;
const BATCH = 32;
const SEQ = 128;

/** A BertModel with random weights under the Hugging Face names of an un-prefixed (sentence-transformers) checkpoint. */
function randomBert(s: Shape): EncoderModel {
  const weights = new Map<string, Tensor>();
  let seed = 1;
  const put = (name: string, shape: number[], amplitude = 1 / Math.sqrt(shape[shape.length - 1])) => weights.set(name, randomTensor(shape, amplitude, seed++));
  const linear = (name: string, out: number, inp: number) => {
    put(`${name}.weight`, [out, inp]);
    put(`${name}.bias`, [out], 0.02);
  };
  const norm = (name: string) => {
    weights.set(`${name}.weight`, Tensor.full([s.d], 1));
    weights.set(`${name}.bias`, Tensor.zeros([s.d]));
  };
  put('embeddings.word_embeddings.weight', [VOCAB, s.d], 0.05);
  put('embeddings.position_embeddings.weight', [512, s.d], 0.05);
  put('embeddings.token_type_embeddings.weight', [2, s.d], 0.05);
  norm('embeddings.LayerNorm');
  for (let i = 0; i < s.layers; i++) {
    const layer = `encoder.layer.${i}`;
    for (const p of ['query', 'key', 'value']) linear(`${layer}.attention.self.${p}`, s.d, s.d);
    linear(`${layer}.attention.output.dense`, s.d, s.d);
    norm(`${layer}.attention.output.LayerNorm`);
    linear(`${layer}.intermediate.dense`, s.ffn, s.d);
    linear(`${layer}.output.dense`, s.d, s.ffn);
    norm(`${layer}.output.LayerNorm`);
  }
  const config = parseModelConfig(
    {
      model_type: 'bert',
      architectures: ['BertModel'],
      vocab_size: VOCAB,
      hidden_size: s.d,
      num_hidden_layers: s.layers,
      num_attention_heads: s.heads,
      intermediate_size: s.ffn,
      max_position_embeddings: 512,
    },
    `${s.name} (bench)`,
  );
  return loadBert({ config, weights, weightsName: `random ${s.name}` });
}

/** FLOPs of one sentence's linear layers (the four attention projections and the FFN). */
function linearFlops(s: Shape, seq: number): number {
  return s.layers * 2 * seq * (4 * s.d * s.d + 2 * s.d * s.ffn);
}

/** FLOPs of one sentence's attention products, q·kᵀ and pattern·v. */
function attentionFlops(s: Shape, seq: number): number {
  return s.layers * 4 * seq * seq * s.d;
}

/** Wall time spent inside each kernel seam during a measurement, ms. */
interface Split {
  products: number;
  attention: number;
  elementwise: number;
}

/** A copy of `target` (its own and inherited members) whose every function call is timed into split[part]. */
function timed<T extends object>(target: T, split: Split, part: keyof Split): T {
  const wrapper: Record<string, unknown> = {};
  for (let o: object | null = target; o && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    for (const key of Object.getOwnPropertyNames(o)) {
      if (key === 'constructor' || key in wrapper) continue;
      const value = Reflect.get(target, key) as unknown;
      wrapper[key] =
        typeof value !== 'function'
          ? value
          : (...args: unknown[]) => {
              const start = performance.now();
              try {
                return (value as (...a: unknown[]) => unknown).apply(target, args);
              } finally {
                split[part] += performance.now() - start;
              }
            };
    }
  }
  return wrapper as T;
}

/** Runs `fn` with the three kernel seams timed; returns the wall time and the split, ms. */
function withSplit(fn: () => void): { ms: number; split: Split } {
  const split: Split = { products: 0, attention: 0, elementwise: 0 };
  const matmul = setMatmulKernel(timed(matmulKernel(), split, 'products'));
  const attention = fusedAttentionKernel();
  const elementwise = elementwiseKernel();
  if (attention) setFusedAttentionKernel(timed<FusedAttentionKernel>(attention, split, 'attention'));
  if (elementwise) setElementwiseKernel(timed<ElementwiseKernel>(elementwise, split, 'elementwise'));
  const start = performance.now();
  try {
    fn();
  } finally {
    setMatmulKernel(matmul);
    if (attention) setFusedAttentionKernel(attention);
    if (elementwise) setElementwiseKernel(elementwise);
  }
  return { ms: performance.now() - start, split };
}

/** One batch of `batch` sentences of `seq` tokens: encode, mean-pool, normalise. */
function embedBatch(model: EncoderModel, batch: number, seq: number): void {
  const ids = Tensor.i32(
    Array.from({ length: batch * seq }, (_, i) => 1000 + ((i * 7919) % 20000)),
    [batch, seq],
  );
  const mask = Tensor.i32(new Array<number>(batch * seq).fill(1), [batch, seq]);
  const hidden = model.forward({ inputIds: ids, attentionMask: mask }).lastHiddenState;
  pool(hidden, mask, ['mean']).map(normalizeL2);
}

/** `fn` with the matmul kernel and the fused kernels of a path swapped in. */
function onPath<T>(path: { matmul?: MatmulKernel; typescriptOps: boolean }, fn: () => T): T {
  const matmul = path.matmul ? setMatmulKernel(path.matmul) : undefined;
  const elementwise = path.typescriptOps ? setElementwiseKernel(undefined) : undefined;
  const attention = path.typescriptOps ? setFusedAttentionKernel(undefined) : undefined;
  try {
    return fn();
  } finally {
    if (matmul) setMatmulKernel(matmul);
    if (path.typescriptOps) {
      setElementwiseKernel(elementwise);
      setFusedAttentionKernel(attention);
    }
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fixed = (x: number, digits = 1): string => x.toFixed(digits);
const percent = (x: number): string => `${(100 * x).toFixed(0)}%`;

/** GFLOP/s of the native GEMM on BERT's batch projection [4096×768]·[768×768]ᵀ, best of `reps`. */
function gemmRate(native: NativeMatmulKernel, reps: number): number {
  const a = randomTensor([BATCH * SEQ, 768], 1, 7).f32();
  const b = randomTensor([768, 768], 1, 8).f32();
  const c = new Float32Array(BATCH * SEQ * 768);
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const start = performance.now();
    native.gemm(a, 0, b, 0, c, 0, BATCH * SEQ, 768, 768, true);
    best = Math.min(best, performance.now() - start);
  }
  return (2 * BATCH * SEQ * 768 * 768) / (best / 1000) / 1e9;
}

function loadAverage(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return 'unknown';
  }
}

/** The fast path at 1 and 2 threads, interleaved, with the time split and the fractions of the two ceilings. */
function fastPath(native: NativeMatmulKernel, model: EncoderModel, peak: number): void {
  const threadCounts = [1, 2];
  const ceilings = new Map(threadCounts.map((t) => [t, 0]));
  const runs = new Map<number, { ms: number; split: Split }[]>(threadCounts.map((t) => [t, []]));
  const before = native.threads();
  try {
    for (let rep = 0; rep < 2; rep++) {
      for (const threads of threadCounts) {
        native.setThreads(threads);
        ceilings.set(threads, Math.max(ceilings.get(threads)!, gemmRate(native, 3)));
        runs.get(threads)!.push(withSplit(() => embedBatch(model, BATCH, SEQ)));
      }
    }
  } finally {
    native.setThreads(before);
  }
  const fused = fusedAttentionKernel() !== undefined;
  const productFlops = BATCH * (linearFlops(BERT, SEQ) + (fused ? 0 : attentionFlops(BERT, SEQ)));
  const totalFlops = BATCH * (linearFlops(BERT, SEQ) + attentionFlops(BERT, SEQ));
  console.log(`| threads | sentences/s (best) | products GFLOP/s | whole pass GFLOP/s | of GEMM ceiling | of FMA peak × threads | products | attention | elementwise ops | rest |`);
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const threads of threadCounts) {
    const all = runs.get(threads)!;
    const ms = median(all.map((r) => r.ms));
    const best = Math.min(...all.map((r) => r.ms));
    const part = (key: keyof Split) => median(all.map((r) => r.split[key]));
    const rest = ms - part('products') - part('attention') - part('elementwise');
    const whole = totalFlops / (ms / 1000) / 1e9;
    const share = (x: number) => `${fixed(x / 1000, 2)} s (${percent(x / ms)})`;
    console.log(
      `| ${threads} | ${fixed((BATCH * 1000) / ms, 2)} (${fixed((BATCH * 1000) / best, 2)}) | ${fixed(productFlops / (part('products') / 1000) / 1e9)} | ${fixed(whole)} | ${percent(whole / ceilings.get(threads)!)} of ${fixed(ceilings.get(threads)!)} | ${percent(whole / (peak * threads))} of ${fixed(peak * threads)} | ${share(part('products'))} | ${share(part('attention'))} | ${share(part('elementwise'))} | ${share(rest)} |`,
    );
    prove('encoder', `BERT-base batch ${BATCH}×${SEQ}, ${threads} thread${threads > 1 ? 's' : ''}: ${fixed((BATCH * 1000) / ms, 2)} sentences/s, whole pass / GEMM ceiling`, whole / ceilings.get(threads)!, '%');
  }
  console.log(`\nmedian of ${runs.get(1)!.length} runs a thread count, interleaved; "of GEMM ceiling" divides the whole pass's rate by the native GEMM's best on [4096×768]·[768×768]ᵀ at that thread count; "rest" is everything outside the three seams (embedding, head split/merge copies, bias adds, allocation, pooling).`);
}

/** The slower paths on `layers`-layer slices, scaled to BERT-base's 12 layers × 32 sentences. */
function slices(native: NativeMatmulKernel | undefined): void {
  const oneLayer = randomBert({ ...BERT, layers: 1 });
  const paths: { name: string; batch: number; path: { matmul?: MatmulKernel; typescriptOps: boolean } }[] = [];
  if (native) {
    paths.push({ name: `native products, fused ops (${native.threads()} threads)`, batch: BATCH, path: { typescriptOps: false } });
    paths.push({ name: `native products, TypeScript ops (${native.threads()} threads)`, batch: BATCH, path: { typescriptOps: true } });
  } else {
    paths.push({ name: `${kernelInfo().name} kernel, TypeScript ops`, batch: 4, path: { typescriptOps: true } });
  }
  paths.push({ name: 'blocked TypeScript kernel, TypeScript ops', batch: 4, path: { matmul: blockedMatmul, typescriptOps: true } });
  paths.push({ name: 'reference kernel, TypeScript ops', batch: 1, path: { matmul: referenceMatmul, typescriptOps: true } });
  console.log(`\n| path (1 layer × batch sentences × ${SEQ} tokens, time scaled × ${BERT.layers} layers × ${BATCH}/batch) | batch | sentences/s, scaled | whole pass GFLOP/s | fast path / this |`);
  console.log('|---|---:|---:|---:|---:|');
  for (const { path } of paths) onPath(path, () => embedBatch(oneLayer, 1, 8)); // warm-up of each path's JIT
  // The batch-32 paths are run round-robin, so the machine's other load slows them alike.
  const full = paths.filter((p) => p.batch === BATCH);
  const times = interleave(full.map(({ path }) => () => onPath(path, () => embedBatch(oneLayer, BATCH, SEQ))), 3);
  for (const { path, batch } of paths.filter((p) => p.batch !== BATCH)) {
    const start = performance.now();
    onPath(path, () => embedBatch(oneLayer, batch, SEQ));
    times.push(performance.now() - start);
  }
  const rates = paths.map(({ batch }, i) => (batch * 1000) / (times[i] * BERT.layers));
  paths.forEach(({ name, batch }, i) => {
    const gflops = (rates[i] * (linearFlops(BERT, SEQ) + attentionFlops(BERT, SEQ))) / 1e9;
    console.log(`| ${name} | ${batch} | ${fixed(rates[i], rates[i] < 1 ? 3 : 2)} | ${fixed(gflops, 2)} | ${fixed(rates[0] / rates[i])}× |`);
    if (i > 0 && name.startsWith('reference')) prove('encoder', 'BERT-base batch 32×128: fast path / reference path sentences/s (one layer, scaled)', rates[0] / rates[i], '×');
  });
  if (full.length > 0) console.log(`
the batch-${BATCH} rows: median of 3 interleaved runs; the others: one run.`);
}

/** Median ms of each variant of an op, run round-robin `reps` times. */
function interleave(variants: (() => unknown)[], reps: number): number[] {
  const times = variants.map(() => [] as number[]);
  for (let r = 0; r < reps; r++) {
    variants.forEach((fn, i) => {
      const start = performance.now();
      fn();
      times[i].push(performance.now() - start);
    });
  }
  return times.map(median);
}

/** Each fused op beside its TypeScript op on the tensors of one BERT-base layer at batch 32 × 128. */
function opTable(native: NativeMatmulKernel): void {
  const rows = BATCH * SEQ;
  const hidden = randomTensor([BATCH, SEQ, 768], 2, 11);
  const residual = randomTensor([BATCH, SEQ, 768], 2, 12);
  const up = randomTensor([BATCH, SEQ, 3072], 3, 13);
  const gamma = randomTensor([768], 1, 14);
  const beta = randomTensor([768], 1, 15);
  const bias = randomTensor([3072], 0.1, 16);
  const scores = randomTensor([BATCH, 12, SEQ, SEQ], 4, 17);
  const mask = randomTensor([BATCH, 1, 1, SEQ], 1, 18);
  const heads = randomTensor([BATCH, SEQ, 12, 64], 1, 19);
  const scratch = (t: Tensor) => new Tensor('f32', t.shape, t.f32().slice());
  const upCopy = scratch(up);
  const hiddenCopy = scratch(hidden);
  const kernel = elementwiseKernel()!;
  const split = new Float32Array(heads.size);
  const layout = permuteLayout(heads.shape, [0, 2, 1, 3])!;
  const typescript = <T>(fn: () => T) => onPath({ typescriptOps: true }, fn);
  const ops: { name: string; perLayer: number; ts: () => unknown; fresh: () => unknown; into?: () => unknown }[] = [
    { name: `layerNorm [${rows}×768]`, perLayer: 2, ts: () => typescript(() => layerNorm(hidden, gamma, beta, 1e-12)), fresh: () => layerNorm(hidden, gamma, beta, 1e-12), into: () => layerNormInto(hiddenCopy, gamma, beta, 1e-12, hiddenCopy) },
    { name: `GELU (erf) [${rows}×3072]`, perLayer: 1, ts: () => typescript(() => gelu(up)), fresh: () => gelu(up), into: () => activationInto('gelu')(upCopy, upCopy) },
    { name: `residual add [${rows}×768]`, perLayer: 2, ts: () => typescript(() => add(hidden, residual)), fresh: () => add(hidden, residual), into: () => addInto(hiddenCopy, residual, hiddenCopy) },
    { name: `bias add [${rows}×3072] + [3072]`, perLayer: 1, ts: () => typescript(() => add(up, bias)), fresh: () => add(up, bias), into: () => addInto(upCopy, bias, upCopy) },
    { name: `scale scores [${BATCH}×12×${SEQ}×${SEQ}]`, perLayer: 1, ts: () => typescript(() => scale(scores, 0.125)), fresh: () => scale(scores, 0.125) },
    { name: `mask add [${BATCH}×12×${SEQ}×${SEQ}] + [${BATCH}×1×1×${SEQ}]`, perLayer: 1, ts: () => typescript(() => add(scores, mask)), fresh: () => add(scores, mask) },
    { name: `softmax [${BATCH}×12×${SEQ}×${SEQ}]`, perLayer: 1, ts: () => typescript(() => softmax(scores)), fresh: () => softmax(scores) },
    { name: `split heads [${BATCH}×${SEQ}×12×64] → [${BATCH}×12×${SEQ}×64]`, perLayer: 4, ts: () => heads.permute([0, 2, 1, 3]), fresh: () => kernel.permute(heads.f32(), new Float32Array(heads.size), layout), into: () => kernel.permute(heads.f32(), split, layout) },
  ];
  console.log(`\n| op (one BERT-base layer at ${BATCH} × ${SEQ}) | calls a layer | TypeScript ms | native ms, new result (1 thread) | native ms, into an existing tensor (1 thread / 2 threads) | TypeScript / native new result |`);
  console.log('|---|---:|---:|---:|---:|---:|');
  const before = native.threads();
  try {
    for (const op of ops) {
      const oneThread = () => native.setThreads(1);
      const twoThreads = () => native.setThreads(2);
      const variants = [op.ts, () => (oneThread(), op.fresh())];
      if (op.into) variants.push(() => (oneThread(), op.into!()), () => (twoThreads(), op.into!()));
      const [ts, fresh, into1, into2] = interleave(variants, 3);
      const intoCell = op.into ? `${fixed(into1)} / ${fixed(into2)}` : '—';
      console.log(`| ${op.name} | ${op.perLayer} | ${fixed(ts)} | ${fixed(fresh)} | ${intoCell} | ${fixed(ts / fresh)}× |`);
    }
  } finally {
    native.setThreads(before);
  }
  console.log('\n"new result" allocates its output as the ops do; "into" writes into a tensor allocated once (the *Into ops, in place). The split-heads TypeScript column is Tensor.permute; its native columns call the kernel directly.');
}

export async function run(): Promise<void> {
  await useFastestKernel();
  const info = kernelInfo();
  const native = loadNativeKernel().kernel;
  console.log(`load average ${loadAverage()}; active kernel ${info.name}; random weights; sentences/s = encoder pass + mean pooling + L2 normalisation`);
  const started = performance.now();
  if (native) {
    const peak = Math.max(...[0, 1, 2, 3, 4].map(() => native.fmaPeak(0.1)));
    console.log(`native ISA ${native.isa()}; one-core FMA peak (register-only loop, best of 5): ${fixed(peak)} GFLOP/s\n`);
    console.log(`### ${BERT.name}, batch ${BATCH} × ${SEQ} tokens, fast path\n`);
    const model = randomBert(BERT);
    embedBatch(model, 2, SEQ); // warm-up: JIT and first touch of the weights
    fastPath(native, model, peak);
  } else {
    console.log(`native addon unavailable (${info.nativeUnavailable ?? 'unknown'}): only the TypeScript paths run\n`);
  }
  console.log(`\n### ${BERT.name}, slower paths on one layer`);
  slices(native);
  if (native) {
    console.log(`\n### Fused ops against the TypeScript ops`);
    opTable(native);
    const mini = randomBert(MINILM);
    embedBatch(mini, 2, SEQ);
    const start = performance.now();
    embedBatch(mini, BATCH, SEQ);
    const ms = performance.now() - start;
    const gflops = (BATCH * (linearFlops(MINILM, SEQ) + attentionFlops(MINILM, SEQ))) / (ms / 1000) / 1e9;
    console.log(`\n${MINILM.name}, batch ${BATCH} × ${SEQ}, fast path (${native.threads()} threads, one run): ${fixed((BATCH * 1000) / ms, 1)} sentences/s, whole pass ${fixed(gflops)} GFLOP/s`);
  }
  console.log(`\nwall time ${fixed((performance.now() - started) / 1000, 0)} s; load average after ${loadAverage()}`);
}
