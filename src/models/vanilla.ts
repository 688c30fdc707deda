/**
 * The Transformer of "Attention Is All You Need" (Vaswani et al. 2017), as
 * PyTorch's torch.nn.Transformer implements it (post-norm, ReLU, batch first),
 * inside the minimal wrapper of the hf-tiny `vanilla` fixture:
 *
 *   src_x  = src_embed[src] · √d + PE[:S]          tgt_x = tgt_embed[tgt] · √d + PE[:T]
 *   memory = encoder(src_x, padding mask)          dec   = decoder(tgt_x, memory, causal mask)
 *   logits = dec · generatorᵀ + b
 */
import { ConfigError } from '../errors.js';
import { add, activation, embedding, scale } from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import { MultiHeadAttention } from '../nn/attention.js';
import { FeedForward } from '../nn/feed-forward.js';
import { noHooks, type HookPoints } from '../nn/hooks.js';
import { LayerNorm, Linear } from '../nn/linear.js';
import type { Weights } from '../nn/weights.js';

export interface VanillaConfig {
  modelType: 'vanilla_transformer_2017';
  dModel: number;
  heads: number;
  encoderLayers: number;
  decoderLayers: number;
  dFF: number;
  activation: string;
  layerNormEps: number;
  srcVocabSize: number;
  tgtVocabSize: number;
  maxPositions: number;
  finalEncoderNorm: boolean;
  finalDecoderNorm: boolean;
  padTokenId: number;
  bosTokenId: number;
  eosTokenId: number;
}

/** Read the wrapper's config.json (a plain description, not a Hugging Face config). */
export function parseVanillaConfig(raw: Record<string, unknown>, file = 'config.json'): VanillaConfig {
  const num = (key: string, fallback?: number): number => {
    const v = raw[key] ?? fallback;
    if (typeof v !== 'number') throw new ConfigError(`${file}: field "${key}" must be a number, found ${JSON.stringify(v)}`);
    return v;
  };
  if (raw.norm_first === true) throw new ConfigError(`${file}: norm_first=true (pre-norm) is not the 2017 Transformer; only post-norm is supported`);
  return {
    modelType: 'vanilla_transformer_2017',
    dModel: num('d_model'),
    heads: num('nhead'),
    encoderLayers: num('num_encoder_layers'),
    decoderLayers: num('num_decoder_layers'),
    dFF: num('dim_feedforward'),
    activation: typeof raw.activation === 'string' ? raw.activation : 'relu',
    layerNormEps: num('layer_norm_eps', 1e-5),
    srcVocabSize: num('src_vocab_size'),
    tgtVocabSize: num('tgt_vocab_size'),
    maxPositions: num('max_position_embeddings'),
    finalEncoderNorm: raw.final_encoder_layer_norm !== false,
    finalDecoderNorm: raw.final_decoder_layer_norm !== false,
    padTokenId: num('pad_token_id', 0),
    bosTokenId: num('bos_token_id', 1),
    eosTokenId: num('eos_token_id', 2),
  };
}

/** nn.MultiheadAttention keeps W_q, W_k, W_v stacked in one [3d, d] in_proj_weight. */
function loadMultiheadAttention(w: Weights, d: number, heads: number): MultiHeadAttention {
  const weight = w.get('in_proj_weight', [3 * d, d]);
  const bias = w.get('in_proj_bias', [3 * d]);
  const part = (i: number) => new Linear(weight.slice(0, i * d, (i + 1) * d), bias.slice(0, i * d, (i + 1) * d));
  return new MultiHeadAttention(part(0), part(1), part(2), Linear.load(w, 'out_proj', d, d), heads);
}

function loadFeedForward(w: Weights, c: VanillaConfig): FeedForward {
  return new FeedForward(Linear.load(w, 'linear1', c.dModel, c.dFF), Linear.load(w, 'linear2', c.dFF, c.dModel), activation(c.activation));
}

/** Encoder layer: x = norm1(x + selfAttention(x)); x = norm2(x + feedForward(x)). */
class EncoderLayer {
  readonly selfAttention: MultiHeadAttention;
  readonly feedForward: FeedForward;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  private readonly scale: number;

