/**
 * Llama (Touvron et al. 2023) and the decoders built the same way — Mistral,
 * Qwen2, Qwen3, Phi-3 — as Hugging Face's LlamaForCausalLM and relatives
 * implement them: pre-norm blocks with RMSNorm, rotary position embedding
 * (rotate_half layout), grouped-query attention and a SwiGLU feed-forward.
 *
 *   x = embed_tokens[ids]
 *   x = x + o(attend(rope(q(n)), rope(k(n)), v(n)))   with n = input_layernorm(x)
 *   x = x + down(silu(gate(m)) ⊙ up(m))               with m = post_attention_layernorm(x)
 *   logits = norm(x) · lm_headᵀ
 *
 * What differs between the relatives is only configuration: biases on q/k/v
 * (Qwen2), a per-head RMSNorm of q and k before RoPE (Qwen3), fused
 * qkv_proj / gate_up_proj weights (Phi-3), a sliding attention window
 * (Mistral, Phi-3) and rope_scaling.
 */
import { ConfigError, UnsupportedError, WeightError } from '../errors.js';
import { add, addInPlace, embedding, embeddingInto, F32_MIN, rotaryMergedInPlace, type Workspace } from '../ops/index.js';
import { needsGrad } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';
import { fusedAttentionKernel } from '../kernels/attention.js';
import { attendMerged, maskTensor, mergedRows, mergeHeads, type MaskRows } from '../nn/attention.js';
import { additiveMask, cachedSelfAttention, causalLMInputs, CausalLMSession, runDecoderStack, type CausalLM, type CausalLMForwardOptions, type CausalLMOutputs, type KeyMask } from '../nn/causal-lm.js';
import { FeedForward } from '../nn/feed-forward.js';
import { noHooks, type HookPoints, hookLogits } from '../nn/hooks.js';
import type { HeadRows, KVCache } from '../nn/kv-cache.js';
import { Linear, linearAny, RMSNorm } from '../nn/linear.js';
import { applyRotary, RotaryEmbedding, type RopeScaling } from '../nn/rotary.js';
import { parseModelConfig, type LlamaConfig, type ModelConfig } from '../io/config.js';
import type { Weights } from '../nn/weights.js';
import type { DecodingSession, GenerativeModel, SessionInputs } from '../generation/types.js';

export type LlamaModelType = LlamaConfig['modelType'];
export const LLAMA_MODEL_TYPES: readonly LlamaModelType[] = ['llama', 'mistral', 'qwen2', 'qwen3', 'phi3'];

function isLlamaConfig(config: ModelConfig): config is LlamaConfig {
  return (LLAMA_MODEL_TYPES as readonly string[]).includes(config.modelType);
}

/** The rope_scaling kinds RotaryEmbedding implements; the others are a typed error. */
function rotaryScaling(c: LlamaConfig): RopeScaling | null {
  const scaling = c.ropeScaling;
  if (scaling !== null && scaling.type === 'yarn') {
    throw new UnsupportedError(`${c.file}: rope_scaling type "yarn" is not supported; supported: "default", "linear", "dynamic", "llama3"`);
  }
  return scaling;
}

/** Read a Llama-family config.json (model_type llama, mistral, qwen2, qwen3 or phi3) with io/config.ts's v4.47 defaults. */
export function parseLlamaConfig(json: Record<string, unknown>, file = 'config.json'): LlamaConfig {
  const config = parseModelConfig(json, file);
  if (!isLlamaConfig(config)) {
    throw new ConfigError(`${file}: model_type ${JSON.stringify(config.modelType)} is not a Llama-family type (${LLAMA_MODEL_TYPES.join(', ')})`);
  }
  if ((config.modelType === 'qwen2' || config.modelType === 'qwen3') && config.raw.use_sliding_window === true) {
    throw new UnsupportedError(`${file}: use_sliding_window=true (per-layer sliding windows of ${config.modelType}) is not supported`);
  }
  const partial = config.raw.partial_rotary_factor;
  if (typeof partial === 'number' && partial !== 1) {
    throw new UnsupportedError(`${file}: partial_rotary_factor=${partial} is not supported; only full-width RoPE`);
  }
  rotaryScaling(config);
  return config;
}

/**
 * Llama's 4-D mask [batch, 1, queries, keys]: finfo.min where the key is in the
 * future, padded, or (with a sliding window) `window` or more positions back; 0 elsewhere.
 */
export function llamaAttentionMask(queries: number, keys: number, attentionMask: Tensor, slidingWindow: number | null): Tensor {
  return llamaMask(attentionMask.shape[0], queries, keys, { flags: attentionMask.data, stride: keys }, slidingWindow, undefined) as Tensor;
}

