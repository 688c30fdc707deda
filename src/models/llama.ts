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
import { embedding, F32_MIN, add } from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import { mergeHeads } from '../nn/attention.js';
import { cachedSelfAttention, causalLMInputs, CausalLMSession, runDecoderStack, type CausalLM, type CausalLMForwardOptions, type CausalLMOutputs } from '../nn/causal-lm.js';
import { FeedForward } from '../nn/feed-forward.js';
import { noHooks, type HookPoints, hookLogits } from '../nn/hooks.js';
import type { KVCache } from '../nn/kv-cache.js';
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
  const batch = attentionMask.shape[0];
  const past = keys - queries;
  const out = new Float32Array(batch * queries * keys);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < queries; i++) {
      const q = past + i;
      for (let j = 0; j < keys; j++) {
        const hidden = j > q || attentionMask.data[b * keys + j] === 0 || (slidingWindow !== null && q - j >= slidingWindow);
        out[(b * queries + i) * keys + j] = hidden ? F32_MIN : 0;
      }
    }
  }
  return new Tensor('f32', [batch, 1, queries, keys], out);
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

  forward(x: Tensor, rope: { cos: Tensor; sin: Tensor }, mask: Tensor, cache: KVCache | undefined, hooks: HookPoints): { out: Tensor; pattern: Tensor } {
    const c = this.c;
    const q = hooks.run('q', this.heads(this.q.forward(x), c.numAttentionHeads, this.qNorm)); // [batch, heads, seq, headDim]
    const k = hooks.run('k', this.heads(this.k.forward(x), c.numKeyValueHeads, this.kNorm)); // [batch, kvHeads, seq, headDim]
    const v = hooks.run('v', this.heads(this.v.forward(x), c.numKeyValueHeads));
    const qRot = hooks.run('rotary_q', applyRotary(q, rope.cos, rope.sin));
    const kRot = hooks.run('rotary_k', applyRotary(k, rope.cos, rope.sin));
    const { z, pattern } = cachedSelfAttention(qRot, kRot, v, { cache, layer: this.layer, mask, scale: this.scale, hooks });
    const out = hooks.run('out', this.o.forward(mergeHeads(z))); // [batch, seq, d]
    return { out, pattern };
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

  forward(x: Tensor, rope: { cos: Tensor; sin: Tensor }, mask: Tensor, cache: KVCache | undefined, hooks: HookPoints): { out: Tensor; pattern: Tensor } {
    x = hooks.run('resid_pre', x);
    const attn = this.attn.forward(hooks.run('ln1', this.inputNorm.forward(x)), rope, mask, cache, hooks.scope('attn.'));
    x = hooks.run('resid_mid', add(x, attn.out));
    const mlp = this.mlp.forward(hooks.run('ln2', this.postAttentionNorm.forward(x)), hooks.scope('mlp.'));
    return { out: hooks.run('resid_post', add(x, mlp)), pattern: attn.pattern };
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
    const { seq, past, attentionMask, positionIds } = causalLMInputs(ids, options);
    hooks.run('tokens', ids);
    const embedded = hooks.run('embed', embedding(this.embedTokens, ids)); // [batch, seq, d]
    const rope = this.rotary.cosSin(positionIds); // [batch, seq, headDim] each
    const mask = llamaAttentionMask(seq, past + seq, attentionMask, this.config.slidingWindow);
    const { x, hiddenStates, attentions } = runDecoderStack(
      embedded,
      this.blocks,
      (block, h, blockHooks) => block.forward(h, rope, mask, options.cache, blockHooks),
      (h) => this.norm.forward(h),
      { hooks, lastOnly: options.lastOnly },
    );
    const logits = hookLogits(hooks, linearAny(x, this.lmHead)); // [batch, seq, vocab]
    return { logits, hiddenStates, attentions };
  }

  startSession(inputs: SessionInputs, hooks?: HookPoints): DecodingSession {
    return new CausalLMSession(this, inputs, hooks);
  }
}
