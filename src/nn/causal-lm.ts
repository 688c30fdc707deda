/**
 * What every decoder-only language model (GPT-2, Llama and relatives) shares:
 * the outputs of a forward pass, Hugging Face's position ids for left-padded
 * batches, and the decoding session that feeds a model token by token with a
 * KV cache.
 */
import { ShapeError } from '../errors.js';
import type { DecodingSession, SessionInputs } from '../generation/types.js';
import { Tensor } from '../tensor/tensor.js';
import { add, matmul, scale, softmax, Workspace } from '../ops/index.js';
import { attend, fusedAttend, type MaskRows } from './attention.js';
import { noHooks, type HookPoints } from './hooks.js';
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
  /**
   * A decoding session's buffers: the pass takes the attention mask from the
   * session's rows (instead of `attentionMask`) and, when no hook is
   * attached, writes its intermediates and logits into the session's
   * workspace, so the outputs are overwritten by the session's next step.
   */
  workspace?: DecodeWorkspace;
}

/** An attention mask read where it lies: row b's flag for key j at b·stride + j (1 a real token, 0 padding). */
export interface KeyMask {
  flags: ArrayLike<number>;
  stride: number;
}

/** What a decoding session lends a forward pass (see `CausalLMForwardOptions.workspace`). */
export interface DecodeWorkspace {
  /** Where the pass takes its outputs from (the session resets it before each step). */
  buffers: Workspace;
  /** The session's attention mask over every key of the pass, in rows that grow with the session. */
  mask: KeyMask;
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

/** What a forward pass over ids [batch, seq] after `past` cached positions reads its mask and positions from. */
export interface CausalLMInputs {
  seq: number;
  past: number;
  /** Which of the past + seq keys are real tokens. */
  keyMask: KeyMask;
  /** [batch, seq] */
  positionIds: Tensor;
  /** The workspace to take outputs from: a session's, when no hook is attached. */
  buffers?: Workspace;
}

/**
 * The attention mask and position ids of a forward pass over ids [batch, seq]
 * after the cached positions, filled in as HF does when absent: all ones, and
 * the cumsum rule over the mask. A session's workspace lends its mask rows.
 */
export function causalLMInputs(ids: Tensor, options: CausalLMForwardOptions): CausalLMInputs {
  const [batch, seq] = ids.shape;
  const past = options.cache?.length ?? 0;
  const hooked = options.hooks?.active ?? false;
  const workspace = options.workspace;
  if (workspace) {
    const { flags, stride } = workspace.mask;
    const rows = () => Array.from({ length: batch }, (_, b) => Array.from({ length: past + seq }, (_, j) => flags[b * stride + j]));
    const positionIds = options.positionIds ?? positionIdsFromMask(rows(), seq);
    return { seq, past, keyMask: workspace.mask, positionIds, buffers: hooked ? undefined : workspace.buffers };
  }
  const attentionMask = options.attentionMask ?? Tensor.i32(new Int32Array(batch * (past + seq)).fill(1), [batch, past + seq]);
  const positionIds = options.positionIds ?? positionIdsFromMask(maskRows(attentionMask), seq);
  return { seq, past, keyMask: { flags: attentionMask.data, stride: attentionMask.shape[1] }, positionIds };
}

/**
 * Where an additive mask [batch, 1, queries, keys] goes: `fill` writes each
 * query's row of keys `stride` floats after the last one, into a new
 * tensor's array (stride = keys), or (with a workspace) into a buffer the
 * workspace keeps across steps, rows as far apart as the session's mask rows
 * (`keyMask.stride`), read as strided rows: the keys grow by one a step, the
 * buffer only when the session's rows do.
 */
export function additiveMask(
  batch: number,
  queries: number,
  keys: number,
  keyMask: KeyMask,
  buffers: Workspace | undefined,
  fill: (data: Float32Array, stride: number) => void,
): Tensor | MaskRows {
  if (!buffers) {
    const data = new Float32Array(batch * queries * keys);
    fill(data, keys);
    return new Tensor('f32', [batch, 1, queries, keys], data);
  }
  const stride = Math.max(keys, keyMask.stride);
  const data = buffers.growing('attention mask', batch * queries * stride);
  fill(data, stride);
  return { data, shape: [batch, 1, queries, keys], strides: [queries * stride, 0, stride, 1] };
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
  const hooked = options.hooks.active;
  blocks.forEach((b, i) => {
    // Without hooks, no scope name is built (a decode step runs this for every block).
    const { out, pattern } = block(b, x, hooked ? options.hooks.scope(`blocks.${i}.`) : noHooks);
    x = out;
    hiddenStates.push(x);
    if (pattern) attentions.push(pattern);
  });
  const seq = x.shape[1];
  if (options.lastOnly && seq > 1) x = x.slice(1, seq - 1, seq);
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
 *
 * A step of one token per row with no hook attached runs on the session's
 * buffers: the mask rows grow in place (doubling, as the KV cache), the ids
 * and positions, every intermediate and the logits are written into a
 * workspace the next such step reuses, so once the shapes have settled a
 * decoded token allocates no array. The logits it returns are therefore valid
 * until the next call (see `DecodingSession.step`). Prompts, steps of several
 * tokens and hooked steps allocate as a plain forward pass does (hooks may
 * keep what they see).
 */
export class CausalLMSession implements DecodingSession {
  private readonly cache: KVCache;
  /** The attention mask, [rows, capacity]: row b's flags at b·capacity … b·capacity + length − 1. */
  private flags: Int32Array;
  private spareFlags?: Int32Array;
  private capacity: number;
  private maskLength: number;
  private rows: number;
  private started = false;
  private readonly workspace: DecodeWorkspace;

  constructor(
    private readonly model: CausalLM,
    inputs: SessionInputs,
    private readonly hooks?: HookPoints,
  ) {
    this.cache = new KVCache(model.numLayers);
    this.rows = inputs.attentionMask.length * inputs.expandBy;
    this.maskLength = inputs.attentionMask[0]?.length ?? 0;
    this.capacity = Math.max(INITIAL_MASK_CAPACITY, 2 * this.maskLength);
    this.flags = new Int32Array(this.rows * this.capacity);
    inputs.attentionMask.forEach((row, i) => {
      if (row.length !== this.maskLength) throw new ShapeError(`session: attention mask rows have different lengths (${row.length} and ${this.maskLength})`);
      for (let e = 0; e < inputs.expandBy; e++) this.flags.set(row, (i * inputs.expandBy + e) * this.capacity);
    });
    this.workspace = { buffers: new Workspace(), mask: { flags: this.flags, stride: this.capacity } };
  }

  /** Positions held in the cache. */
  get length(): number {
    return this.cache.length;
  }

  /** Buffers allocated by the session's workspace so far (a decode step in steady state adds none). */
  get allocations(): number {
    return this.workspace.buffers.allocations;
  }

  step(ids: readonly (readonly number[])[]): Tensor {
    if (ids.length !== this.rows) throw new ShapeError(`session step: ${ids.length} rows given, the session has ${this.rows}`);
    const n = ids[0]?.length ?? 0;
    if (ids.some((row) => row.length !== n)) throw new ShapeError(`token id rows have different lengths: ${ids.map((r) => r.length).join(', ')}`);
    if (this.started) this.appendRealTokens(n);
    else if (this.maskLength !== n) throw new ShapeError(`session step: the first step must feed the whole prompt (${this.maskLength} tokens), got ${n}`);
    this.started = true;
    if (n === 1 && !this.hooks?.active) return this.decodeStep(ids);
    const attentionMask = this.maskTensor();
    const positionIds = positionIdsFromMask(maskRows(attentionMask), n);
    const { logits } = this.model.forward(idsTensor(ids), { attentionMask, positionIds, cache: this.cache, hooks: this.hooks, lastOnly: true, outputAttentions: false });
    const vocab = logits.shape[2];
    return logits.reshape([ids.length, vocab]); // [rows, vocab]
  }

  /** One token per row on the session's buffers. */
  private decodeStep(ids: readonly (readonly number[])[]): Tensor {
    const buffers = this.workspace.buffers;
    buffers.reset();
    const tokens = buffers.i32([this.rows, 1]);
    const positions = buffers.i32([this.rows, 1]);
    for (let b = 0; b < this.rows; b++) {
      tokens.data[b] = ids[b][0];
      positions.data[b] = lastPosition(this.flags, b * this.capacity, this.maskLength);
    }
    const { logits } = this.model.forward(tokens, { positionIds: positions, cache: this.cache, workspace: this.workspace, lastOnly: true, outputAttentions: false });
    const vocab = logits.shape[2];
    return logits.reshape([this.rows, vocab]); // [rows, vocab]
  }

  /** n more real tokens at the end of every row's mask, growing the rows by doubling when full. */
  private appendRealTokens(n: number): void {
    const length = this.maskLength + n;
    if (length > this.capacity) this.growMask(Math.max(length, 2 * this.capacity));
    for (let b = 0; b < this.rows; b++) this.flags.fill(1, b * this.capacity + this.maskLength, b * this.capacity + length);
    this.maskLength = length;
  }

  private growMask(capacity: number): void {
    const flags = new Int32Array(this.rows * capacity);
    for (let b = 0; b < this.rows; b++) flags.set(this.flags.subarray(b * this.capacity, b * this.capacity + this.maskLength), b * capacity);
    this.setFlags(flags, capacity);
    this.spareFlags = undefined;
  }

  private setFlags(flags: Int32Array, capacity: number): void {
    this.flags = flags;
    this.capacity = capacity;
    this.workspace.mask = { flags, stride: capacity };
  }

  /** The mask as a tensor [rows, length] (a copy), for the passes that take one. */
  private maskTensor(): Tensor {
    const out = new Int32Array(this.rows * this.maskLength);
    for (let b = 0; b < this.rows; b++) out.set(this.flags.subarray(b * this.capacity, b * this.capacity + this.maskLength), b * this.maskLength);
    return new Tensor('i32', [this.rows, this.maskLength], out);
  }

  reorder(indices: readonly number[]): void {
    for (const from of indices) if (!Number.isInteger(from) || from < 0 || from >= this.rows) throw new ShapeError(`session reorder: row ${from} does not exist (the session has ${this.rows})`);
    this.cache.reorder(indices);
    // Gathered into a spare array of the same size, then swapped, as the KV cache does (beam search reorders every step).
    const size = indices.length * this.capacity;
    const gathered = this.spareFlags?.length === size ? this.spareFlags : new Int32Array(size);
    indices.forEach((from, b) => gathered.set(this.flags.subarray(from * this.capacity, from * this.capacity + this.maskLength), b * this.capacity));
    this.spareFlags = this.flags;
    this.rows = indices.length;
    this.setFlags(gathered, this.capacity);
  }

  /** Forget every position from `length` on, so that different tokens can be fed from there (a chat that re-renders a turn). */
  truncate(length: number): void {
    if (length > this.cache.length) throw new ShapeError(`session truncate: ${length} positions asked, ${this.cache.length} cached`);
    this.cache.truncate(length);
    this.maskLength = length;
  }
}

/** HF's position id of a row's last token (see `positionIdsFromMask`): the real tokens up to it, less one; 1 for padding. */
function lastPosition(flags: Int32Array, start: number, length: number): number {
  let seen = 0;
  for (let j = 0; j < length; j++) seen += flags[start + j];
  return flags[start + length - 1] === 0 ? 1 : seen - 1;
}

// Mask positions a session holds before its rows first grow.
const INITIAL_MASK_CAPACITY = 64;

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
