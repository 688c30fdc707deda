/**
 * GPT-2 (Radford et al. 2019, "Language Models are Unsupervised Multitask
 * Learners"), as Hugging Face's GPT2LMHeadModel implements it: learned token
 * and position embeddings, pre-norm blocks, a final LayerNorm `ln_f`, and a
 * language-model head tied to the token embedding.
 *
 *   x = wte[ids] + wpe[positions]
 *   x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))          (each block)
 *   logits = ln_f(x) · wteᵀ
 */
import { ConfigError, ShapeError, WeightError } from '../errors.js';
import { add, addInPlace, embedding, embeddingInto, F32_MIN, matmul, type Workspace } from '../ops/index.js';
import { needsGrad } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';
import { fusedAttentionKernel } from '../kernels/attention.js';
import { elementwiseKernel } from '../kernels/elementwise.js';
import { attendMerged, maskTensor, mergedRows, mergeHeads, type MaskRows } from '../nn/attention.js';
import { additiveMask, cachedSelfAttention, causalLMInputs, CausalLMSession, runDecoderStack, type CausalLM, type CausalLMForwardOptions, type CausalLMOutputs, type KeyMask } from '../nn/causal-lm.js';
import { FeedForward } from '../nn/feed-forward.js';
import { noHooks, type HookPoints, hookLogits } from '../nn/hooks.js';
import type { HeadRows, KVCache } from '../nn/kv-cache.js';
import { embeddingBf16 } from '../nn/bf16.js';
import { embeddingInt8, Int8Matrix } from '../nn/int8.js';
import { LayerNorm, linearAny } from '../nn/linear.js';
import type { LinearWeight, Weights } from '../nn/weights.js';
import type { DecodingSession, GenerativeModel, SessionInputs } from '../generation/types.js';
import { parseModelConfig, type Gpt2Config } from '../io/config.js';

/** Read a GPT-2 config.json with io/config.ts's v4.47 defaults. */
export function parseGpt2Config(raw: Record<string, unknown>, file = 'config.json'): Gpt2Config {
  const config = parseModelConfig(raw, file);
  if (config.modelType !== 'gpt2') {
    throw new ConfigError(`${file}: field "model_type" is "${config.modelType}", expected "gpt2"`);
  }
  return config;
}

/** Rows of the token table, whichever dtype it is held in, into `into` when given. ids [batch, seq] → [batch, seq, d]. */
function embedTokens(table: LinearWeight, ids: Tensor, into?: Tensor): Tensor {
  if (table instanceof Int8Matrix) return embeddingInt8(table, ids, into);
  if (table.dtype === 'bf16') return embeddingBf16(table, ids, into);
  return into && !table.requiresGrad ? embeddingInto(table, ids, into) : embedding(table, ids);
}

/**
 * GPT-2's `Conv1D`: a linear map whose weight is stored [in, out] (transposed
 * with respect to nn.Linear), so y = x·W + b. For inference the weight is held
 * transposed, [out, in] as nn.Linear, whatever its dtype: each output is then a
 * dot product over one contiguous row, which decoding streams faster than
 * B's rows side by side (docs/performance.md, "Decode"), int8 scales are per
 * output channel, and prepacking applies. A weight being trained stays as
 * stored, [in, out], so its gradient reaches the parameter.
 */
export class Conv1D {
  constructor(
    readonly weight: LinearWeight,
    readonly bias: Tensor,
    /** Whether `weight` is held [out, in] (inference) rather than [in, out] as stored. */
    readonly transposed: boolean,
  ) {}

  static load(w: Weights, name: string, inFeatures: number, outFeatures: number): Conv1D {
    const scoped = w.scope(name);
    const bias = scoped.get('bias', [outFeatures]);
    if (w.linearDtype === 'f32' && scoped.isTrained('weight')) return new Conv1D(scoped.get('weight', [inFeatures, outFeatures]), bias, false);
    return new Conv1D(scoped.transposedMatrix('weight', [inFeatures, outFeatures]), bias, true); // [out, in]
  }

  /** `into`: where the result may go at inference (see `linearAny`). */
  forward(x: Tensor, into?: Tensor): Tensor {
    if (this.transposed) return linearAny(x, this.weight, this.bias, into);
    return add(matmul(x, this.weight as Tensor), this.bias);
  }

  /** The output's width. */
  get outFeatures(): number {
    return this.weight.shape[this.transposed ? 0 : 1];
  }
}

/**
 * GPT-2's mask as its eager attention applies it: future keys are *replaced* by
 * finfo.min, then the padding term (1 − mask)·finfo.min is *added*; a future
 * padded key therefore reaches −∞. Replacing and adding finfo.min agree in
 * float32 (s + finfo.min rounds to finfo.min), so one additive mask
 * [batch, 1, queries, keys] holding 0, finfo.min or −∞ reproduces it exactly.
 */
