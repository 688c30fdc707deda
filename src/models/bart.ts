/**
 * BART, "Denoising Sequence-to-Sequence Pre-training" (Lewis et al. 2019), as
 * Hugging Face `BartForConditionalGeneration` v4.47 implements it, and Marian
 * (`MarianMTModel`, Junczys-Dowmunt et al. 2018), which is the same post-norm
 * encoder-decoder with sinusoidal positions. The config decides the variant:
 *
 *   embed:   x = tokens[ids] · (√d if scale_embedding) + positions[p (+2 in BART)];  BART: x = LayerNorm(x)
 *   encoder: each layer: x = LN(x + SelfAttn(x)); x = LN(x + FF(x))
 *   decoder: each layer: y = LN(y + CausalSelfAttn(y)); y = LN(y + CrossAttn(y, enc)); y = LN(y + FF(y))
 *   logits = y · sharedᵀ + final_logits_bias
 *
 * BART learns its positions and keeps rows 0 and 1 of the table unused (fairseq
 * reserved them for padding), so position p reads row p+2; Marian computes
 * "sin half | cos half" sinusoids and has no embedding LayerNorm.
 */
import { ConfigError, UnsupportedError } from '../errors.js';
import type { BartConfig } from '../io/config.js';
import { parseModelConfig } from '../io/config.js';
import type { DecodingSession, GenerativeModel, SessionInputs } from '../generation/types.js';
import { add, addInPlace, causalMask, embedding, embeddingInto, linear, matmulInto, paddingMask, scale, scaleInto, type Workspace } from '../ops/index.js';
import { needsGrad } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';
import { elementwiseKernel } from '../kernels/elementwise.js';
import { MultiHeadAttention } from '../nn/attention.js';
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
import { LayerNorm, Linear } from '../nn/linear.js';
import { sinusoidalHalves } from '../nn/positional.js';
import type { Weights } from '../nn/weights.js';

export type { BartConfig } from '../io/config.js';

/** BART and Marian use torch.nn.LayerNorm's default epsilon. */
const LAYER_NORM_EPS = 1e-5;

/** Read a BART or Marian config.json object; pre-norm variants (mBART-style) are refused, not run as post-norm. */
export function parseBartConfig(raw: Record<string, unknown>, file = 'config.json'): BartConfig {
  for (const key of ['normalize_before', 'add_final_layer_norm']) {
    if (raw[key] === true) throw new UnsupportedError(`${file}: "${key}": true (pre-norm, mBART-style) is not supported; glassformer runs post-norm BART and Marian`);
  }
  const config = parseModelConfig(raw, file);
  if (config.modelType !== 'bart' && config.modelType !== 'marian') {
    throw new ConfigError(`${file}: field "model_type" is "${config.modelType}", expected "bart" or "marian"`);
  }
  return config;
}

/** BartAttention: q, k, v, out_proj with biases. */
function loadAttention(w: Weights, d: number, heads: number): MultiHeadAttention {
  const proj = (name: string) => Linear.load(w, name, d, d);
  return new MultiHeadAttention(proj('q_proj'), proj('k_proj'), proj('v_proj'), proj('out_proj'), heads);
}

/** Per stack: the encoder and decoder may differ in heads and feed-forward width. */
interface StackShape {
  d: number;
  heads: number;
  ffn: number;
  /** The feed-forward activation's config name. */
  act: string;
}

function loadFeedForward(w: Weights, s: StackShape): FeedForward {
  return new FeedForward(Linear.load(w, 'fc1', s.d, s.ffn), Linear.load(w, 'fc2', s.ffn, s.d), s.act);
}

/** BART scales the projected queries by dHead^-0.5 before q·kᵀ (not the scores after). */
const queryScale = (s: StackShape) => Math.fround((s.d / s.heads) ** -0.5);

/**
 * Post-norm's residual step, LN(x + sublayer), the sum seen by the hook
 * `sumName` when given. With no hook and no gradients, one native pass adds
 * and normalises (the same f32 sums as add, then layerNorm), into `buffers`
 * when given; nothing keeps the sum.
 */
