/**
 * Fresh parameters for training from scratch, under Hugging Face weight names,
 * initialised as HF's `_init_weights` does: Linear and Embedding weights from
 * N(0, initializer_range²), biases zero, norm gains one.
 */
import type { LlamaConfig } from '../models/llama.js';
import { Tensor, sizeOf, type Shape } from '../tensor/tensor.js';
import { Random } from './random.js';

/** Every tensor a Llama-family causal LM (no fused projections, no biases) has, by HF name. */
export function llamaParameterShapes(c: LlamaConfig): Map<string, Shape> {
  const d = c.hiddenSize;
  const q = c.numAttentionHeads * c.headDim;
  const kv = c.numKeyValueHeads * c.headDim;
  const shapes = new Map<string, Shape>([['model.embed_tokens.weight', [c.vocabSize, d]]]);
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    shapes.set(`${p}.input_layernorm.weight`, [d]);
    shapes.set(`${p}.self_attn.q_proj.weight`, [q, d]);
    shapes.set(`${p}.self_attn.k_proj.weight`, [kv, d]);
    shapes.set(`${p}.self_attn.v_proj.weight`, [kv, d]);
    shapes.set(`${p}.self_attn.o_proj.weight`, [d, q]);
    shapes.set(`${p}.post_attention_layernorm.weight`, [d]);
    shapes.set(`${p}.mlp.gate_proj.weight`, [c.intermediateSize, d]);
    shapes.set(`${p}.mlp.up_proj.weight`, [c.intermediateSize, d]);
    shapes.set(`${p}.mlp.down_proj.weight`, [d, c.intermediateSize]);
  }
  shapes.set('model.norm.weight', [d]);
  if (!c.tieWordEmbeddings) shapes.set('lm_head.weight', [c.vocabSize, d]);
  return shapes;
}

/** Whether HF initialises this tensor to ones (a norm gain) rather than from a normal distribution. */
function isNormGain(name: string, shape: Shape): boolean {
  return shape.length === 1 && /(norm|LayerNorm|ln_[0-9a-z]+)[^.]*\.weight$/.test(name);
}

/** Parameters for `shapes`, seeded, each marked as requiring gradients. */
export function initParameters(shapes: ReadonlyMap<string, Shape>, options: { std: number; seed: number }): Map<string, Tensor> {
  const random = new Random(options.seed);
  const params = new Map<string, Tensor>();
  for (const [name, shape] of shapes) {
    const data = new Float32Array(sizeOf(shape));
    if (isNormGain(name, shape)) data.fill(1);
    else if (!name.endsWith('.bias')) for (let i = 0; i < data.length; i++) data[i] = random.normal() * options.std;
    params.set(name, new Tensor('f32', shape, data).requireGrad());
  }
  return params;
}
