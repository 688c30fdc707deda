/**
 * T5, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
 * Transformer" (Raffel et al. 2020), as Hugging Face `T5ForConditionalGeneration`
 * v4.47 implements it; also T5 v1.1, Flan-T5 and mT5 (gated-GELU, untied head).
 *
 *   encoder: x = shared[ids];  each block: x += SelfAttn(RMSNorm(x), bias); x += FF(RMSNorm(x));  RMSNorm
 *   decoder: y = shared[dec];  each block: y += SelfAttn(RMSNorm(y), bias + causal); y += CrossAttn(RMSNorm(y), enc);
 *            y += FF(RMSNorm(y));  RMSNorm;  logits = y · d^-0.5 · sharedᵀ (tied) or lm_head(y) (untied)
 *
 * Particular to T5: no absolute positions but a learned relative position bias
 * computed in layer 0 and shared by every layer of its stack; no 1/√d scaling of
 * attention scores (Mesh TensorFlow folds it into the initialisation of q);
 * RMSNorm without bias or mean subtraction; no biases anywhere.
 */
import { ConfigError } from '../errors.js';
import type { T5Config } from '../io/config.js';
import { parseModelConfig } from '../io/config.js';
import type { GenerativeModel, SessionInputs, DecodingSession } from '../generation/types.js';
import { add, addInPlace, causalMask, embedding, embeddingInto, linear, matmulInto, paddingMask, scale, scaleInto, type Workspace } from '../ops/index.js';
import { needsGrad } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';
import { MultiHeadAttention, type MaskRows } from '../nn/attention.js';
import {
  attendTo,
  attendToCache,
  EncoderDecoderCache,
  projectKeysValues,
  startEncoderDecoderSession,
  type DecodeOptions,
  type EncodeOptions,
} from '../nn/encoder-decoder-cache.js';
import { FeedForward } from '../nn/feed-forward.js';
import { noHooks, type HookPoints, hookLogits } from '../nn/hooks.js';
import { KVCache } from '../nn/kv-cache.js';
import { Linear, RMSNorm } from '../nn/linear.js';
import { relativePositionBias, relativePositionBiasRow, type BucketOptions } from '../nn/relative-position.js';
import type { Weights } from '../nn/weights.js';

export type { T5Config } from '../io/config.js';

/** Read a T5 or mT5 config.json object (io/config.ts holds the v4.47 defaults of both). */
export function parseT5Config(raw: Record<string, unknown>, file = 'config.json'): T5Config {
  const config = parseModelConfig(raw, file);
  if (config.modelType !== 't5' && config.modelType !== 'mt5') {
    throw new ConfigError(`${file}: field "model_type" is "${config.modelType}", expected "t5" or "mt5"`);
  }
  return config;
}

/** T5's attention: q, k, v, o without biases; the heads are d_kv wide (not necessarily d_model / heads). */
function loadAttention(w: Weights, c: T5Config): MultiHeadAttention {
  const inner = c.numHeads * c.dKv;
  const proj = (name: string, from: number, to: number) => Linear.load(w, name, from, to, false);
  return new MultiHeadAttention(proj('q', c.dModel, inner), proj('k', c.dModel, inner), proj('v', c.dModel, inner), proj('o', inner, c.dModel), c.numHeads);
}

/** DenseReluDense: wo(act(wi x)), or the gated form wo(act(wi_0 x) ⊙ wi_1 x) of T5 v1.1 (Shazeer 2020). */
function loadFeedForward(w: Weights, c: T5Config): FeedForward {
  const ff = w.scope('DenseReluDense');
  const act = c.denseActFn;
  const wo = Linear.load(ff, 'wo', c.dFf, c.dModel, false);
  if (c.isGatedAct) return new FeedForward(Linear.load(ff, 'wi_1', c.dModel, c.dFf, false), wo, act, Linear.load(ff, 'wi_0', c.dModel, c.dFf, false));
  return new FeedForward(Linear.load(ff, 'wi', c.dModel, c.dFf, false), wo, act);
}

const norm = (w: Weights, c: T5Config) => RMSNorm.load(w, 'layer_norm', c.dModel, c.layerNormEpsilon);

/**
 * x + sublayer: without hooks or gradients the sublayer's fresh output (which
 * nothing else holds) takes the sum in place; otherwise a new tensor.
 */
function residual(x: Tensor, sublayer: Tensor, hooks: HookPoints): Tensor {
  return hooks.active || needsGrad(x, sublayer) ? add(x, sublayer) : addInPlace(sublayer, x);
}

/** Encoder block (`encoder.block.{i}`): layer.0 self-attention, layer.1 feed-forward, each pre-norm with a residual. */
class EncoderBlock {
  readonly selfAttention: MultiHeadAttention;
  readonly selfAttentionNorm: RMSNorm;
  readonly feedForward: FeedForward;
  readonly feedForwardNorm: RMSNorm;

