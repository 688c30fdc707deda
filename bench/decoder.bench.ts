/**
 * Decoder-only throughput: prompt tokens/s (one cached forward pass over the
 * prompt) and decode tokens/s (one token per cached step), for a
 * GPT-2-small-shaped model (12 layers, 768 wide, 12 heads, 50257 tokens,
 * random weights) and for stories260K, with the active matmul kernel and with
 * the reference kernel in the same run (the reference only for a few tokens),
 * and GPT-2-small again with its linear weights kept bf16 (half the bytes)
 * and quantized to int8 per channel (a quarter).
 *
 * Decoding one row at a time reads every weight once per token, so it is
 * bound by memory bandwidth: the table also measures streaming bandwidth over
 * 512 MB (a JavaScript sum, and a memcpy-style TypedArray copy counting bytes
 * read + written), takes the higher as the limit, and reports the fraction of
 * it reached: weight bytes × decode tokens/s ÷ bandwidth. (The JavaScript sum
 * is bound by its scalar adds, not by memory; the copy is the better figure.)
 */
import { join } from 'node:path';
import { kernelInfo, matmulKernel, referenceMatmul, setMatmulKernel, useFastestKernel } from '../src/kernels/index.js';
import { readLlama2cCheckpoint } from '../src/io/llama2c.js';
import { nodeFileSystem } from '../src/io/node-fs.js';
import { Gpt2Model, parseGpt2Config } from '../src/models/gpt2.js';
import { LlamaModel, parseLlamaConfig } from '../src/models/llama.js';
import type { CausalLM } from '../src/nn/causal-lm.js';
import { CausalLMSession } from '../src/nn/causal-lm.js';
import { Weights } from '../src/nn/weights.js';
import { Tensor } from '../src/tensor/tensor.js';
import type { GenerativeModel } from '../src/generation/types.js';
import { randomTensor } from './random.js';

const GPT2_SMALL = { model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 };


function gpt2SmallWeights(): Map<string, Tensor> {
  const d = GPT2_SMALL.n_embd;
  const weights = new Map<string, Tensor>();
  let seed = 1;
  const put = (name: string, shape: number[], amplitude = 1 / Math.sqrt(shape[0])) => weights.set(name, randomTensor(shape, amplitude, seed++));
  put('transformer.wte.weight', [GPT2_SMALL.vocab_size, d], 0.1);
  put('transformer.wpe.weight', [GPT2_SMALL.n_positions, d], 0.01);
  put('transformer.ln_f.weight', [d], 1);
  put('transformer.ln_f.bias', [d], 0.01);
  for (let i = 0; i < GPT2_SMALL.n_layer; i++) {
    const h = `transformer.h.${i}`;
    for (const ln of ['ln_1', 'ln_2']) {
      put(`${h}.${ln}.weight`, [d], 1);
      put(`${h}.${ln}.bias`, [d], 0.01);
    }
    // Conv1D weights are [in, out].
    put(`${h}.attn.c_attn.weight`, [d, 3 * d]);
    put(`${h}.attn.c_attn.bias`, [3 * d], 0.01);
    put(`${h}.attn.c_proj.weight`, [d, d]);
    put(`${h}.attn.c_proj.bias`, [d], 0.01);
    put(`${h}.mlp.c_fc.weight`, [d, 4 * d]);
    put(`${h}.mlp.c_fc.bias`, [4 * d], 0.01);
    put(`${h}.mlp.c_proj.weight`, [4 * d, d]);
    put(`${h}.mlp.c_proj.bias`, [d], 0.01);
  }
  return weights;
}

/** Bytes read per decoded token: every weight except the position table, of which one row is read. */
function weightBytes(weights: ReadonlyMap<string, Tensor>): number {
  let bytes = 0;
  for (const [name, t] of weights) if (!name.endsWith('wpe.weight')) bytes += t.size * 4;
  return bytes;
}

