/**
 * Embedding throughput (sentences/s) of a BERT-base-shaped encoder (12 layers,
 * d 768, 12 heads, FFN 3072) and a MiniLM-L6-shaped one (6 layers, d 384, 12
 * heads, FFN 1536), random weights: the encoder pass plus mean pooling and
 * L2 normalisation, from token ids (tokenizing is benchmarked elsewhere).
 * The active matmul kernel runs batch 1 and batch 32 at 128 tokens; the
 * reference kernel runs the same model at batch 1 × 16 tokens, beside the
 * active kernel on that shape, so the ratio compares like with like. Outside
 * matmul both paths share the same reference ops (GELU's erf is a large share).
 * The matmul rate (the model's multiply-adds × 2 ÷ time, everything else
 * counted as overhead) is also given as a fraction of the FMA peak measured
 * in the same run (one core's peak × threads).
 */
import { kernelInfo, matmulKernel, referenceMatmul, setMatmulKernel, useFastestKernel } from '../src/kernels/index.js';
import { loadNativeKernel } from '../src/kernels/native.js';
import { parseModelConfig } from '../src/io/config.js';
import { loadBert, type EncoderModel } from '../src/models/bert.js';
import { normalizeL2, pool } from '../src/tasks/pooling.js';
import { Tensor } from '../src/tensor/tensor.js';
import { randomTensor } from './random.js';

interface Shape {
  name: string;
  layers: number;
  d: number;
  heads: number;
  ffn: number;
}

const SHAPES: Shape[] = [
  { name: 'BERT-base shape', layers: 12, d: 768, heads: 12, ffn: 3072 },
  { name: 'MiniLM-L6 shape', layers: 6, d: 384, heads: 12, ffn: 1536 },
];
const VOCAB = 30522;
/** Tokens per sentence on the reference path (and the active path it is compared with). */
const SHORT = 16;


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

/** FLOPs of one sentence's matrix products: the four attention projections, the FFN, q·kᵀ and pattern·v. */
function flopsPerSentence(s: Shape, seq: number): number {
  return s.layers * (2 * seq * (4 * s.d * s.d + 2 * s.d * s.ffn) + 4 * seq * seq * s.d);
}

/** Sentences per second for `reps` batches of `batch` sentences of `seq` tokens: encode, mean-pool, normalise. */
function measure(model: EncoderModel, batch: number, seq: number, reps: number): number {
  const ids = Tensor.i32(
    Array.from({ length: batch * seq }, (_, i) => 1000 + ((i * 7919) % 20000)),
    [batch, seq],
  );
  const mask = Tensor.i32(new Array<number>(batch * seq).fill(1), [batch, seq]);
  const start = performance.now();
  for (let r = 0; r < reps; r++) {
    const hidden = model.forward({ inputIds: ids, attentionMask: mask }).lastHiddenState;
    pool(hidden, mask, ['mean']).map(normalizeL2);
  }
  return (batch * reps) / ((performance.now() - start) / 1000);
}

export async function run(): Promise<void> {
  await useFastestKernel();
  const active = kernelInfo();
  console.log(`random weights; sentences/s = encoder pass + mean pooling + L2 normalisation; active kernel ${active.name} (${active.threads} threads)\n`);
  const native = loadNativeKernel().kernel;
  const peak = native ? Math.max(...[0, 1, 2].map(() => native.fmaPeak(0.05))) * active.threads : undefined;
  if (peak !== undefined) console.log(`FMA peak measured in this run: ${peak.toFixed(0)} GFLOP/s (${active.threads} threads)\n`);
  const elapsed: string[] = [];
  console.log('| model | path | batch × tokens | sentences/s | tokens/s | matmul GFLOP/s | of FMA peak |');
  console.log('|---|---|---:|---:|---:|---:|---:|');
  for (const shape of SHAPES) {
    const model = randomBert(shape);
    const row = (path: string, batch: number, seq: number, rate: number) => {
      const gflops = (rate * flopsPerSentence(shape, seq)) / 1e9;
      const fraction = peak === undefined || !path.startsWith('active') ? '—' : `${((100 * gflops) / peak).toFixed(0)}%`;
      console.log(`| ${shape.name} | ${path} | ${batch} × ${seq} | ${rate.toFixed(2)} | ${(rate * seq).toFixed(0)} | ${gflops.toFixed(1)} | ${fraction} |`);
    };
    const started = performance.now();
    measure(model, 1, SHORT, 1); // warm-up: JIT and first touch of the weights
    row(`active (${matmulKernel().name})`, 1, 128, measure(model, 1, 128, 2));
    row(`active (${matmulKernel().name})`, 32, 128, measure(model, 32, 128, 1));
    const activeShort = measure(model, 1, SHORT, 3);
    row(`active (${matmulKernel().name})`, 1, SHORT, activeShort);
    const previous = setMatmulKernel(referenceMatmul);
    let reference: number;
    try {
      reference = measure(model, 1, SHORT, 1);
    } finally {
      setMatmulKernel(previous);
    }
    row(`reference (${referenceMatmul.name})`, 1, SHORT, reference);
    console.log(`| ${shape.name} | ratio active / reference | 1 × ${SHORT} | ${(activeShort / reference).toFixed(1)}× | | | |`);
    elapsed.push(`${shape.name} ${((performance.now() - started) / 1000).toFixed(0)} s`);
  }
  console.log(`\nwall time: ${elapsed.join(', ')}`);
}
