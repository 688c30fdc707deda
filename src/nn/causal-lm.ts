/**
 * What every decoder-only language model (GPT-2, Llama and relatives) shares:
 * the outputs of a forward pass, Hugging Face's position ids for left-padded
 * batches, and the decoding session that feeds a model token by token with a
 * KV cache.
 */
import { ShapeError } from '../errors.js';
import type { DecodingSession, SessionInputs } from '../generation/types.js';
import { Tensor } from '../tensor/tensor.js';
import { add, matmul, scale, softmax } from '../ops/index.js';
import { attend, fusedAttend } from './attention.js';
import type { HookPoints } from './hooks.js';
import { KVCache } from './kv-cache.js';

export interface CausalLMForwardOptions {
  /** 1 for real tokens, 0 for padding, [batch, past + seq]; all ones when absent. */
  attentionMask?: Tensor;
  /** [batch, seq]; when absent, HF's cumsum rule over the attention mask. */
  positionIds?: Tensor;
  /** Keys and values of earlier positions; this call's are appended to it. */
  cache?: KVCache;
  hooks?: HookPoints;
  /** Project only the last position to the vocabulary (generation needs nothing else). */
  lastOnly?: boolean;
  /**
   * false: nothing reads the attention patterns (a decoding session), so the
   * fused attention skips them and `attentions` is empty. Default true.
   */
  outputAttentions?: boolean;
}

export interface CausalLMOutputs {
  /** [batch, seq, vocab], or [batch, 1, vocab] with `lastOnly`. */
  logits: Tensor;
  /** HF `output_hidden_states`: the embedding output, then each layer's output; the last one after the final norm. */
  hiddenStates: Tensor[];
  /** Each layer's attention probabilities [batch, heads, queries, keys] (empty with `outputAttentions: false`). */
  attentions: Tensor[];
}

/** A decoder-only language model. */
export interface CausalLM {
  readonly numLayers: number;
  readonly vocabSize: number;
  forward(ids: Tensor, options?: CausalLMForwardOptions): CausalLMOutputs;
}

/**
 * Position ids of a left-padded batch as `GenerationMixin.prepare_inputs_for_generation`
 * builds them: cumsum(attention_mask) − 1, and 1 at padded slots. Returns the last
 * `count` positions of each row, [batch, count].
 */
export function positionIdsFromMask(mask: readonly (readonly number[])[], count: number): Tensor {
  const batch = mask.length;
  const out = new Int32Array(batch * count);
  mask.forEach((row, b) => {
    let seen = 0;
    row.forEach((m, j) => {
      seen += m;
      const k = j - (row.length - count);
      if (k >= 0) out[b * count + k] = m === 0 ? 1 : seen - 1;
    });
  });
  return new Tensor('i32', [batch, count], out);
}

/** An attention mask tensor [batch, len] as rows of numbers. */
export function maskRows(mask: Tensor): number[][] {
  const [batch, len] = mask.shape;
  return Array.from({ length: batch }, (_, b) => Array.from(mask.data.subarray(b * len, (b + 1) * len)));
}

/**
 * The attention mask and position ids of a forward pass over ids [batch, seq]
 * after the cached positions, filled in as HF does when absent: all ones, and
 * the cumsum rule over the mask.
 */
export function causalLMInputs(ids: Tensor, options: CausalLMForwardOptions): { seq: number; past: number; attentionMask: Tensor; positionIds: Tensor } {
  const [batch, seq] = ids.shape;
  const past = options.cache?.length ?? 0;
  const attentionMask = options.attentionMask ?? Tensor.i32(new Int32Array(batch * (past + seq)).fill(1), [batch, past + seq]);
  const positionIds = options.positionIds ?? positionIdsFromMask(maskRows(attentionMask), seq);
  return { seq, past, attentionMask, positionIds };
}

/**
 * The decoder stack after the embedding: each block in turn, then the final
 * norm (over the last position only with `lastOnly`). hiddenStates holds the
 * embedding output and each block's output, the last one after the final norm.
 */
export function runDecoderStack<B>(
  x: Tensor,
  blocks: readonly B[],
  block: (b: B, x: Tensor, hooks: HookPoints) => { out: Tensor; pattern?: Tensor },
  finalNorm: (x: Tensor) => Tensor,
  options: { hooks: HookPoints; lastOnly?: boolean },
): { x: Tensor; hiddenStates: Tensor[]; attentions: Tensor[] } {
  const hiddenStates = [x];
  const attentions: Tensor[] = [];
  blocks.forEach((b, i) => {
    const { out, pattern } = block(b, x, options.hooks.scope(`blocks.${i}.`));
    x = out;
    hiddenStates.push(x);
    if (pattern) attentions.push(pattern);
  });
  const seq = x.shape[1];
  if (options.lastOnly) x = x.slice(1, seq - 1, seq);
  x = options.hooks.run('ln_final', finalNorm(x));
  hiddenStates[hiddenStates.length - 1] = x;
  return { x, hiddenStates, attentions };
}