/** `llamaAttentionMask` over a mask read in place, as a new tensor or in a workspace's rows (see `additiveMask`). */
function llamaMask(batch: number, queries: number, keys: number, mask: KeyMask, slidingWindow: number | null, buffers: Workspace | undefined): Tensor | MaskRows {
  const past = keys - queries;
  return additiveMask(batch, queries, keys, mask, buffers, (out, stride) => {
    for (let b = 0; b < batch; b++) {
      for (let i = 0; i < queries; i++) {
        const q = past + i;
        for (let j = 0; j < keys; j++) {
          const hidden = j > q || mask.flags[b * mask.stride + j] === 0 || (slidingWindow !== null && q - j >= slidingWindow);
          out[(b * queries + i) * stride + j] = hidden ? F32_MIN : 0;
        }
      }
    }
  });
}

/**
 * x + sublayer: without hooks the sublayer's fresh output (which nothing else
 * holds) takes the sum in place; with hooks or gradients, a new tensor.
 */
function residual(x: Tensor, sublayer: Tensor, hooks: HookPoints): Tensor {
  return hooks.active || needsGrad(x, sublayer) ? add(x, sublayer) : addInPlace(sublayer, x);
}

/** Rows [start, end) of a fused projection, as a Linear of its own (a view, so training updates reach it). */
function rowsOf(weight: Tensor, start: number, end: number): Linear {
  return new Linear(weight.narrowRows(start, end));
}

/** Grouped-query self-attention with RoPE on q and k. */
class LlamaAttention {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;
  readonly qNorm?: RMSNorm;
  readonly kNorm?: RMSNorm;
  private readonly scale: number;

  constructor(w: Weights, readonly c: LlamaConfig, readonly layer: number) {
    const d = c.hiddenSize;
    const qWidth = c.numAttentionHeads * c.headDim;
    const kvWidth = c.numKeyValueHeads * c.headDim;
    if (c.fusedProjections) {
      const qkv = w.get('qkv_proj.weight', [qWidth + 2 * kvWidth, d]);
      this.q = rowsOf(qkv, 0, qWidth);
      this.k = rowsOf(qkv, qWidth, qWidth + kvWidth);
      this.v = rowsOf(qkv, qWidth + kvWidth, qWidth + 2 * kvWidth);
    } else {
      this.q = Linear.load(w, 'q_proj', d, qWidth, c.attentionBias);
      this.k = Linear.load(w, 'k_proj', d, kvWidth, c.attentionBias);
      this.v = Linear.load(w, 'v_proj', d, kvWidth, c.attentionBias);
    }
    this.o = Linear.load(w, 'o_proj', qWidth, d, c.attentionOutputBias);
    if (c.qkNorm) {
      this.qNorm = RMSNorm.load(w, 'q_norm', c.headDim, c.rmsNormEps);
      this.kNorm = RMSNorm.load(w, 'k_norm', c.headDim, c.rmsNormEps);
    }
    this.scale = 1 / Math.sqrt(c.headDim);
  }

  /** x [batch, seq, d] → [batch, heads, seq, headDim], normalising each head first when the model does (Qwen3). */
  private heads(x: Tensor, heads: number, norm?: RMSNorm): Tensor {
    const [batch, seq] = x.shape;
    let split = x.reshape([batch, seq, heads, this.c.headDim]);
    if (norm) split = norm.forward(split);
    return split.permute([0, 2, 1, 3]);
  }

  /**
   * With `withPattern` false (nothing reads it) the fused path skips the
   * pattern. With `buffers` (a decoding session's workspace) the projections
   * and z are written into its tensors.
   */
  forward(x: Tensor, rope: { cos: Tensor; sin: Tensor }, mask: Tensor | MaskRows, cache: KVCache | undefined, hooks: HookPoints, withPattern = true, buffers?: Workspace): { out: Tensor; pattern?: Tensor } {
    const c = this.c;
    const [batch, seq] = x.shape;
    const qp = this.q.forward(x, buffers?.f32([batch, seq, this.q.outFeatures])); // [batch, seq, heads·headDim]
    const kp = this.k.forward(x, buffers?.f32([batch, seq, this.k.outFeatures])); // [batch, seq, kvHeads·headDim]
    const vp = this.v.forward(x, buffers?.f32([batch, seq, this.v.outFeatures]));
    if (!hooks.active && fusedAttentionKernel() && !needsGrad(qp, kp, vp) && !this.normsTrain()) return this.fusedForward(qp, kp, vp, rope, mask, cache, withPattern, buffers);
    const q = hooks.run('q', this.heads(qp, c.numAttentionHeads, this.qNorm)); // [batch, heads, seq, headDim]
    const k = hooks.run('k', this.heads(kp, c.numKeyValueHeads, this.kNorm)); // [batch, kvHeads, seq, headDim]
    const v = hooks.run('v', this.heads(vp, c.numKeyValueHeads));
    const qRot = hooks.run('rotary_q', applyRotary(q, rope.cos, rope.sin));
    const kRot = hooks.run('rotary_k', applyRotary(k, rope.cos, rope.sin));
    const { z, pattern } = cachedSelfAttention(qRot, kRot, v, { cache, layer: this.layer, mask: maskTensor(mask), scale: this.scale, hooks });
    const out = hooks.run('out', this.o.forward(mergeHeads(z))); // [batch, seq, d]
    return { out, pattern };
  }