interface Throughput {
  prompt: number;
  decode: number;
}

/** Prompt pass over `promptTokens`, then `steps` cached one-token steps, as generate() drives the model. */
function measure(model: CausalLM & GenerativeModel, promptTokens: number, steps: number): Throughput {
  const prompt = Array.from({ length: promptTokens }, (_, i) => (i * 7919 + 11) % model.vocabSize);
  const session = new CausalLMSession(model, { inputIds: [prompt], attentionMask: [prompt.map(() => 1)], expandBy: 1 });
  let start = performance.now();
  let logits = session.step([prompt]);
  const promptSeconds = (performance.now() - start) / 1000;
  start = performance.now();
  for (let s = 0; s < steps; s++) {
    const data = logits.f32();
    let next = 0;
    for (let v = 1; v < data.length; v++) if (data[v] > data[next]) next = v;
    logits = session.step([[next]]);
  }
  const decodeSeconds = (performance.now() - start) / 1000;
  return { prompt: promptTokens / promptSeconds, decode: steps / decodeSeconds };
}

/** Streaming read bandwidth in bytes/s: the best of three sums over a 512 MB Float32Array. */
function readBandwidth(): number {
  const data = new Float32Array(128 * 1024 * 1024);
  for (let i = 0; i < data.length; i += 1024) data[i] = i;
  let best = Infinity;
  let checksum = 0;
  for (let rep = 0; rep < 3; rep++) {
    const start = performance.now();
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let i = 0; i < data.length; i += 4) {
      s0 += data[i];
      s1 += data[i + 1];
      s2 += data[i + 2];
      s3 += data[i + 3];
    }
    best = Math.min(best, (performance.now() - start) / 1000);
    checksum += s0 + s1 + s2 + s3;
  }
  if (Number.isNaN(checksum)) throw new Error('bandwidth checksum is NaN');
  return data.byteLength / best;
}

/** Streaming copy bandwidth in bytes/s (read + write), the best of three 512 MB copies. */
function copyBandwidth(): number {
  const from = new Float32Array(128 * 1024 * 1024).fill(1);
  const to = new Float32Array(from.length);
  let best = Infinity;
  for (let rep = 0; rep < 3; rep++) {
    const start = performance.now();
    to.set(from);
    best = Math.min(best, (performance.now() - start) / 1000);
  }
  return (2 * from.byteLength) / best;
}

function row(name: string, kernel: string, t: Throughput, bytes: number, bandwidth: number, base?: Throughput): string {
  const ratio = (a: number, b?: number) => (b === undefined ? '1.0×' : `${(a / b).toFixed(1)}×`);
  const fraction = ((bytes * t.decode) / bandwidth) * 100;
  return `| ${name} | ${kernel} | ${t.prompt.toFixed(1)} | ${ratio(t.prompt, base?.prompt)} | ${t.decode.toFixed(2)} | ${ratio(t.decode, base?.decode)} | ${fraction.toFixed(1)}% |`;
}

