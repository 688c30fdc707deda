/**
 * The Transformer of "Attention Is All You Need" (Vaswani et al. 2017), as
 * PyTorch's torch.nn.Transformer implements it (post-norm, ReLU, batch first),
 * inside the minimal wrapper of the hf-tiny `vanilla` fixture:
 *
 *   src_x  = src_embed[src] · √d + PE[:S]          tgt_x = tgt_embed[tgt] · √d + PE[:T]
 *   memory = encoder(src_x, padding mask)          dec   = decoder(tgt_x, memory, causal mask)
 *   logits = dec · generatorᵀ + b
 */
import type { VanillaTransformerConfig } from '../io/config.js';
import { add, embedding, scale } from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import { MultiHeadAttention } from '../nn/attention.js';
import { FeedForward } from '../nn/feed-forward.js';
import { noHooks, type HookPoints, hookLogits } from '../nn/hooks.js';
import { LayerNorm, Linear } from '../nn/linear.js';
import type { Weights } from '../nn/weights.js';

/** nn.MultiheadAttention keeps W_q, W_k, W_v stacked in one [3d, d] in_proj_weight. */
function loadMultiheadAttention(w: Weights, d: number, heads: number): MultiHeadAttention {
  const weight = w.get('in_proj_weight', [3 * d, d]);
  const bias = w.get('in_proj_bias', [3 * d]);
  // Views, not copies: training updates in_proj_weight in place and the three parts must see it.
  const part = (i: number) => new Linear(weight.narrowRows(i * d, (i + 1) * d), bias.narrowRows(i * d, (i + 1) * d));
  return new MultiHeadAttention(part(0), part(1), part(2), Linear.load(w, 'out_proj', d, d), heads);
}

function loadFeedForward(w: Weights, c: VanillaTransformerConfig): FeedForward {
  return new FeedForward(Linear.load(w, 'linear1', c.dModel, c.dimFeedforward), Linear.load(w, 'linear2', c.dimFeedforward, c.dModel), c.activation);
}

/**
 * Encoder layer. Post-norm (the paper, §3.1): x = norm1(x + selfAttention(x)); x = norm2(x + feedForward(x)).
 * Pre-norm (`norm_first`, Xiong et al. 2020): x = x + selfAttention(norm1(x)); x = x + feedForward(norm2(x)).
 */
class EncoderLayer {
  readonly selfAttention: MultiHeadAttention;
  readonly feedForward: FeedForward;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  private readonly scale: number;

  constructor(
    w: Weights,
    private readonly c: VanillaTransformerConfig,
  ) {
    this.selfAttention = loadMultiheadAttention(w.scope('self_attn'), c.dModel, c.nhead);
    this.feedForward = loadFeedForward(w, c);
    this.norm1 = LayerNorm.load(w, 'norm1', c.dModel, c.layerNormEps);
    this.norm2 = LayerNorm.load(w, 'norm2', c.dModel, c.layerNormEps);
    this.scale = 1 / Math.sqrt(c.dModel / c.nhead);
  }

  forward(x: Tensor, mask: Tensor, hooks: HookPoints): Tensor {
    x = hooks.run('resid_pre', x);
    const attention = (h: Tensor) => this.selfAttention.forward(h, { mask, scale: this.scale, hooks: hooks.scope('attn.') }).out;
    const mlp = (h: Tensor) => this.feedForward.forward(h, hooks.scope('mlp.'));
    if (this.c.normFirst) {
      x = hooks.run('resid_mid', add(x, attention(hooks.run('ln1', this.norm1.forward(x)))));
      return hooks.run('resid_post', add(x, mlp(hooks.run('ln2', this.norm2.forward(x)))));
    }
    x = hooks.run('ln1', this.norm1.forward(hooks.run('resid_mid', add(x, attention(x)))));
    return hooks.run('resid_post', hooks.run('ln2', this.norm2.forward(add(x, mlp(x)))));
  }
}

/**
 * Decoder layer: masked self-attention, cross-attention to the encoder output
 * (the "memory"), feed-forward; each with its residual and norm, post- or pre-norm as the encoder.
 */