  /** Whether Qwen3's q/k norms require gradients (the unfused ops record them). */
  private normsTrain(): boolean {
    return needsGrad(this.qNorm?.weight, this.kNorm?.weight);
  }

  /**
   * Inference with no hook attached: each head is normalised (Qwen3) and
   * rotated in place where the projections wrote it, this step's keys and
   * values go into the cache in place, and the fused kernel reads q as merged
   * heads and writes z merged: no split, rotate or merge copy.
   */
  private fusedForward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    rope: { cos: Tensor; sin: Tensor },
    mask: Tensor | MaskRows,
    cache: KVCache | undefined,
    withPattern: boolean,
    buffers: Workspace | undefined,
  ): { out: Tensor; pattern?: Tensor } {
    const c = this.c;
    const [batch, seq, qWidth] = q.shape;
    const dHead = c.headDim;
    const heads = c.numAttentionHeads;
    const kvHeads = c.numKeyValueHeads;
    const kvWidth = kvHeads * dHead;
    // [batch, seq, heads·dHead] read as [batch, seq, heads, dHead] for the per-head norm, written over itself.
    if (this.qNorm) this.qNorm.forward(q.reshape([batch, seq, heads, dHead]), q.reshape([batch, seq, heads, dHead]));
    if (this.kNorm) this.kNorm.forward(k.reshape([batch, seq, kvHeads, dHead]), k.reshape([batch, seq, kvHeads, dHead]));
    rotaryMergedInPlace(q, heads, rope.cos, rope.sin);
    rotaryMergedInPlace(k, kvHeads, rope.cos, rope.sin);
    let keyRows: HeadRows = mergedRows(k.f32(), seq, kvWidth, dHead);
    let valueRows: HeadRows = mergedRows(v.f32(), seq, kvWidth, dHead);
    let keys = seq;
    if (cache) {
      const past = cache.appendRows(this.layer, keyRows, valueRows, [batch, kvHeads, seq, dHead]);
      ({ key: keyRows, value: valueRows } = past.rows);
      keys = past.length;
    }
    const dims = { batch, heads, kvHeads, queries: seq, keys, dHead };
    const { z, pattern } = attendMerged(mergedRows(q.f32(), seq, qWidth, dHead), keyRows, valueRows, dims, { scale: this.scale, mask }, withPattern, buffers?.f32([batch, seq, qWidth])); // z [batch, seq, heads·dHead]
    return { out: this.o.forward(z, buffers?.f32([batch, seq, this.o.outFeatures])), pattern };
  }
}

/** SwiGLU (Shazeer 2020): down(silu(gate(x)) ⊙ up(x)). */
function loadMlp(w: Weights, c: LlamaConfig): FeedForward {
  const d = c.hiddenSize;
  const f = c.intermediateSize;
  const act = c.hiddenAct;
  if (c.fusedProjections) {
    // Phi-3: gate_up_proj holds the gate rows first, then the up rows.
    const gateUp = w.get('gate_up_proj.weight', [2 * f, d]);
    return new FeedForward(rowsOf(gateUp, f, 2 * f), Linear.load(w, 'down_proj', f, d, false), act, rowsOf(gateUp, 0, f));
  }
  return new FeedForward(Linear.load(w, 'up_proj', d, f, c.mlpBias), Linear.load(w, 'down_proj', f, d, c.mlpBias), act, Linear.load(w, 'gate_proj', d, f, c.mlpBias));
}

/** Pre-norm block: x = x + attn(input_layernorm(x)); x = x + mlp(post_attention_layernorm(x)). */
class LlamaBlock {
  readonly inputNorm: RMSNorm;
  readonly attn: LlamaAttention;
  readonly postAttentionNorm: RMSNorm;
  readonly mlp: FeedForward;