  constructor(w: Weights, c: VanillaConfig) {
    this.selfAttention = loadMultiheadAttention(w.scope('self_attn'), c.dModel, c.heads);
    this.feedForward = loadFeedForward(w, c);
    this.norm1 = LayerNorm.load(w, 'norm1', c.dModel, c.layerNormEps);
    this.norm2 = LayerNorm.load(w, 'norm2', c.dModel, c.layerNormEps);
    this.scale = 1 / Math.sqrt(c.dModel / c.heads);
  }

  forward(x: Tensor, mask: Tensor, hooks: HookPoints): Tensor {
    x = hooks.run('resid_pre', x);
    const { out } = this.selfAttention.forward(x, { mask, scale: this.scale, hooks: hooks.scope('attn.') });
    x = hooks.run('ln1', this.norm1.forward(hooks.run('resid_mid', add(x, out))));
    const ff = this.feedForward.forward(x, hooks.scope('mlp.'));
    return hooks.run('resid_post', hooks.run('ln2', this.norm2.forward(add(x, ff))));
  }
}

/** Decoder layer: masked self-attention, cross-attention to the encoder output, feed-forward; each residual then norm. */
class DecoderLayer {
  readonly selfAttention: MultiHeadAttention;
  readonly crossAttention: MultiHeadAttention;
  readonly feedForward: FeedForward;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly norm3: LayerNorm;
  private readonly scale: number;

  constructor(w: Weights, c: VanillaConfig) {
    this.selfAttention = loadMultiheadAttention(w.scope('self_attn'), c.dModel, c.heads);
    this.crossAttention = loadMultiheadAttention(w.scope('multihead_attn'), c.dModel, c.heads);
    this.feedForward = loadFeedForward(w, c);
    this.norm1 = LayerNorm.load(w, 'norm1', c.dModel, c.layerNormEps);
    this.norm2 = LayerNorm.load(w, 'norm2', c.dModel, c.layerNormEps);
    this.norm3 = LayerNorm.load(w, 'norm3', c.dModel, c.layerNormEps);
    this.scale = 1 / Math.sqrt(c.dModel / c.heads);
  }

  forward(x: Tensor, memory: Tensor, causal: Tensor, memoryMask: Tensor, hooks: HookPoints): Tensor {
    x = hooks.run('resid_pre', x);
    const self = this.selfAttention.forward(x, { mask: causal, scale: this.scale, hooks: hooks.scope('attn.') });
    x = hooks.run('ln1', this.norm1.forward(hooks.run('resid_mid', add(x, self.out))));
    const cross = this.crossAttention.forward(x, {
      context: memory,
      mask: memoryMask,
      scale: this.scale,
      hooks: hooks.scope('cross_attn.'),
    });
    x = hooks.run('ln_cross', this.norm2.forward(hooks.run('resid_mid_cross', add(x, cross.out))));
    const ff = this.feedForward.forward(x, hooks.scope('mlp.'));
    return hooks.run('resid_post', hooks.run('ln2', this.norm3.forward(add(x, ff))));
  }
}

/** Additive key-padding mask [batch, 1, 1, keys]: −∞ where attention_mask is 0, as nn.Transformer's boolean mask. */
function keyPaddingMask(attentionMask: Tensor): Tensor {
  const [batch, keys] = attentionMask.shape;
  const out = new Float32Array(batch * keys);
  for (let i = 0; i < out.length; i++) out[i] = attentionMask.data[i] ? 0 : -Infinity;
  return new Tensor('f32', [batch, 1, 1, keys], out);
}

/** Float causal mask [1, 1, T, T]: 0 on and below the diagonal, −∞ above (nn.Transformer.generate_square_subsequent_mask). */
function subsequentMask(t: number): Tensor {
  const out = new Float32Array(t * t);
  for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) out[i * t + j] = -Infinity;
  return new Tensor('f32', [1, 1, t, t], out);
}

export interface VanillaOutputs {
  srcEmbedded: Tensor;
  tgtEmbedded: Tensor;
  encoderLayerOutputs: Tensor[];
  encoderOutput: Tensor;
  decoderLayerOutputs: Tensor[];
  decoderOutput: Tensor;
  logits: Tensor;
}

export class VanillaTransformer {
  readonly srcEmbed: Tensor;
  readonly tgtEmbed: Tensor;
  readonly positionalEncoding: Tensor;
  readonly encoderLayers: EncoderLayer[];
  readonly decoderLayers: DecoderLayer[];
  readonly encoderNorm?: LayerNorm;
  readonly decoderNorm?: LayerNorm;
  readonly generator: Linear;