export function gpt2AttentionMask(queries: number, keys: number, attentionMask: Tensor): Tensor {
  return gpt2Mask(attentionMask.shape[0], queries, keys, { flags: attentionMask.data, stride: keys }, undefined) as Tensor;
}

/** `gpt2AttentionMask` over a mask read in place, as a new tensor or in a workspace's rows (see `additiveMask`). */
function gpt2Mask(batch: number, queries: number, keys: number, mask: KeyMask, buffers: Workspace | undefined): Tensor | MaskRows {
  const past = keys - queries;
  return additiveMask(batch, queries, keys, mask, buffers, (out, stride) => {
    for (let b = 0; b < batch; b++) {
      for (let i = 0; i < queries; i++) {
        for (let j = 0; j < keys; j++) {
          const future = j > past + i ? F32_MIN : 0;
          const padding = mask.flags[b * mask.stride + j] === 0 ? F32_MIN : 0;
          out[(b * queries + i) * stride + j] = future + padding;
        }
      }
    }
  });
}

/** Causal self-attention with the fused q|k|v projection `c_attn` and the output projection `c_proj`. */
class Gpt2Attention {
  readonly cAttn: Conv1D;
  readonly cProj: Conv1D;
  private readonly heads: number;
  private readonly scale: number;

  constructor(w: Weights, c: Gpt2Config, readonly layer: number) {
    this.cAttn = Conv1D.load(w, 'c_attn', c.nEmbd, 3 * c.nEmbd);
    this.cProj = Conv1D.load(w, 'c_proj', c.nEmbd, c.nEmbd);
    this.heads = c.nHead;
    const dHead = c.nEmbd / c.nHead;
    let scale = c.scaleAttnWeights ? 1 / Math.sqrt(dHead) : 1;
    if (c.scaleAttnByInverseLayerIdx) scale /= layer + 1;
    this.scale = scale;
  }

  /**
   * With `withPattern` false (nothing reads it) the fused path skips the
   * pattern; the unfused path returns it anyway. With `buffers` (a decoding
   * session's workspace) the projections and z are written into its tensors.
   */
  forward(x: Tensor, mask: Tensor | MaskRows, cache: KVCache | undefined, hooks: HookPoints, withPattern = true, buffers?: Workspace): { out: Tensor; pattern?: Tensor } {
    const [batch, seq, d] = x.shape;
    const h = this.heads;
    const projected = this.cAttn.forward(x, buffers?.f32([batch, seq, 3 * d])); // [batch, seq, 3d]
    if (!hooks.active && fusedAttentionKernel() && !needsGrad(projected)) return this.fusedForward(projected, mask, cache, withPattern, buffers);
    // [batch, seq, 3d] → [batch, 3·heads, seq, dHead]: q, k, v are the three consecutive d-column blocks.
    const qkv = projected.reshape([batch, seq, 3 * h, d / h]).permute([0, 2, 1, 3]);
    const q = hooks.run('q', qkv.slice(1, 0, h)); // [batch, heads, seq, dHead]
    const k = hooks.run('k', qkv.slice(1, h, 2 * h));
    const v = hooks.run('v', qkv.slice(1, 2 * h, 3 * h));
    const { z, pattern } = cachedSelfAttention(q, k, v, { cache, layer: this.layer, mask: maskTensor(mask), scale: this.scale, hooks });
    const out = hooks.run('out', this.cProj.forward(mergeHeads(z))); // [batch, seq, d]
    return { out, pattern };
  }

  /**
   * Inference with no hook attached: the fused kernel reads q, k and v where
   * c_attn wrote them and writes z as merged heads, so there is no split or
   * merge copy; this step's keys and values go into the cache in place.
   */
  private fusedForward(qkv: Tensor, mask: Tensor | MaskRows, cache: KVCache | undefined, withPattern: boolean, buffers: Workspace | undefined): { out: Tensor; pattern?: Tensor } {
    const [batch, seq, width3] = qkv.shape;
    const d = width3 / 3;
    const h = this.heads;
    const dHead = d / h;
    const data = qkv.f32();
    // Head j of q, k or v at sequence position i is the dHead floats from (i·3d + block·d + j·dHead).
    const block = (i: number): HeadRows => mergedRows(data, seq, width3, dHead, i * d);
    let k = block(1);
    let v = block(2);
    let keys = seq;
    if (cache) {
      const past = cache.appendRows(this.layer, k, v, [batch, h, seq, dHead]);
      ({ key: k, value: v } = past.rows);
      keys = past.length;
    }
    const dims = { batch, heads: h, kvHeads: h, queries: seq, keys, dHead };
    const { z, pattern } = attendMerged(block(0), k, v, dims, { scale: this.scale, mask }, withPattern, buffers?.f32([batch, seq, d])); // z [batch, seq, d]
    return { out: this.cProj.forward(z, buffers?.f32([batch, seq, d])), pattern };
  }
}