class DecoderLayer {
  readonly selfAttention: MultiHeadAttention;
  readonly crossAttention: MultiHeadAttention;
  readonly feedForward: FeedForward;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly norm3: LayerNorm;
  private readonly scale: number;

  constructor(
    w: Weights,
    private readonly c: VanillaTransformerConfig,
  ) {
    this.selfAttention = loadMultiheadAttention(w.scope('self_attn'), c.dModel, c.nhead);
    this.crossAttention = loadMultiheadAttention(w.scope('multihead_attn'), c.dModel, c.nhead);
    this.feedForward = loadFeedForward(w, c);
    this.norm1 = LayerNorm.load(w, 'norm1', c.dModel, c.layerNormEps);
    this.norm2 = LayerNorm.load(w, 'norm2', c.dModel, c.layerNormEps);
    this.norm3 = LayerNorm.load(w, 'norm3', c.dModel, c.layerNormEps);
    this.scale = 1 / Math.sqrt(c.dModel / c.nhead);
  }

  forward(x: Tensor, memory: Tensor, causal: Tensor, memoryMask: Tensor, hooks: HookPoints): Tensor {
    x = hooks.run('resid_pre', x);
    const selfAttention = (h: Tensor) =>
      this.selfAttention.forward(h, { mask: causal, scale: this.scale, hooks: hooks.scope('attn.') }).out;
    const crossAttention = (h: Tensor) =>
      this.crossAttention.forward(h, { context: memory, mask: memoryMask, scale: this.scale, hooks: hooks.scope('cross_attn.') }).out;
    const mlp = (h: Tensor) => this.feedForward.forward(h, hooks.scope('mlp.'));
    if (this.c.normFirst) {
      x = hooks.run('resid_mid', add(x, selfAttention(hooks.run('ln1', this.norm1.forward(x)))));
      x = hooks.run('resid_mid_cross', add(x, crossAttention(hooks.run('ln_cross', this.norm2.forward(x)))));
      return hooks.run('resid_post', add(x, mlp(hooks.run('ln2', this.norm3.forward(x)))));
    }
    x = hooks.run('ln1', this.norm1.forward(hooks.run('resid_mid', add(x, selfAttention(x)))));
    x = hooks.run('ln_cross', this.norm2.forward(hooks.run('resid_mid_cross', add(x, crossAttention(x)))));
    return hooks.run('resid_post', hooks.run('ln2', this.norm3.forward(add(x, mlp(x)))));
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
    readonly config: VanillaTransformerConfig,
    w: Weights,
  ) {
    const c = config;
    const d = c.dModel;
    this.srcEmbed = w.get('src_embed.weight', [c.srcVocabSize, d]);
    this.tgtEmbed = w.get('tgt_embed.weight', [c.tgtVocabSize, d]);
    this.positionalEncoding = w.get('pos_encoding', [c.maxPositionEmbeddings, d]);
    const t = w.scope('transformer');
    this.encoderLayers = Array.from({ length: c.numEncoderLayers }, (_, i) => new EncoderLayer(t.scope(`encoder.layers.${i}`), c));
    this.decoderLayers = Array.from({ length: c.numDecoderLayers }, (_, i) => new DecoderLayer(t.scope(`decoder.layers.${i}`), c));
    if (c.finalEncoderLayerNorm) this.encoderNorm = LayerNorm.load(t, 'encoder.norm', d, c.layerNormEps);
    if (c.finalDecoderLayerNorm) this.decoderNorm = LayerNorm.load(t, 'decoder.norm', d, c.layerNormEps);
    // A tied output projection reuses the target embedding (Press & Wolf 2017), as §3.4 describes.
    const generatorWeight = c.tieEmbeddings ? this.tgtEmbed : w.get('generator.weight', [c.tgtVocabSize, d]);
    this.generator = new Linear(generatorWeight, c.outputProjectionBias ? w.get('generator.bias', [c.tgtVocabSize]) : undefined);
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
    const logits = hookLogits(hooks, this.generator.forward(output)); // [batch, T, tgtVocab]
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