  constructor(w: Weights, c: T5Config) {
    this.selfAttention = loadAttention(w.scope('layer.0.SelfAttention'), c);
    this.selfAttentionNorm = norm(w.scope('layer.0'), c);
    this.feedForward = loadFeedForward(w.scope('layer.1'), c);
    this.feedForwardNorm = norm(w.scope('layer.1'), c);
  }

  /** x [batch, S, d]; bias [batch, heads, S, S] already holds the padding mask. With `withPattern` false the fused attention skips the pattern. */
  forward(x: Tensor, bias: Tensor, hooks: HookPoints, withPattern = true): { x: Tensor; pattern?: Tensor } {
    x = hooks.run('resid_pre', x);
    const normed = hooks.run('ln1', this.selfAttentionNorm.forward(x));
    const attention = hooks.scope('attn.');
    const self = attendTo(this.selfAttention, normed, projectKeysValues(this.selfAttention, normed, attention), { positionBias: bias, hooks: attention, withPattern });
    x = hooks.run('resid_mid', residual(x, self.out, hooks));
    const ff = this.feedForward.forward(hooks.run('ln2', this.feedForwardNorm.forward(x)), hooks.scope('mlp.'));
    return { x: hooks.run('resid_post', residual(x, ff, hooks)), pattern: self.pattern };
  }
}

/** Decoder block (`decoder.block.{i}`): layer.0 causal self-attention, layer.1 cross-attention (EncDecAttention), layer.2 feed-forward. */
class DecoderBlock {
  readonly selfAttention: MultiHeadAttention;
  readonly selfAttentionNorm: RMSNorm;
  readonly crossAttention: MultiHeadAttention;
  readonly crossAttentionNorm: RMSNorm;
  readonly feedForward: FeedForward;
  readonly feedForwardNorm: RMSNorm;

  constructor(w: Weights, c: T5Config) {
    this.selfAttention = loadAttention(w.scope('layer.0.SelfAttention'), c);
    this.selfAttentionNorm = norm(w.scope('layer.0'), c);
    this.crossAttention = loadAttention(w.scope('layer.1.EncDecAttention'), c);
    this.crossAttentionNorm = norm(w.scope('layer.1'), c);
    this.feedForward = loadFeedForward(w.scope('layer.2'), c);
    this.feedForwardNorm = norm(w.scope('layer.2'), c);
  }

  /**
   * y [rows, n, d] for the n new positions; selfBias [1|rows, heads, n, past+n]
   * holds the causal mask. With `withPattern` false the fused attention skips
   * the patterns; with `buffers` (a decoding session's, no hook attached)
   * every intermediate is written into its tensors.
   */
  forward(y: Tensor, i: number, selfBias: Tensor | MaskRows, cache: EncoderDecoderCache, hooks: HookPoints, withPattern = true, buffers?: Workspace): { y: Tensor; pattern?: Tensor; crossPattern?: Tensor } {
    y = hooks.run('resid_pre', y);
    const normed = hooks.run('ln1', this.selfAttentionNorm.forward(y, buffers?.f32(y.shape)));
    const self = attendToCache(this.selfAttention, normed, cache.self, i, { positionBias: selfBias, hooks: hooks.scope('attn.'), withPattern, buffers });
    y = hooks.run('resid_mid', residual(y, self.out, hooks));
    const crossIn = hooks.run('ln_cross', this.crossAttentionNorm.forward(y, buffers?.f32(y.shape)));
    // Cross-attention has no position bias, only the encoder padding mask.
    const cross = attendTo(this.crossAttention, crossIn, cache.cross[i], { mask: cache.encoderMask, hooks: hooks.scope('cross_attn.'), withPattern, buffers });
    y = hooks.run('resid_mid_cross', residual(y, cross.out, hooks));
    const ff = this.feedForward.forward(hooks.run('ln2', this.feedForwardNorm.forward(y, buffers?.f32(y.shape))), hooks.scope('mlp.'), buffers);
    return { y: hooks.run('resid_post', residual(y, ff, hooks)), pattern: self.pattern, crossPattern: cross.pattern };
  }
}

export interface T5EncoderOutput {
  /** After the final RMSNorm, [batch, S, d]. */
  output: Tensor;
  /** HF `hidden_states`: the embeddings, each block's output, the last one after the final norm. */
  hiddenStates: Tensor[];
  attentions: Tensor[];
  /** Layer 0's relative position bias without the mask, [1, heads, S, S]. */
  positionBias: Tensor;
}