/** The MLP: c_proj(act(c_fc(x))), act = gelu_new by default; hook names pre, post, out. */
class Gpt2MLP extends FeedForward<Conv1D> {
  constructor(w: Weights, c: Gpt2Config) {
    super(Conv1D.load(w, 'c_fc', c.nEmbd, c.nInner), Conv1D.load(w, 'c_proj', c.nInner, c.nEmbd), c.activationFunction);
  }

  /** The up-projection by its checkpoint name. */
  get cFc(): Conv1D {
    return this.up;
  }

  /** The down-projection by its checkpoint name. */
  get cProj(): Conv1D {
    return this.down;
  }
}

/**
 * x + sublayer: without hooks the sublayer's fresh output (which nothing else
 * holds) takes the sum in place; with hooks or gradients, a new tensor.
 */
function residual(x: Tensor, sublayer: Tensor, hooks: HookPoints): Tensor {
  return hooks.active || needsGrad(x, sublayer) ? add(x, sublayer) : addInPlace(sublayer, x);
}

/**
 * The residual sum x + sublayer and its layer norm: with no hook and no
 * gradients, one native pass that writes the sum over the sublayer's fresh
 * output and the norm beside it (the same f32 sums as add, then layerNorm),
 * into `buffers` when given.
 */
function residualNorm(x: Tensor, sublayer: Tensor, norm: LayerNorm, hooks: HookPoints, buffers: Workspace | undefined): { sum: Tensor; normed: Tensor } {
  const kernel = elementwiseKernel();
  if (!kernel || hooks.active || needsGrad(x, sublayer) || needsGrad(norm.weight, norm.bias)) {
    const sum = hooks.run('resid_mid', residual(x, sublayer, hooks));
    return { sum, normed: hooks.run('ln2', norm.forward(sum, buffers?.f32(x.shape))) };
  }
  const d = x.shape[x.rank - 1];
  const normed = buffers?.f32(x.shape) ?? new Tensor('f32', x.shape, new Float32Array(x.size));
  const sum = sublayer.f32();
  kernel.layerNorm(x.f32(), sum, sum, norm.weight.f32(), norm.bias ? norm.bias.f32() : null, normed.data as Float32Array, x.size / d, d, norm.eps);
  return { sum: sublayer, normed };
}

/** Pre-norm block: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)). */
class Gpt2Block {
  readonly ln1: LayerNorm;
  readonly attn: Gpt2Attention;
  readonly ln2: LayerNorm;
  readonly mlp: Gpt2MLP;

  constructor(w: Weights, c: Gpt2Config, layer: number) {
    this.ln1 = LayerNorm.load(w, 'ln_1', c.nEmbd, c.layerNormEpsilon);
    this.attn = new Gpt2Attention(w.scope('attn'), c, layer);
    this.ln2 = LayerNorm.load(w, 'ln_2', c.nEmbd, c.layerNormEpsilon);
    this.mlp = new Gpt2MLP(w.scope('mlp'), c);
  }

  /** With `buffers` (a decoding session's workspace, no hook attached) every intermediate is written into its tensors. */
  forward(x: Tensor, mask: Tensor | MaskRows, cache: KVCache | undefined, hooks: HookPoints, withPattern = true, buffers?: Workspace): { out: Tensor; pattern?: Tensor } {
    x = hooks.run('resid_pre', x);
    const attn = this.attn.forward(hooks.run('ln1', this.ln1.forward(x, buffers?.f32(x.shape))), mask, cache, hooks.scope('attn.'), withPattern, buffers);
    const mid = residualNorm(x, attn.out, this.ln2, hooks, buffers);
    x = mid.sum;
    const mlp = this.mlp.forward(mid.normed, hooks.scope('mlp.'), buffers);
    return { out: hooks.run('resid_post', residual(x, mlp, hooks)), pattern: attn.pattern };
  }
}

export class Gpt2Model implements CausalLM, GenerativeModel {
  readonly isEncoderDecoder = false;
  /** The token table [vocab, d] as held: f32, or bf16 / int8 with those linearDtype options. */
  readonly tokenTable: LinearWeight;
  readonly wpe: Tensor;
  readonly blocks: Gpt2Block[];
  readonly lnF: LayerNorm;
  /** The language-model head [vocab, d] as held: the token table unless the checkpoint unties it. */
  readonly head: LinearWeight;