function addNorm(x: Tensor, sublayer: Tensor, norm: LayerNorm, hooks: HookPoints, sumName: string | undefined, buffers: Workspace | undefined): Tensor {
  const kernel = elementwiseKernel();
  if (!kernel || hooks.active || needsGrad(x, sublayer, norm.weight) || needsGrad(norm.bias)) {
    const sum = add(x, sublayer);
    return norm.forward(sumName ? hooks.run(sumName, sum) : sum);
  }
  const d = x.shape[x.rank - 1];
  const out = buffers?.f32(x.shape) ?? new Tensor('f32', x.shape, new Float32Array(x.size));
  kernel.layerNorm(x.f32(), sublayer.f32(), null, norm.weight.f32(), norm.bias ? norm.bias.f32() : null, out.data as Float32Array, x.size / d, d, norm.eps);
  return out;
}

/** Encoder layer (`encoder.layers.{i}`), post-norm: x = LN(x + SelfAttn(x)); x = LN(x + FF(x)). */
class EncoderLayer {
  readonly selfAttention: MultiHeadAttention;
  readonly selfAttentionNorm: LayerNorm;
  readonly feedForward: FeedForward;
  readonly finalNorm: LayerNorm;
  private readonly queryScale: number;

  constructor(w: Weights, s: StackShape) {
    this.selfAttention = loadAttention(w.scope('self_attn'), s.d, s.heads);
    this.selfAttentionNorm = LayerNorm.load(w, 'self_attn_layer_norm', s.d, LAYER_NORM_EPS);
    this.feedForward = loadFeedForward(w, s);
    this.finalNorm = LayerNorm.load(w, 'final_layer_norm', s.d, LAYER_NORM_EPS);
    this.queryScale = queryScale(s);
  }

  /** x [batch, S, d]; mask [batch, 1, 1, S]. With `withPattern` false the fused attention skips the pattern. */
  forward(x: Tensor, mask: Tensor, hooks: HookPoints, withPattern = true): { x: Tensor; pattern?: Tensor } {
    x = hooks.run('resid_pre', x);
    const attention = hooks.scope('attn.');
    const self = attendTo(this.selfAttention, x, projectKeysValues(this.selfAttention, x, attention), { queryScale: this.queryScale, mask, hooks: attention, withPattern });
    x = hooks.run('ln1', addNorm(x, self.out, this.selfAttentionNorm, hooks, 'resid_mid', undefined));
    const ff = this.feedForward.forward(x, hooks.scope('mlp.'));
    return { x: hooks.run('resid_post', hooks.run('ln2', addNorm(x, ff, this.finalNorm, hooks, undefined, undefined))), pattern: self.pattern };
  }
}

/** Decoder layer (`decoder.layers.{i}`): causal self-attention, cross-attention (encoder_attn), feed-forward; each residual then LayerNorm. */
class DecoderLayer {
  readonly selfAttention: MultiHeadAttention;
  readonly selfAttentionNorm: LayerNorm;
  readonly crossAttention: MultiHeadAttention;
  readonly crossAttentionNorm: LayerNorm;
  readonly feedForward: FeedForward;
  readonly finalNorm: LayerNorm;
  private readonly queryScale: number;

  constructor(w: Weights, s: StackShape) {
    this.selfAttention = loadAttention(w.scope('self_attn'), s.d, s.heads);
    this.selfAttentionNorm = LayerNorm.load(w, 'self_attn_layer_norm', s.d, LAYER_NORM_EPS);
    this.crossAttention = loadAttention(w.scope('encoder_attn'), s.d, s.heads);
    this.crossAttentionNorm = LayerNorm.load(w, 'encoder_attn_layer_norm', s.d, LAYER_NORM_EPS);
    this.feedForward = loadFeedForward(w, s);
    this.finalNorm = LayerNorm.load(w, 'final_layer_norm', s.d, LAYER_NORM_EPS);
    this.queryScale = queryScale(s);
  }