export function idsTensor(rows: readonly (readonly number[])[]): Tensor {
  const width = rows[0]?.length ?? 0;
  if (rows.some((r) => r.length !== width)) throw new ShapeError(`token id rows have different lengths: ${rows.map((r) => r.length).join(', ')}`);
  return Tensor.i32(rows.flat(), [rows.length, width]);
}

/**
 * Decoding with a KV cache: the first step feeds the prompt, later steps the
 * new tokens; the attention mask grows by one real token per fed position and
 * the position ids continue each row's own count.
 */
export class CausalLMSession implements DecodingSession {
  private readonly cache: KVCache;
  private mask: number[][];
  private started = false;

  constructor(
    private readonly model: CausalLM,
    inputs: SessionInputs,
    private readonly hooks?: HookPoints,
  ) {
    this.cache = new KVCache(model.numLayers);
    this.mask = [];
    for (const row of inputs.attentionMask) for (let i = 0; i < inputs.expandBy; i++) this.mask.push([...row]);
  }

  /** Positions held in the cache. */
  get length(): number {
    return this.cache.length;
  }

  step(ids: readonly (readonly number[])[]): Tensor {
    if (ids.length !== this.mask.length) throw new ShapeError(`session step: ${ids.length} rows given, the session has ${this.mask.length}`);
    const n = ids[0]?.length ?? 0;
    if (this.started) for (const row of this.mask) for (let i = 0; i < n; i++) row.push(1);
    else if (this.mask[0]?.length !== n) throw new ShapeError(`session step: the first step must feed the whole prompt (${this.mask[0]?.length} tokens), got ${n}`);
    this.started = true;
    const attentionMask = idsTensor(this.mask);
    const positionIds = positionIdsFromMask(this.mask, n);
    const { logits } = this.model.forward(idsTensor(ids), { attentionMask, positionIds, cache: this.cache, hooks: this.hooks, lastOnly: true, outputAttentions: false });
    const vocab = logits.shape[2];
    return logits.reshape([ids.length, vocab]); // [rows, vocab]
  }

  reorder(indices: readonly number[]): void {
    this.cache.reorder(indices);
    this.mask = indices.map((i) => [...this.mask[i]]);
  }

  /** Forget every position from `length` on, so that different tokens can be fed from there (a chat that re-renders a turn). */
  truncate(length: number): void {
    if (length > this.cache.length) throw new ShapeError(`session truncate: ${length} positions asked, ${this.cache.length} cached`);
    this.cache.truncate(length);
    this.mask = this.mask.map((row) => row.slice(0, length));
  }
}

/**
 * Causal self-attention over the cache: this step's keys and values are
 * appended to layer `layer` of the cache, then the queries attend to the whole
 * history. q [batch, heads, queries, dHead]; k, v [batch, kvHeads, queries, dHead].
 */
export function cachedSelfAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: { cache?: KVCache; layer: number; mask: Tensor; scale: number; hooks: HookPoints },
): { z: Tensor; pattern: Tensor } {
  const past = options.cache ? options.cache.append(options.layer, k, v) : { key: k, value: v }; // [batch, kvHeads, keys, dHead]
  const attendOptions = { scale: options.scale, mask: options.mask, hooks: options.hooks };
  const fused = fusedAttend(q, past, attendOptions);
  if (fused) return fused;
  if (q.shape[1] === k.shape[1]) return attend(q, past.key, past.value, attendOptions);
  return groupedQueryAttend(q, past.key, past.value, options);
}

/**
 * Grouped-query attention (Ainslie et al. 2023) without copying the cache: KV
 * head j serves query heads j·g … j·g+g−1, which are contiguous in q, so q is
 * read as [batch, kvHeads, g·queries, dHead] against each KV head once. The
 * numbers are those of `attend` after `repeatKv`; the hook names are the same.
 */
export function groupedQueryAttend(q: Tensor, k: Tensor, v: Tensor, options: { mask: Tensor; scale: number; hooks: HookPoints }): { z: Tensor; pattern: Tensor } {
  const [batch, heads, queries, dHead] = q.shape;
  const [, kvHeads, keys] = k.shape;
  if (heads % kvHeads !== 0) throw new ShapeError(`grouped-query attention: ${heads} query heads are not a multiple of ${kvHeads} KV heads`);
  const grouped = [batch, kvHeads, (heads / kvHeads) * queries];
  let scores = matmul(q.reshape([...grouped, dHead]), k, { transposeB: true }).reshape([batch, heads, queries, keys]);
  if (options.scale !== 1) scores = scale(scores, options.scale);
  scores = options.hooks.run('scores', add(scores, options.mask));
  const pattern = options.hooks.run('pattern', softmax(scores)); // [batch, heads, queries, keys]
  const z = options.hooks.run('z', matmul(pattern.reshape([...grouped, keys]), v).reshape([batch, heads, queries, dHead]));
  return { z, pattern };
}