export interface T5DecoderOutput {
  logits: Tensor;
  output: Tensor;
  hiddenStates: Tensor[];
  attentions: Tensor[];
  crossAttentions: Tensor[];
  /** Layer 0's relative position bias without the mask, [1, heads, n, past+n]; absent when a decoding session's step wrote it into its buffers. */
  positionBias?: Tensor;
}

export class T5Model implements GenerativeModel {
  readonly isEncoderDecoder = true;
  readonly vocabSize: number;
  readonly shared: Tensor;
  readonly encoderBlocks: EncoderBlock[];
  readonly decoderBlocks: DecoderBlock[];
  /** `relative_attention_bias.weight` [numBuckets, heads] of each stack's block 0. */
  readonly encoderRelativeBias: Tensor;
  readonly decoderRelativeBias: Tensor;
  readonly encoderFinalNorm: RMSNorm;
  readonly decoderFinalNorm: RMSNorm;
  /** Untied checkpoints (T5 v1.1, Flan-T5, mT5) have their own lm_head. */
  readonly lmHead?: Tensor;
  /** The decoder's buckets (causal: only the past), made once rather than at every step. */
  private readonly decoderBuckets: BucketOptions;

  constructor(
    readonly config: T5Config,
    w: Weights,
  ) {
    const c = config;
    this.vocabSize = c.vocabSize;
    this.shared = w.get('shared.weight', [c.vocabSize, c.dModel]);
    const encoder = w.scope('encoder');
    const decoder = w.scope('decoder');
    this.encoderBlocks = Array.from({ length: c.numLayers }, (_, i) => new EncoderBlock(encoder.scope(`block.${i}`), c));
    this.decoderBlocks = Array.from({ length: c.numDecoderLayers }, (_, i) => new DecoderBlock(decoder.scope(`block.${i}`), c));
    const biasShape = [c.relativeAttentionNumBuckets, c.numHeads];
    this.encoderRelativeBias = encoder.get('block.0.layer.0.SelfAttention.relative_attention_bias.weight', biasShape);
    this.decoderRelativeBias = decoder.get('block.0.layer.0.SelfAttention.relative_attention_bias.weight', biasShape);
    this.encoderFinalNorm = RMSNorm.load(encoder, 'final_layer_norm', c.dModel, c.layerNormEpsilon);
    this.decoderFinalNorm = RMSNorm.load(decoder, 'final_layer_norm', c.dModel, c.layerNormEpsilon);
    if (!c.tieWordEmbeddings) this.lmHead = w.get('lm_head.weight', [c.vocabSize, c.dModel]);
    this.decoderBuckets = this.buckets(false);
  }

  private buckets(bidirectional: boolean): BucketOptions {
    return { bidirectional, numBuckets: this.config.relativeAttentionNumBuckets, maxDistance: this.config.relativeAttentionMaxDistance };
  }

  /** The encoder: ids and attention mask [batch, S] → contextual vectors [batch, S, d]; `options`: skip the patterns nobody reads. */
  encode(ids: Tensor, attentionMask: Tensor, hooks: HookPoints = noHooks, options: EncodeOptions = {}): T5EncoderOutput {
    const h = hooks.scope('encoder.');
    const seq = ids.shape[1];
    h.run('tokens', ids);
    let x = h.run('embed', embedding(this.shared, ids)); // [batch, S, d]
    const positionBias = h.run('position_bias', relativePositionBias(this.encoderRelativeBias, seq, seq, this.buckets(true)));
    const bias = add(positionBias, paddingMask(attentionMask)); // [batch, heads, S, S]
    const hiddenStates: Tensor[] = [];
    const attentions: Tensor[] = [];
    this.encoderBlocks.forEach((block, i) => {
      hiddenStates.push(x);
      const out = block.forward(x, bias, h.scope(`blocks.${i}.`), options.outputAttentions !== false);
      x = out.x;
      if (out.pattern) attentions.push(out.pattern);
    });
    const output = h.run('ln_final', this.encoderFinalNorm.forward(x));
    hiddenStates.push(output);
    return { output, hiddenStates, attentions, positionBias };
  }

  /** A decoder cache for `rows` rows attending to the encoder output [rows, S, d]; `sources` names each row's input (default: all distinct). */
  startCache(encoderOutput: Tensor, attentionMask: Tensor, hooks: HookPoints = noHooks, sources?: readonly number[]): EncoderDecoderCache {
    const h = hooks.scope('decoder.');
    const cross = this.decoderBlocks.map((block, i) => projectKeysValues(block.crossAttention, encoderOutput, h.scope(`blocks.${i}.cross_attn.`)));
    return new EncoderDecoderCache(new KVCache(this.decoderBlocks.length), cross, paddingMask(attentionMask), sources);
  }