  /**
   * y [rows, n, d] for the n new positions; causal [1, 1, n, past+n] (none for
   * one position, which sees every key). With `withPattern` false the fused
   * attention skips the patterns; with `buffers` (a decoding session's, no
   * hook attached) every intermediate is written into its tensors.
   */
  forward(y: Tensor, i: number, causal: Tensor | undefined, cache: EncoderDecoderCache, hooks: HookPoints, withPattern = true, buffers?: Workspace): { y: Tensor; pattern?: Tensor; crossPattern?: Tensor } {
    y = hooks.run('resid_pre', y);
    const self = attendToCache(this.selfAttention, y, cache.self, i, { queryScale: this.queryScale, mask: causal, hooks: hooks.scope('attn.'), withPattern, buffers });
    y = hooks.run('ln1', addNorm(y, self.out, this.selfAttentionNorm, hooks, 'resid_mid', buffers));
    const cross = attendTo(this.crossAttention, y, cache.cross[i], { queryScale: this.queryScale, mask: cache.encoderMask, hooks: hooks.scope('cross_attn.'), withPattern, buffers });
    y = hooks.run('ln_cross', addNorm(y, cross.out, this.crossAttentionNorm, hooks, 'resid_mid_cross', buffers));
    const ff = this.feedForward.forward(y, hooks.scope('mlp.'), buffers);
    return { y: hooks.run('resid_post', hooks.run('ln2', addNorm(y, ff, this.finalNorm, hooks, undefined, buffers))), pattern: self.pattern, crossPattern: cross.pattern };
  }
}

/** Token embedding, positions and (BART) the embedding LayerNorm of one stack. */
class Embeddings {
  constructor(
    readonly tokens: Tensor,
    /** [rows, d]: learned (BART, offset rows first) or the computed sinusoids (Marian). */
    readonly positions: Tensor,
    readonly positionOffset: number,
    readonly tokenScale: number,
    readonly norm?: LayerNorm,
  ) {}

  /**
   * ids [rows, n] at positions past … past+n−1 → [rows, n, d]. Hook names
   * embed, pos_embed, ln_embed. With `buffers` (a decoding session's, no hook
   * attached) written into its tensors.
   */
  forward(ids: Tensor, past: number, hooks: HookPoints, buffers?: Workspace): Tensor {
    const [, n] = ids.shape;
    const d = this.tokens.shape[1];
    const first = past + this.positionOffset;
    if (first + n > this.positions.shape[0]) {
      throw new ConfigError(`position ${past + n - 1} is beyond max_position_embeddings (${this.positions.shape[0] - this.positionOffset} positions)`);
    }
    if (buffers && !hooks.active && !needsGrad(this.tokens, this.positions, this.norm?.weight) && !needsGrad(this.norm?.bias)) return this.embedInto(ids, first, buffers);
    let tokens = embedding(this.tokens, ids); // [rows, n, d]
    if (this.tokenScale !== 1) tokens = scale(tokens, this.tokenScale);
    tokens = hooks.run('embed', tokens);
    const positions = hooks.run('pos_embed', this.positions.slice(0, first, first + n).reshape([1, n, d]));
    const x = add(tokens, positions);
    return this.norm ? hooks.run('ln_embed', this.norm.forward(x)) : x;
  }

  /** `forward`'s values in the workspace's tensors: the token rows scaled in place, the position rows added to them, the norm beside. */
  private embedInto(ids: Tensor, first: number, buffers: Workspace): Tensor {
    const [rows, n] = ids.shape;
    const d = this.tokens.shape[1];
    const x = embeddingInto(this.tokens, ids, buffers.f32([rows, n, d])); // [rows, n, d]
    if (this.tokenScale !== 1) scaleInto(x, this.tokenScale, x);
    const at = buffers.i32([n]);
    for (let p = 0; p < n; p++) at.data[p] = first + p;
    addInPlace(x, embeddingInto(this.positions, at, buffers.f32([n, d]))); // [n, d] over every row
    return this.norm ? this.norm.forward(x, buffers.f32(x.shape)) : x;
  }
}