  constructor(w: Weights, c: LlamaConfig, layer: number) {
    this.inputNorm = RMSNorm.load(w, 'input_layernorm', c.hiddenSize, c.rmsNormEps);
    this.attn = new LlamaAttention(w.scope('self_attn'), c, layer);
    this.postAttentionNorm = RMSNorm.load(w, 'post_attention_layernorm', c.hiddenSize, c.rmsNormEps);
    this.mlp = loadMlp(w.scope('mlp'), c);
  }

  /** With `buffers` (a decoding session's workspace, no hook attached) every intermediate is written into its tensors. */
  forward(x: Tensor, rope: { cos: Tensor; sin: Tensor }, mask: Tensor | MaskRows, cache: KVCache | undefined, hooks: HookPoints, withPattern = true, buffers?: Workspace): { out: Tensor; pattern?: Tensor } {
    x = hooks.run('resid_pre', x);
    const attn = this.attn.forward(hooks.run('ln1', this.inputNorm.forward(x, buffers?.f32(x.shape))), rope, mask, cache, hooks.scope('attn.'), withPattern, buffers);
    x = hooks.run('resid_mid', residual(x, attn.out, hooks));
    const mlp = this.mlp.forward(hooks.run('ln2', this.postAttentionNorm.forward(x, buffers?.f32(x.shape))), hooks.scope('mlp.'), buffers);
    return { out: hooks.run('resid_post', residual(x, mlp, hooks)), pattern: attn.pattern };
  }
}

export class LlamaModel implements CausalLM, GenerativeModel {
  readonly isEncoderDecoder = false;
  readonly embedTokens: Tensor;
  readonly blocks: LlamaBlock[];
  readonly norm: RMSNorm;
  readonly lmHead: Tensor;
  readonly rotary: RotaryEmbedding;

  /** `w` holds the checkpoint under Hugging Face names (`model.layers.0.self_attn.q_proj.weight`, `lm_head.weight`). */
  constructor(
    readonly config: LlamaConfig,
    w: Weights,
  ) {
    const c = config;
    const m = w.scope('model');
    this.embedTokens = m.get('embed_tokens.weight', [c.vocabSize, c.hiddenSize]);
    this.blocks = Array.from({ length: c.numHiddenLayers }, (_, i) => new LlamaBlock(m.scope(`layers.${i}`), c, i));
    this.norm = RMSNorm.load(m, 'norm', c.hiddenSize, c.rmsNormEps);
    // Tied checkpoints usually omit lm_head.weight; HF then reuses embed_tokens.
    this.lmHead = c.tieWordEmbeddings && !w.has('lm_head.weight') ? this.embedTokens : w.get('lm_head.weight', [c.vocabSize, c.hiddenSize]);
    this.rotary = new RotaryEmbedding(c.headDim, c.ropeTheta, rotaryScaling(c), c.maxPositionEmbeddings);
    const unused = w.unused().filter((name) => !name.endsWith('rotary_emb.inv_freq'));
    if (unused.length > 0) {
      throw new WeightError(`checkpoint has tensors that a ${c.modelType} model with this config does not use: ${unused.slice(0, 8).join(', ')}${unused.length > 8 ? ', …' : ''}`);
    }
  }

  get numLayers(): number {
    return this.config.numHiddenLayers;
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }

  forward(ids: Tensor, options: CausalLMForwardOptions = {}): CausalLMOutputs {
    const hooks = options.hooks ?? noHooks;
    const { seq, past, keyMask, positionIds, buffers } = causalLMInputs(ids, options);
    hooks.run('tokens', ids);
    const table = this.embedTokens;
    const embedded = hooks.run('embed', buffers && !needsGrad(table) ? embeddingInto(table, ids, buffers.f32([...ids.shape, this.config.hiddenSize])) : embedding(table, ids)); // [batch, seq, d]
    const rope = this.rotary.cosSin(positionIds, buffers); // [batch, seq, headDim] each
    const mask = llamaMask(ids.shape[0], seq, past + seq, keyMask, this.config.slidingWindow, buffers);
    const { x, hiddenStates, attentions } = runDecoderStack(
      embedded,
      this.blocks,
      (block, h, blockHooks) => block.forward(h, rope, mask, options.cache, blockHooks, options.outputAttentions !== false, buffers),
      (h) => this.norm.forward(h, buffers?.f32(h.shape)),
      { hooks, lastOnly: options.lastOnly },
    );
    const logits = hookLogits(hooks, linearAny(x, this.lmHead, undefined, buffers?.f32([...x.shape.slice(0, -1), this.config.vocabSize]))); // [batch, seq, vocab]
    return { logits, hiddenStates, attentions };
  }

  startSession(inputs: SessionInputs, hooks?: HookPoints): DecodingSession {
    return new CausalLMSession(this, inputs, hooks);
  }
}