  constructor(
    readonly config: VanillaConfig,
    w: Weights,
  ) {
    const c = config;
    const d = c.dModel;
    this.srcEmbed = w.get('src_embed.weight', [c.srcVocabSize, d]);
    this.tgtEmbed = w.get('tgt_embed.weight', [c.tgtVocabSize, d]);
    this.positionalEncoding = w.get('pos_encoding', [c.maxPositions, d]);
    const t = w.scope('transformer');
    this.encoderLayers = Array.from({ length: c.encoderLayers }, (_, i) => new EncoderLayer(t.scope(`encoder.layers.${i}`), c));
    this.decoderLayers = Array.from({ length: c.decoderLayers }, (_, i) => new DecoderLayer(t.scope(`decoder.layers.${i}`), c));
    if (c.finalEncoderNorm) this.encoderNorm = LayerNorm.load(t, 'encoder.norm', d, c.layerNormEps);
    if (c.finalDecoderNorm) this.decoderNorm = LayerNorm.load(t, 'decoder.norm', d, c.layerNormEps);
    this.generator = Linear.load(w, 'generator', d, c.tgtVocabSize);
  }

  /** Token embedding scaled by √d plus the positional encoding (§3.4, §3.5). ids [batch, seq] → [batch, seq, d]. */
  embed(table: Tensor, ids: Tensor, hooks: HookPoints): Tensor {
    const seq = ids.shape[1];
    const tokens = hooks.run('embed', scale(embedding(table, ids), Math.fround(Math.sqrt(this.config.dModel))));
    const positions = hooks.run('pos_embed', this.positionalEncoding.slice(0, 0, seq).reshape([1, seq, this.config.dModel]));
    return add(tokens, positions);
  }

  /** The encoder: a deep representation of the source, [batch, S, d]. */
  encode(srcIds: Tensor, srcMask: Tensor, hooks: HookPoints = noHooks): { output: Tensor; embedded: Tensor; layerOutputs: Tensor[] } {
    const h = hooks.scope('encoder.');
    h.run('tokens', srcIds);
    const embedded = this.embed(this.srcEmbed, srcIds, h);
    const mask = keyPaddingMask(srcMask);
    const layerOutputs: Tensor[] = [];
    let x = embedded;
    this.encoderLayers.forEach((layer, i) => {
      x = layer.forward(x, mask, h.scope(`blocks.${i}.`));
      layerOutputs.push(x);
    });
    const output = this.encoderNorm ? h.run('ln_final', this.encoderNorm.forward(x)) : x;
    return { output, embedded, layerOutputs };
  }

  /** The decoder over target ids with teacher forcing; memory is the encoder output. */
  decode(tgtIds: Tensor, memory: Tensor, srcMask: Tensor, hooks: HookPoints = noHooks): { output: Tensor; embedded: Tensor; layerOutputs: Tensor[]; logits: Tensor } {
    const h = hooks.scope('decoder.');
    h.run('tokens', tgtIds);
    const embedded = this.embed(this.tgtEmbed, tgtIds, h);
    const causal = subsequentMask(tgtIds.shape[1]);
    const memoryMask = keyPaddingMask(srcMask);
    const layerOutputs: Tensor[] = [];
    let x = embedded;
    this.decoderLayers.forEach((layer, i) => {
      x = layer.forward(x, memory, causal, memoryMask, h.scope(`blocks.${i}.`));
      layerOutputs.push(x);
    });
    const output = this.decoderNorm ? h.run('ln_final', this.decoderNorm.forward(x)) : x;
    const logits = hooks.run('logits', this.generator.forward(output)); // [batch, T, tgtVocab]
    return { output, embedded, layerOutputs, logits };
  }

  forward(srcIds: Tensor, srcMask: Tensor, tgtIds: Tensor, hooks: HookPoints = noHooks): VanillaOutputs {
    const enc = this.encode(srcIds, srcMask, hooks);
    const dec = this.decode(tgtIds, enc.output, srcMask, hooks);
    return {
      srcEmbedded: enc.embedded,
      tgtEmbedded: dec.embedded,
      encoderLayerOutputs: enc.layerOutputs,
      encoderOutput: enc.output,
      decoderLayerOutputs: dec.layerOutputs,
      decoderOutput: dec.output,
      logits: dec.logits,
    };
  }
}