export interface BartEncoderOutput {
  output: Tensor;
  /** HF `hidden_states`: the embedding output, then each layer's output (no final norm). */
  hiddenStates: Tensor[];
  attentions: Tensor[];
}

export interface BartDecoderOutput {
  logits: Tensor;
  output: Tensor;
  hiddenStates: Tensor[];
  attentions: Tensor[];
  crossAttentions: Tensor[];
}

export class BartModel implements GenerativeModel {
  readonly isEncoderDecoder = true;
  readonly vocabSize: number;
  readonly encoderEmbeddings: Embeddings;
  readonly decoderEmbeddings: Embeddings;
  readonly encoderLayers: EncoderLayer[];
  readonly decoderLayers: DecoderLayer[];
  /** The output projection [vocab, d]: the decoder token embedding unless the checkpoint unties it. */
  readonly lmHead: Tensor;
  /** `final_logits_bias` [1, vocab]; zeros when the checkpoint lacks it, as HF leaves the buffer. */
  readonly finalLogitsBias: Tensor;

  constructor(
    readonly config: BartConfig,
    w: Weights,
  ) {
    const c = config;
    const d = c.dModel;
    const m = w.scope('model');
    this.vocabSize = c.decoderVocabSize;
    const sharedTokens = c.shareEncoderDecoderEmbeddings ? m.get('shared.weight', [c.vocabSize, d]) : undefined;
    const encoderTokens = sharedTokens ?? m.get('encoder.embed_tokens.weight', [c.vocabSize, d]);
    const decoderTokens = sharedTokens ?? m.get('decoder.embed_tokens.weight', [c.decoderVocabSize, d]);
    const tokenScale = c.scaleEmbedding ? Math.fround(Math.sqrt(d)) : 1;
    const stackEmbeddings = (stack: Weights, tokens: Tensor): Embeddings => {
      if (c.positionEmbedding === 'sinusoidal') return new Embeddings(tokens, sinusoidalHalves(c.maxPositionEmbeddings, d), 0, tokenScale);
      const rows = c.maxPositionEmbeddings + c.positionOffset;
      const norm = c.normalizeEmbedding ? LayerNorm.load(stack, 'layernorm_embedding', d, LAYER_NORM_EPS) : undefined;
      return new Embeddings(tokens, stack.get('embed_positions.weight', [rows, d]), c.positionOffset, tokenScale, norm);
    };
    const encoder = m.scope('encoder');
    const decoder = m.scope('decoder');
    this.encoderEmbeddings = stackEmbeddings(encoder, encoderTokens);
    this.decoderEmbeddings = stackEmbeddings(decoder, decoderTokens);
    const act = c.activationFunction;
    const encoderShape: StackShape = { d, heads: c.encoderAttentionHeads, ffn: c.encoderFfnDim, act };
    const decoderShape: StackShape = { d, heads: c.decoderAttentionHeads, ffn: c.decoderFfnDim, act };
    this.encoderLayers = Array.from({ length: c.encoderLayers }, (_, i) => new EncoderLayer(encoder.scope(`layers.${i}`), encoderShape));
    this.decoderLayers = Array.from({ length: c.decoderLayers }, (_, i) => new DecoderLayer(decoder.scope(`layers.${i}`), decoderShape));
    this.lmHead = c.tieWordEmbeddings ? decoderTokens : w.get('lm_head.weight', [c.decoderVocabSize, d]);
    this.finalLogitsBias = w.maybe('final_logits_bias', [1, c.decoderVocabSize]) ?? Tensor.zeros([1, c.decoderVocabSize]);
  }

  /** The encoder: ids and attention mask [batch, S] → contextual vectors [batch, S, d]; `options`: skip the patterns nobody reads. */
  encode(ids: Tensor, attentionMask: Tensor, hooks: HookPoints = noHooks, options: EncodeOptions = {}): BartEncoderOutput {
    const h = hooks.scope('encoder.');
    h.run('tokens', ids);
    let x = this.encoderEmbeddings.forward(ids, 0, h); // [batch, S, d]
    const mask = paddingMask(attentionMask); // [batch, 1, 1, S]
    const hiddenStates: Tensor[] = [x];
    const attentions: Tensor[] = [];
    this.encoderLayers.forEach((layer, i) => {
      const out = layer.forward(x, mask, h.scope(`blocks.${i}.`), options.outputAttentions !== false);
      x = out.x;
      hiddenStates.push(x);
      if (out.pattern) attentions.push(out.pattern);
    });
    return { output: x, hiddenStates, attentions };
  }