export async function run(): Promise<void> {
  await useFastestKernel();
  const fast = matmulKernel();
  const kernel = `${kernelInfo().name} (${kernelInfo().threads} threads)`;
  const read = readBandwidth();
  const copy = copyBandwidth();
  const limit = Math.max(read, copy);
  console.log(
    `streaming bandwidth over 512 MB: sum ${(read / 1e9).toFixed(2)} GB/s, copy ${(copy / 1e9).toFixed(2)} GB/s (read + write); ` +
      `limit used below: ${(limit / 1e9).toFixed(2)} GB/s\n`,
  );

  const gptWeights = gpt2SmallWeights();
  const gpt2 = new Gpt2Model(parseGpt2Config(GPT2_SMALL, 'gpt2-small (random)'), Weights.from(gptWeights, 'random gpt2-small'));
  const gptBytes = weightBytes(gptWeights);

  const storiesPath = join(process.env.GLASSFORMER_SHARED ?? join(process.cwd(), '..', 'shared'), 'models/stories260K/stories260K.bin');
  const checkpoint = await readLlama2cCheckpoint(nodeFileSystem.source(storiesPath));
  const stories = new LlamaModel(parseLlamaConfig(checkpoint.llamaConfig.raw as Record<string, unknown>, storiesPath), Weights.from(checkpoint.tensors, storiesPath));
  const storiesBytes = weightBytes(checkpoint.tensors);

  const lines = [
    '| model | matmul kernel | prompt tok/s | vs reference | decode tok/s | vs reference | of bandwidth limit |',
    '|---|---|---:|---:|---:|---:|---:|',
  ];
  const previous = setMatmulKernel(referenceMatmul);
  let gptReference: Throughput;
  let storiesReference: Throughput;
  try {
    gptReference = measure(gpt2, 4, 2);
    storiesReference = measure(stories, 32, 32);
  } finally {
    setMatmulKernel(previous);
  }
  setMatmulKernel(fast);
  const gptFast = measure(gpt2, 32, 16);
  const gpt2Bf16 = new Gpt2Model(
    parseGpt2Config(GPT2_SMALL, 'gpt2-small (random, bf16)'),
    Weights.from(gptWeights, 'random gpt2-small', { linearDtype: 'bf16' }),
  );
  const gptBf16 = measure(gpt2Bf16, 32, 16);
  const gpt2Int8 = new Gpt2Model(
    parseGpt2Config(GPT2_SMALL, 'gpt2-small (random, int8)'),
    Weights.from(gptWeights, 'random gpt2-small', { linearDtype: 'int8' }),
  );
  const gptInt8 = measure(gpt2Int8, 32, 16);
  // bf16 halves every weight matrix and int8 quarters it (plus a 4-byte scale per row); the
  // norms and biases stay f32 and are a rounding error of the total.
  const gptBf16Bytes = gptBytes / 2;
  const gptInt8Bytes = gptBytes / 4;
  const storiesFast = measure(stories, 64, 128);
  lines.push(row(`gpt2-small shape (${(gptBytes / 1e6).toFixed(0)} MB f32)`, 'reference (4-token prompt, 2 steps)', gptReference, gptBytes, limit));
  lines.push(row('', `${kernel} (32-token prompt, 16 steps)`, gptFast, gptBytes, limit, gptReference));
  lines.push(row(`gpt2-small shape, bf16 weights (${(gptBf16Bytes / 1e6).toFixed(0)} MB)`, `${kernel} (32-token prompt, 16 steps)`, gptBf16, gptBf16Bytes, limit, gptReference));
  lines.push(row(`gpt2-small shape, int8 weights (${(gptInt8Bytes / 1e6).toFixed(0)} MB)`, `${kernel} (32-token prompt, 16 steps)`, gptInt8, gptInt8Bytes, limit, gptReference));
  lines.push(row(`stories260K (${(storiesBytes / 1e6).toFixed(2)} MB f32)`, 'reference (32-token prompt, 32 steps)', storiesReference, storiesBytes, limit));
  lines.push(row('', `${kernel} (64-token prompt, 128 steps)`, storiesFast, storiesBytes, limit, storiesReference));
  console.log(lines.join('\n'));
  console.log(`\nagainst f32 weights, same kernel: bf16 decode ${(gptBf16.decode / gptFast.decode).toFixed(2)}×, prompt ${(gptBf16.prompt / gptFast.prompt).toFixed(2)}×; ` +
    `int8 decode ${(gptInt8.decode / gptFast.decode).toFixed(2)}×, prompt ${(gptInt8.prompt / gptFast.prompt).toFixed(2)}×`);
  console.log(
    '\nstories260K (1 MB) fits in cache, so its "fraction of the bandwidth limit" is not a memory-bound figure; ' +
      'for gpt2-small it says how close decoding is to the speed at which the weights can be streamed from memory.',
  );
}
