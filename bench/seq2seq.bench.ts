/**
 * Encoder and decoder throughput of a t5-small-shaped model (6+6 layers, d 512,
 * 8 heads of 64, d_ff 2048, 32128 tokens; random weights): the encoder over a
 * 64-token input, then 16 cached decoder steps of one token each. The same
 * work runs three ways in one process: the active kernels with the fused
 * attention (T5's position bias added inside it, the self-attention cache read
 * in place), the active matmul with the unfused attention ops, and the plain
 * reference path (reference matmul, unfused attention).
 */
import { setFusedAttentionKernel } from '../src/kernels/attention.js';
import { kernelInfo, matmulKernel, referenceMatmul, setMatmulKernel, useFastestKernel } from '../src/kernels/index.js';
import { parseT5Config, T5Model } from '../src/models/t5.js';
import { Weights } from '../src/nn/weights.js';
import { Tensor } from '../src/tensor/tensor.js';
import { randomTensor } from './random.js';

const CONFIG = {
  model_type: 't5',
  vocab_size: 32128,
  d_model: 512,
  d_kv: 64,
  d_ff: 2048,
  num_layers: 6,
  num_decoder_layers: 6,
  num_heads: 8,
  feed_forward_proj: 'relu',
};
const SOURCE_TOKENS = 64;
const DECODER_STEPS = 16;


function t5SmallWeights(): Map<string, Tensor> {
  const d = CONFIG.d_model;
  const inner = CONFIG.num_heads * CONFIG.d_kv;
  const weights = new Map<string, Tensor>();
  let seed = 1;
  const put = (name: string, shape: number[], amplitude = 1 / Math.sqrt(shape[shape.length - 1])) => weights.set(name, randomTensor(shape, amplitude, seed++));
  put('shared.weight', [CONFIG.vocab_size, d], 1);
  for (const stack of ['encoder', 'decoder'] as const) {
    put(`${stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight`, [32, CONFIG.num_heads], 1);
    put(`${stack}.final_layer_norm.weight`, [d], 1);
    for (let i = 0; i < CONFIG.num_layers; i++) {
      const block = `${stack}.block.${i}`;
      const attentions = stack === 'encoder' ? ['layer.0.SelfAttention'] : ['layer.0.SelfAttention', 'layer.1.EncDecAttention'];
      for (const a of attentions) {
        for (const p of ['q', 'k', 'v']) put(`${block}.${a}.${p}.weight`, [inner, d]);
        put(`${block}.${a}.o.weight`, [d, inner]);
      }
      const ff = stack === 'encoder' ? 1 : 2;
      for (let l = 0; l <= ff; l++) put(`${block}.layer.${l}.layer_norm.weight`, [d], 1);
      put(`${block}.layer.${ff}.DenseReluDense.wi.weight`, [CONFIG.d_ff, d]);
      put(`${block}.layer.${ff}.DenseReluDense.wo.weight`, [d, CONFIG.d_ff]);
    }
  }
  return weights;
}

interface Throughput {
  encoder: number;
  decoder: number;
}

function measure(model: T5Model): Throughput {
  const ids = Tensor.i32(
    Array.from({ length: SOURCE_TOKENS }, (_, i) => (i * 7919) % CONFIG.vocab_size),
    [1, SOURCE_TOKENS],
  );
  const mask = Tensor.i32(new Array<number>(SOURCE_TOKENS).fill(1), [1, SOURCE_TOKENS]);
  let start = performance.now();
  const encoded = model.encode(ids, mask);
  const encoderSeconds = (performance.now() - start) / 1000;
  const cache = model.startCache(encoded.output, mask);
  let next = 0;
  start = performance.now();
  for (let s = 0; s < DECODER_STEPS; s++) {
    const logits = model.decode(Tensor.i32([next], [1, 1]), cache).logits.f32();
    next = logits.indexOf(Math.max(...logits));
  }
  const decoderSeconds = (performance.now() - start) / 1000;
  return { encoder: SOURCE_TOKENS / encoderSeconds, decoder: DECODER_STEPS / decoderSeconds };
}

/** Runs fn with the fused attention off (the unfused ops), then restores it. */
function unfused<T>(fn: () => T): T {
  const previous = setFusedAttentionKernel(undefined);
  try {
    return fn();
  } finally {
    setFusedAttentionKernel(previous);
  }
}

/** The better of each figure over `runs` measurements (the machine is shared). */
function best(runs: Throughput[]): Throughput {
  return { encoder: Math.max(...runs.map((t) => t.encoder)), decoder: Math.max(...runs.map((t) => t.decoder)) };
}

export async function run(): Promise<void> {
  await useFastestKernel();
  const model = new T5Model(parseT5Config(CONFIG, 't5-small-shaped (bench)'), Weights.from(t5SmallWeights(), 'random t5-small'));
  const active = matmulKernel();
  measure(model); // warm-up: JIT and first-touch of the weights
  const fused: Throughput[] = [];
  const plain: Throughput[] = [];
  for (let round = 0; round < 3; round++) {
    fused.push(measure(model));
    plain.push(unfused(() => measure(model)));
  }
  const previous = setMatmulKernel(referenceMatmul);
  let reference: Throughput;
  try {
    reference = unfused(() => measure(model));
  } finally {
    setMatmulKernel(previous);
  }
  const fast = best(fused);
  const row = (path: string, t: Throughput) =>
    `| ${path} | ${t.encoder.toFixed(1)} | ${t.decoder.toFixed(2)} | ${(t.encoder / reference.encoder).toFixed(1)}× | ${(t.decoder / reference.decoder).toFixed(1)}× |`;
  console.log(`t5-small shape, random weights; encoder: 1 × ${SOURCE_TOKENS} tokens; decoder: ${DECODER_STEPS} cached steps of 1 token; best of 3 interleaved runs (reference: 1)\n`);
  console.log('| path | encoder tokens/s | decoder tokens/s | encoder vs reference | decoder vs reference |');
  console.log('|---|---:|---:|---:|---:|');
  console.log(row(`${active.name} (${kernelInfo().threads} threads), fused attention`, fast));
  console.log(row(`${active.name}, unfused attention`, best(plain)));
  console.log(row(`reference path (${referenceMatmul.name}, unfused attention)`, reference));
}