  /** A decoder cache for `rows` rows attending to the encoder output [rows, S, d]; `sources` names each row's input (default: all distinct). */
  startCache(encoderOutput: Tensor, attentionMask: Tensor, hooks: HookPoints = noHooks, sources?: readonly number[]): EncoderDecoderCache {
    const h = hooks.scope('decoder.');
    const cross = this.decoderLayers.map((layer, i) => projectKeysValues(layer.crossAttention, encoderOutput, h.scope(`blocks.${i}.cross_attn.`)));
    return new EncoderDecoderCache(new KVCache(this.decoderLayers.length), cross, paddingMask(attentionMask), sources);
  }

  /**
   * The decoder over new tokens [rows, n] after the `cache.length` already fed → logits [rows, n, vocab].
   * `options`: skip the patterns nobody reads, write into a decoding session's buffers (see `DecodeOptions`).
   */
  decode(ids: Tensor, cache: EncoderDecoderCache, hooks: HookPoints = noHooks, options: DecodeOptions = {}): BartDecoderOutput {
    const hooked = hooks.active;
    const h = hooks.scope('decoder.');
    const buffers = hooked ? undefined : options.buffers;
    const withPattern = options.outputAttentions !== false;
    const [, n] = ids.shape;
    const past = cache.length;
    h.run('tokens', ids);
    let y = this.decoderEmbeddings.forward(ids, past, h, buffers); // [rows, n, d]
    // One new position sees every cached key: its causal mask would be all zeros.
    const causal = n > 1 ? causalMask(n, past + n) : undefined; // [1, 1, n, past+n]
    const hiddenStates: Tensor[] = [y];
    const attentions: Tensor[] = [];
    const crossAttentions: Tensor[] = [];
    this.decoderLayers.forEach((layer, i) => {
      // Without hooks no scope name is built (a decode step runs this for every layer).
      const out = layer.forward(y, i, causal, cache, hooked ? h.scope(`blocks.${i}.`) : noHooks, withPattern, buffers);
      y = out.y;
      hiddenStates.push(y);
      if (out.pattern) attentions.push(out.pattern);
      if (out.crossPattern) crossAttentions.push(out.crossPattern);
    });
    const logits = hookLogits(hooks, this.logits(y, buffers)); // [rows, n, vocab]
    return { logits, output: y, hiddenStates, attentions, crossAttentions };
  }

  /** y · sharedᵀ + final_logits_bias: y [rows, n, d] → [rows, n, vocab]; into `buffers` when given (the bias added in place). */
  private logits(y: Tensor, buffers: Workspace | undefined): Tensor {
    if (!buffers || needsGrad(y, this.lmHead, this.finalLogitsBias)) return add(linear(y, this.lmHead), this.finalLogitsBias);
    const logits = matmulInto(y, this.lmHead, buffers.f32([...y.shape.slice(0, -1), this.vocabSize]), { transposeB: true });
    return addInPlace(logits, this.finalLogitsBias);
  }

  /** Teacher-forced pass: encoder over the input, decoder over decoder_input_ids. */
  forward(ids: Tensor, attentionMask: Tensor, decoderIds: Tensor, hooks: HookPoints = noHooks): { encoder: BartEncoderOutput; decoder: BartDecoderOutput } {
    const encoder = this.encode(ids, attentionMask, hooks);
    const decoder = this.decode(decoderIds, this.startCache(encoder.output, attentionMask, hooks), hooks);
    return { encoder, decoder };
  }

  startSession(inputs: SessionInputs, hooks: HookPoints = noHooks): DecodingSession {
    return startEncoderDecoderSession(this, inputs, hooks);
  }
}
