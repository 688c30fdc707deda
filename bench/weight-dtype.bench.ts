/**
 * What keeping weights in fewer bits costs in accuracy, on stories260K (a real
 * trained Llama, shipped in shared/models): the f32 model writes its own greedy
 * story from BOS (the held-out text: no model saw it in training), then each
 * weight dtype scores that text. Reported: perplexity, the largest logit
 * difference from f32 over every position and the number of positions whose
 * top token changed. bf16 and int8 weights each with f32 activations (the
 * weights' rounding only) and with rounded activations: int8 rows quantized
 * per row for VNNI's integer dot products (int8's default), bf16 rows rounded
 * for vdpbf16ps (opt-in; the scoring pass has 256 rows, so it applies).
 */
import { join } from 'node:path';
import { readLlama2cCheckpoint } from '../src/io/llama2c.js';
import { nodeFileSystem } from '../src/io/node-fs.js';
import { useFastestKernel } from '../src/kernels/index.js';
import { LlamaModel, parseLlamaConfig } from '../src/models/llama.js';
import { setBf16Activations, type Bf16Activations } from '../src/nn/bf16.js';
import { setInt8Activations, type Int8Activations } from '../src/nn/int8.js';
import { Weights, type LinearDtype } from '../src/nn/weights.js';
import { Tensor } from '../src/tensor/tensor.js';

const STORY_TOKENS = 256;
const BOS = 1;

function argmax(row: Float32Array, offset: number, width: number): number {
  let best = 0;
  for (let v = 1; v < width; v++) if (row[offset + v] > row[offset + best]) best = v;
  return best;
}

/** Greedy continuation from BOS, one full forward per token (no cache: simple and exact). */
function greedyStory(model: LlamaModel, length: number): number[] {
  const ids = [BOS];
  while (ids.length < length) {
    const logits = model.forward(Tensor.i32(ids, [1, ids.length]), { lastOnly: true }).logits.f32();
    ids.push(argmax(logits, 0, model.vocabSize));
  }
  return ids;
}

interface Score {
  perplexity: number;
  logits: Float32Array;
  seconds: number;
}

/** Perplexity of ids[1:] given their prefixes, from one forward pass. */
function score(model: LlamaModel, ids: number[]): Score {
  const start = performance.now();
  const logits = model.forward(Tensor.i32(ids, [1, ids.length])).logits.f32();
  const seconds = (performance.now() - start) / 1000;
  const vocab = model.vocabSize;
  let nll = 0;
  for (let t = 0; t + 1 < ids.length; t++) {
    let max = -Infinity;
    for (let v = 0; v < vocab; v++) max = Math.max(max, logits[t * vocab + v]);
    let sum = 0;
    for (let v = 0; v < vocab; v++) sum += Math.exp(logits[t * vocab + v] - max);
    nll -= logits[t * vocab + ids[t + 1]] - max - Math.log(sum);
  }
  return { perplexity: Math.exp(nll / (ids.length - 1)), logits, seconds };
}

export async function run(): Promise<void> {
  await useFastestKernel();
  const path = join(process.env.GLASSFORMER_SHARED ?? join(process.cwd(), '..', 'shared'), 'models/stories260K/stories260K.bin');
  const checkpoint = await readLlama2cCheckpoint(nodeFileSystem.source(path));
  const load = (linearDtype: LinearDtype) =>
    new LlamaModel(parseLlamaConfig(checkpoint.llamaConfig.raw as Record<string, unknown>, path), Weights.from(checkpoint.tensors, path, { linearDtype }));
  const f32 = load('f32');
  const story = greedyStory(f32, STORY_TOKENS);
  const base = score(f32, story);
  const vocab = f32.vocabSize;
  const lines = [
    `held-out text: stories260K's own greedy story from BOS, ${story.length} tokens`,
    '',
    '| weights | perplexity | vs f32 | largest logit difference | top token changed |',
    '|---|---:|---:|---:|---:|',
  ];
  const variants: { label: string; dtype: LinearDtype; bf16?: Bf16Activations; int8?: Int8Activations }[] = [
    { label: 'f32', dtype: 'f32' },
    { label: 'bf16, f32 activations (default)', dtype: 'bf16', bf16: 'f32' },
    { label: 'bf16, bf16 activations (vdpbf16ps, opt-in)', dtype: 'bf16', bf16: 'bf16' },
    { label: 'int8, f32 activations', dtype: 'int8', int8: 'f32' },
    { label: 'int8, int8 activations (VNNI, default)', dtype: 'int8', int8: 'int8' },
  ];
  for (const { label, dtype, bf16, int8 } of variants) {
    const bf16Before = setBf16Activations(bf16 ?? 'f32');
    const int8Before = setInt8Activations(int8 ?? 'int8');
    let s: Score;
    try {
      s = dtype === 'f32' ? base : score(load(dtype), story);
    } finally {
      setBf16Activations(bf16Before);
      setInt8Activations(int8Before);
    }
    let worst = 0;
    let changed = 0;
    for (let t = 0; t < story.length; t++) {
      for (let v = 0; v < vocab; v++) worst = Math.max(worst, Math.abs(s.logits[t * vocab + v] - base.logits[t * vocab + v]));
      if (argmax(s.logits, t * vocab, vocab) !== argmax(base.logits, t * vocab, vocab)) changed++;
    }
    lines.push(
      `| ${label} | ${s.perplexity.toFixed(4)} | ${((s.perplexity / base.perplexity - 1) * 100).toFixed(2)}% | ${worst.toExponential(2)} | ${changed} of ${story.length} |`,
    );
  }
  console.log(lines.join('\n'));
}