  /** `w` holds GPT2LMHeadModel names (`transformer.h.0…`) or bare GPT2Model names (`h.0…`, as OpenAI's checkpoints). */
  constructor(
    readonly config: Gpt2Config,
    w: Weights,
  ) {
    const c = config;
    const t = w.has('transformer.wte.weight') ? w.scope('transformer') : w;
    // With bf16 weights the (usually tied) token table is kept bf16 too: it is the largest matrix.
    this.tokenTable = t.matrix('wte.weight', [c.vocabSize, c.nEmbd]);
    this.wpe = t.get('wpe.weight', [c.nPositions, c.nEmbd]);
    this.blocks = Array.from({ length: c.nLayer }, (_, i) => new Gpt2Block(t.scope(`h.${i}`), c, i));
    this.lnF = LayerNorm.load(t, 'ln_f', c.nEmbd, c.layerNormEpsilon);
    this.head = c.tieWordEmbeddings ? this.tokenTable : w.matrix('lm_head.weight', [c.vocabSize, c.nEmbd]);
    // Older checkpoints also store the causal-mask buffers attn.bias / attn.masked_bias, and some a copy of the tied head.
    const unused = w.unused().filter((name) => !/\.attn\.(masked_)?bias$/.test(name) && !(c.tieWordEmbeddings && name === 'lm_head.weight'));
    if (unused.length > 0) {
      throw new WeightError(`checkpoint has tensors that a GPT-2 model with this config does not use: ${unused.slice(0, 8).join(', ')}${unused.length > 8 ? ', …' : ''}`);
    }
  }

  /** The token table as a tensor (an int8 table is dequantized: a copy). */
  get wte(): Tensor {
    return this.tokenTable instanceof Int8Matrix ? this.tokenTable.dequantize() : this.tokenTable;
  }

  /** The language-model head [vocab, d] as a tensor (an int8 head is dequantized: a copy). */
  get lmHead(): Tensor {
    return this.head instanceof Int8Matrix ? this.head.dequantize() : this.head;
  }

  get numLayers(): number {
    return this.config.nLayer;
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }

  /** Token embedding plus learned position embedding. ids, positions [batch, seq] → [batch, seq, d]; into `buffers` when given. */
  embed(ids: Tensor, positionIds: Tensor, hooks: HookPoints, buffers?: Workspace): Tensor {
    let longest = 0;
    for (let i = 0; i < positionIds.size; i++) longest = Math.max(longest, positionIds.data[i]);
    if (longest >= this.config.nPositions) {
      throw new ShapeError(`GPT-2 has learned positions 0…${this.config.nPositions - 1} (n_positions); position ${longest} was asked for: shorten the prompt or maxNewTokens`);
    }
    const shape = [...ids.shape, this.config.nEmbd];
    const tokens = hooks.run('embed', embedTokens(this.tokenTable, ids, buffers?.f32(shape)));
    const inPlace = buffers !== undefined && !needsGrad(tokens, this.wpe);
    const positions = hooks.run('pos_embed', inPlace ? embeddingInto(this.wpe, positionIds, buffers.f32(shape)) : embedding(this.wpe, positionIds));
    return inPlace ? addInPlace(tokens, positions) : add(tokens, positions);
  }

  forward(ids: Tensor, options: CausalLMForwardOptions = {}): CausalLMOutputs {
    const hooks = options.hooks ?? noHooks;
    const { seq, past, keyMask, positionIds, buffers } = causalLMInputs(ids, options);
    hooks.run('tokens', ids);
    const embedded = this.embed(ids, positionIds, hooks, buffers);
    const mask = gpt2Mask(ids.shape[0], seq, past + seq, keyMask, buffers);
    const { x, hiddenStates, attentions } = runDecoderStack(
      embedded,
      this.blocks,
      (block, h, blockHooks) => block.forward(h, mask, options.cache, blockHooks, options.outputAttentions !== false, buffers),
      (h) => this.lnF.forward(h, buffers?.f32(h.shape)),
      { hooks, lastOnly: options.lastOnly },
    );
    return { logits: hookLogits(hooks, this.logits(x, buffers)), hiddenStates, attentions };
  }

  /** x [batch, seq, d] → [batch, seq, vocab] through the head as held; into `buffers` when given. */
  private logits(x: Tensor, buffers: Workspace | undefined): Tensor {
    const into = buffers?.f32([...x.shape.slice(0, -1), this.config.vocabSize]);
    // At inference the head is a linear layer without bias, so a packed (resident) copy serves it too.
    if (this.head instanceof Int8Matrix || this.head.dtype === 'bf16' || !needsGrad(x, this.head)) return linearAny(x, this.head, undefined, into);
    return matmul(x, this.head, { transposeB: true });
  }

  startSession(inputs: SessionInputs, hooks?: HookPoints): DecodingSession {
    return new CausalLMSession(this, inputs, hooks);
  }
}