  /**
   * The decoder over new tokens [rows, n] after the `cache.length` already fed → logits [rows, n, vocab].
   * `options`: skip the patterns nobody reads, write into a decoding session's buffers (see `DecodeOptions`).
   */
  decode(ids: Tensor, cache: EncoderDecoderCache, hooks: HookPoints = noHooks, options: DecodeOptions = {}): T5DecoderOutput {
    const hooked = hooks.active;
    const h = hooks.scope('decoder.');
    const buffers = hooked ? undefined : options.buffers;
    const withPattern = options.outputAttentions !== false;
    const [rows, n] = ids.shape;
    h.run('tokens', ids);
    const embedded = buffers && !needsGrad(this.shared) ? embeddingInto(this.shared, ids, buffers.f32([rows, n, this.config.dModel])) : embedding(this.shared, ids);
    let y = h.run('embed', embedded); // [rows, n, d]
    const { selfBias, positionBias } = this.selfAttentionBias(n, cache.length, h, buffers);
    const hiddenStates: Tensor[] = [];
    const attentions: Tensor[] = [];
    const crossAttentions: Tensor[] = [];
    this.decoderBlocks.forEach((block, i) => {
      hiddenStates.push(y);
      // Without hooks no scope name is built (a decode step runs this for every block).
      const out = block.forward(y, i, selfBias, cache, hooked ? h.scope(`blocks.${i}.`) : noHooks, withPattern, buffers);
      y = out.y;
      if (out.pattern) attentions.push(out.pattern);
      if (out.crossPattern) crossAttentions.push(out.crossPattern);
    });
    const output = h.run('ln_final', this.decoderFinalNorm.forward(y, buffers?.f32(y.shape)));
    hiddenStates.push(output);
    return { logits: hookLogits(hooks, this.logits(output, buffers)), output, hiddenStates, attentions, crossAttentions, positionBias };
  }

  /**
   * The decoder self-attention's additive term for n new positions after
   * `past`: the relative position bias against every key (hook name
   * position_bias), plus the causal mask when several positions are new. A
   * decoding session's step of one position (`buffers`, no gradient to the
   * table) writes the bias row of each head into the session's buffer, read
   * through strides, instead of a tensor per step.
   */
  private selfAttentionBias(n: number, past: number, hooks: HookPoints, buffers: Workspace | undefined): { selfBias: Tensor | MaskRows; positionBias?: Tensor } {
    const keys = past + n;
    if (buffers && n === 1 && !needsGrad(this.decoderRelativeBias)) {
      const heads = this.config.numHeads;
      // Room for 64 keys at first, as the KV cache, then doubling: the rows grow by one key a step.
      const data = buffers.growing('position bias', heads * Math.max(keys, 64));
      relativePositionBiasRow(this.decoderRelativeBias, keys, this.decoderBuckets, data);
      return { selfBias: { data, shape: [1, heads, 1, keys], strides: [0, keys, 0, 1] } }; // [1, heads, 1, keys]
    }
    const positionBias = hooks.run('position_bias', relativePositionBias(this.decoderRelativeBias, n, keys, this.decoderBuckets, past));
    // One new position sees every cached key: its causal mask would be all zeros.
    return { selfBias: n > 1 ? add(positionBias, causalMask(n, keys)) : positionBias, positionBias }; // [1, heads, n, keys]
  }

  /**
   * Project to the vocabulary. The tied head rescales by d_model^-0.5 first
   * (Mesh TensorFlow's convention, kept by HF); untied heads do not. With
   * `buffers` (a decoding session's) the scaled rows and the logits are
   * written into its tensors.
   */
  logits(output: Tensor, buffers?: Workspace): Tensor {
    const head = this.lmHead ?? this.shared;
    const into = buffers && !needsGrad(output, head) ? buffers.f32([...output.shape.slice(0, -1), this.vocabSize]) : undefined; // [rows, n, vocab]
    let x = output;
    if (!this.lmHead) {
      const s = Math.fround(this.config.dModel ** -0.5);
      x = into && buffers ? scaleInto(output, s, buffers.f32(output.shape)) : scale(output, s);
    }
    return into ? matmulInto(x, head, into, { transposeB: true }) : linear(x, head);
  }

  /** Teacher-forced pass: encoder over the input, decoder over decoder_input_ids. */
  forward(ids: Tensor, attentionMask: Tensor, decoderIds: Tensor, hooks: HookPoints = noHooks): { encoder: T5EncoderOutput; decoder: T5DecoderOutput } {
    const encoder = this.encode(ids, attentionMask, hooks);
    const decoder = this.decode(decoderIds, this.startCache(encoder.output, attentionMask, hooks), hooks);
    return { encoder, decoder };
  }

  startSession(inputs: SessionInputs, hooks: HookPoints = noHooks): DecodingSession {
    return startEncoderDecoderSession(this, inputs, hooks);
  }
}
