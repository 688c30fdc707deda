/**
 * Fresh parameters for training from scratch, under Hugging Face weight names,
 * initialised as HF's `_init_weights` does: Linear and Embedding weights from
 * N(0, initializer_range²), biases zero, norm gains one.
 */
import type { BartConfig, BertConfig, Gpt2Config, LlamaConfig } from '../io/config.js';
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

/** Every tensor of a GPT-2 LM (Conv1D weights stored [in, out]); lm_head is tied to wte and not saved. */
export function gpt2ParameterShapes(c: Gpt2Config): Map<string, Shape> {
  const d = c.nEmbd;
  const shapes = new Map<string, Shape>([
    ['transformer.wte.weight', [c.vocabSize, d]],
    ['transformer.wpe.weight', [c.nPositions, d]],
  ]);
  for (let i = 0; i < c.nLayer; i++) {
    const p = `transformer.h.${i}`;
    shapes.set(`${p}.ln_1.weight`, [d]);
    shapes.set(`${p}.ln_1.bias`, [d]);
    shapes.set(`${p}.attn.c_attn.weight`, [d, 3 * d]);
    shapes.set(`${p}.attn.c_attn.bias`, [3 * d]);
    shapes.set(`${p}.attn.c_proj.weight`, [d, d]);
    shapes.set(`${p}.attn.c_proj.bias`, [d]);
    shapes.set(`${p}.ln_2.weight`, [d]);
    shapes.set(`${p}.ln_2.bias`, [d]);
    shapes.set(`${p}.mlp.c_fc.weight`, [d, c.nInner]);
    shapes.set(`${p}.mlp.c_fc.bias`, [c.nInner]);
    shapes.set(`${p}.mlp.c_proj.weight`, [c.nInner, d]);
    shapes.set(`${p}.mlp.c_proj.bias`, [d]);
  }
  shapes.set('transformer.ln_f.weight', [d]);
  shapes.set('transformer.ln_f.bias', [d]);
  return shapes;
}

/**
 * Every tensor a Marian / BART-family model with shared embeddings and
 * sinusoidal positions (Marian) saves: `model.shared.weight`, the layers and
 * the `final_logits_bias` buffer; tied embed_tokens and lm_head are left out.
 */
export function marianParameterShapes(c: BartConfig): Map<string, Shape> {
  const d = c.dModel;
  const shapes = new Map<string, Shape>([['model.shared.weight', [c.vocabSize, d]]]);
  const attention = (p: string): void => {
    for (const proj of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) {
      shapes.set(`${p}.${proj}.weight`, [d, d]);
      shapes.set(`${p}.${proj}.bias`, [d]);
    }
  };
  const norm = (p: string): void => {
    shapes.set(`${p}.weight`, [d]);
    shapes.set(`${p}.bias`, [d]);
  };
  const feedForward = (p: string, ffn: number): void => {
    shapes.set(`${p}.fc1.weight`, [ffn, d]);
    shapes.set(`${p}.fc1.bias`, [ffn]);
    shapes.set(`${p}.fc2.weight`, [d, ffn]);
    shapes.set(`${p}.fc2.bias`, [d]);
    norm(`${p}.final_layer_norm`);
  };
  for (let i = 0; i < c.encoderLayers; i++) {
    const p = `model.encoder.layers.${i}`;
    attention(`${p}.self_attn`);
    norm(`${p}.self_attn_layer_norm`);
    feedForward(p, c.encoderFfnDim);
  }
  for (let i = 0; i < c.decoderLayers; i++) {
    const p = `model.decoder.layers.${i}`;
    attention(`${p}.self_attn`);
    norm(`${p}.self_attn_layer_norm`);
    attention(`${p}.encoder_attn`);
    norm(`${p}.encoder_attn_layer_norm`);
    feedForward(p, c.decoderFfnDim);
  }
  shapes.set('final_logits_bias', [1, c.decoderVocabSize]);
  return shapes;
}

/**
 * Every tensor of a BERT encoder under `prefix` ("bert" in a checkpoint saved
 * from a head class), and with `mlmHead` the BertForMaskedLM head
 * (`cls.predictions.*`; its decoder weight is tied to the word embeddings).
 */
export function bertParameterShapes(c: BertConfig, options: { prefix: string; mlmHead: boolean }): Map<string, Shape> {
  const d = c.hiddenSize;
  const p = options.prefix ? `${options.prefix}.` : '';
  const shapes = new Map<string, Shape>();
  const linear = (name: string, out: number, inFeatures: number): void => {
    shapes.set(`${name}.weight`, [out, inFeatures]);
    shapes.set(`${name}.bias`, [out]);
  };
  const norm = (name: string): void => {
    shapes.set(`${name}.weight`, [d]);
    shapes.set(`${name}.bias`, [d]);
  };
  shapes.set(`${p}embeddings.word_embeddings.weight`, [c.vocabSize, d]);
  shapes.set(`${p}embeddings.position_embeddings.weight`, [c.maxPositionEmbeddings, d]);
  shapes.set(`${p}embeddings.token_type_embeddings.weight`, [c.typeVocabSize, d]);
  norm(`${p}embeddings.LayerNorm`);
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const l = `${p}encoder.layer.${i}`;
    for (const part of ['query', 'key', 'value']) linear(`${l}.attention.self.${part}`, d, d);
    linear(`${l}.attention.output.dense`, d, d);
    norm(`${l}.attention.output.LayerNorm`);
    linear(`${l}.intermediate.dense`, c.intermediateSize, d);
    linear(`${l}.output.dense`, d, c.intermediateSize);
    norm(`${l}.output.LayerNorm`);
  }
  if (options.mlmHead) {
    linear('cls.predictions.transform.dense', d, d);
    norm('cls.predictions.transform.LayerNorm');
    shapes.set('cls.predictions.bias', [c.vocabSize]);
  }
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
    else if (!name.endsWith('.bias') && !name.endsWith('_bias')) for (let i = 0; i < data.length; i++) data[i] = random.normal() * options.std;
    params.set(name, new Tensor('f32', shape, data).requireGrad());
  }
  return params;
}
