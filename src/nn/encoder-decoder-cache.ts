/**
 * What an encoder-decoder keeps while it decodes (T5, BART, Marian): the encoder
 * runs once per input; each decoder layer attends to its own past through a
 * growing self-attention KV cache and to the encoder output through keys and
 * values projected once per input (they never change while decoding).
 */
import { ShapeError } from '../errors.js';
import type { DecodingSession, SessionInputs } from '../generation/types.js';
import { scale, scaleInto, Workspace } from '../ops/index.js';
import { needsGrad } from '../tensor/autograd.js';
import { gather, Tensor } from '../tensor/tensor.js';
import { fusedAttentionKernel } from '../kernels/attention.js';
import { attendKV, attendMerged, keyValueRows, maskTensor, mergedRows, mergeHeads, splitHeads, type AttendOptions, type MaskRows, type MultiHeadAttention } from './attention.js';
import { noHooks, type HookPoints } from './hooks.js';
import { KVCache, type LayerKV } from './kv-cache.js';

/** Keys and values of `source` per head: [batch, seq, d] → 2 × [batch, heads, seq, dHead]. Hook names k, v. */
export function projectKeysValues(attention: MultiHeadAttention, source: Tensor, hooks: HookPoints = noHooks): LayerKV {
  const key = hooks.run('k', splitHeads(attention.k.forward(source), attention.heads));
  const value = hooks.run('v', splitHeads(attention.v.forward(source), attention.heads));
  return { key, value };
}

/** `attend`'s mask, position bias and hooks; the scale goes on the queries instead. */
export interface AttendToOptions extends Omit<AttendOptions, 'scale' | 'positionBias'> {
  /** Multiplies the projected queries before q·kᵀ (BART scales q by dHead^-0.5 there, T5 not at all). */
  queryScale?: number;
  /** Additive position bias [1|batch, heads, queries, keys] (T5), a tensor or strided rows (a decoding session's buffer). */
  positionBias?: Tensor | MaskRows;
  /**
   * false: nothing reads the pattern (a decoding session), so the fused
   * kernel skips it; the unfused path (hooks, gradients) computes it anyway.
   * Default true.
   */
  withPattern?: boolean;
  /**
   * A decoding session's workspace (no hook attached): the query projection,
   * z and the output projection are written into its tensors.
   */
  buffers?: Workspace;
}

/**
 * Multi-head attention of x's queries to keys and values already projected
 * (from a KV cache, or from the encoder output once per input).
 * x [batch, queries, d] → out [batch, queries, d], pattern [batch, heads, queries, keys]
 * (absent when `withPattern` is false and the fused kernel ran).
 */
export function attendTo(attention: MultiHeadAttention, x: Tensor, kv: LayerKV, options?: AttendToOptions & { withPattern?: true }): { out: Tensor; pattern: Tensor };
export function attendTo(attention: MultiHeadAttention, x: Tensor, kv: LayerKV, options: AttendToOptions): { out: Tensor; pattern?: Tensor };
export function attendTo(attention: MultiHeadAttention, x: Tensor, kv: LayerKV, options: AttendToOptions = {}): { out: Tensor; pattern?: Tensor } {
  const hooks = options.hooks ?? noHooks;
  const buffers = hooks.active ? undefined : options.buffers;
  const rows = x.shape.slice(0, -1);
  let q = attention.q.forward(x, buffers?.f32([...rows, attention.q.outFeatures])); // [batch, queries, heads·dHead]
  // The projection is fresh and no hook has seen it yet: at inference it is scaled in place.
  if (options.queryScale !== undefined) q = needsGrad(q) ? scale(q, options.queryScale) : scaleInto(q, options.queryScale, q);
  const bias = options.positionBias;
  const fused = !hooks.active && !needsGrad(q, bias instanceof Tensor ? bias : undefined) ? fusedAttendTo(attention, q, kv, options, buffers) : undefined;
  if (fused) return fused;
  q = hooks.run('q', splitHeads(q, attention.heads)); // [batch, heads, queries, dHead]
  const { z, pattern } = attendKV(q, kv, { mask: options.mask, positionBias: bias && maskTensor(bias), hooks });
  const out = hooks.run('out', attention.o.forward(mergeHeads(z))); // [batch, queries, d]
  return { out, pattern };
}

/**
 * `attendTo` through the fused kernel, which reads each head of the query
 * projection [batch, queries, heads·dHead] in place and writes z as merged
 * heads (no split or merge copy), into `buffers` when given; undefined when
 * the kernel is not loaded or the keys need the unfused path (gradients).
 */
function fusedAttendTo(attention: MultiHeadAttention, q: Tensor, kv: LayerKV, options: AttendToOptions, buffers: Workspace | undefined): { out: Tensor; pattern?: Tensor } | undefined {
  const [batch, queries, width] = q.shape;
  const heads = attention.heads;
  if (!fusedAttentionKernel() || width % heads !== 0) return undefined;
  const dHead = width / heads;
  const history = keyValueRows(kv, batch, dHead);
  if (!history) return undefined;
  const { rows, kvHeads, keys } = history;
  const dims = { batch, heads, kvHeads, queries, keys, dHead };
  const terms = { mask: options.mask, positionBias: options.positionBias };
  const { z, pattern } = attendMerged(mergedRows(q.f32(), queries, width, dHead), rows.key, rows.value, dims, terms, options.withPattern !== false, buffers?.f32([batch, queries, width])); // z [batch, queries, heads·dHead]
  return { out: attention.o.forward(z, buffers?.f32([batch, queries, attention.o.outFeatures])), pattern };
}

/**
 * A decoder's causal self-attention over its KV cache: x's keys and values
 * [batch, n, heads·dHead] are appended to layer `layer` of `cache`, then x's
 * queries attend to the whole history. At inference with no hook attached the
 * projections are appended where they lie (no split copy) and read in place
 * by the fused kernel; otherwise the heads are split (hook names k, v) and
 * appended as tensors, as `projectKeysValues` gives them.
 */
export function attendToCache(attention: MultiHeadAttention, x: Tensor, cache: KVCache, layer: number, options: AttendToOptions): { out: Tensor; pattern?: Tensor } {
  const hooks = options.hooks ?? noHooks;
  const buffers = hooks.active ? undefined : options.buffers;
  const rows = x.shape.slice(0, -1);
  const k = attention.k.forward(x, buffers?.f32([...rows, attention.k.outFeatures])); // [batch, n, heads·dHead]
  const v = attention.v.forward(x, buffers?.f32([...rows, attention.v.outFeatures]));
  const heads = attention.heads;
  if (hooks.active || !fusedAttentionKernel() || needsGrad(k, v)) {
    const key = hooks.run('k', splitHeads(k, heads)); // [batch, heads, n, dHead]
    const value = hooks.run('v', splitHeads(v, heads));
    return attendTo(attention, x, cache.append(layer, key, value), options);
  }
  const [batch, n, width] = k.shape;
  if (width % heads !== 0 || v.shape[2] !== width) throw new ShapeError(`attention: keys ${k} and values ${v} do not split into ${heads} equal heads`);
  const dHead = width / heads;
  const history = cache.appendRows(layer, mergedRows(k.f32(), n, width, dHead), mergedRows(v.f32(), n, width, dHead), [batch, heads, n, dHead]);
  return attendTo(attention, x, history, options);
}

/** Row indices that repeat each of `batch` rows `times` times in a row: [0,0,…,1,1,…]. */
export function expandedRows(batch: number, times: number): number[] {
  return Array.from({ length: batch * times }, (_, i) => Math.floor(i / times));
}

/** The decoder's state for a batch of rows; `select` keeps and reorders rows (beam search). */
export class EncoderDecoderCache {
  /**
   * Which encoder input each row attends to. Rows with the same source hold
   * identical cross-attention keys and values, so a reorder that keeps every
   * row's source (beams moving within their own input) reuses them uncopied.
   */
  readonly sources: readonly number[];

  constructor(
    /** Self-attention keys and values of the decoder tokens seen so far, per layer. */
    readonly self: KVCache,
    /** Cross-attention keys and values of the encoder output, per layer, [rows, heads, S, dHead]. */
    readonly cross: readonly LayerKV[],
    /** Additive encoder padding mask [rows, 1, 1, S]. */
    readonly encoderMask: Tensor,
    sources?: readonly number[],
  ) {
    this.sources = sources ?? Array.from({ length: encoderMask.shape[0] }, (_, i) => i);
  }

  /** Decoder positions fed so far. */
  get length(): number {
    return this.self.length;
  }

  /** Batch rows `indices` (kept and reordered) as a new cache; this one is unchanged. */
  select(indices: readonly number[]): EncoderDecoderCache {
    return this.withRows(indices, this.self.select(indices));
  }

  /**
   * Batch rows `indices` as `select` gives them, reordering the self-attention
   * cache in place (beam search at every step: no copy of the whole history);
   * this cache shares that KV cache and is not to be used afterwards.
   */
  reorder(indices: readonly number[]): EncoderDecoderCache {
    const sources = this.sourcesOf(indices);
    this.self.reorder(indices);
    return this.withRows(indices, this.self, sources);
  }

  private sourcesOf(indices: readonly number[]): number[] {
    return indices.map((i) => {
      const source = this.sources[i];
      if (source === undefined) throw new ShapeError(`EncoderDecoderCache.select: row ${i} does not exist (the cache holds ${this.sources.length} rows)`);
      return source;
    });
  }

  private withRows(indices: readonly number[], self: KVCache, sources = this.sourcesOf(indices)): EncoderDecoderCache {
    const sameSources = sources.length === this.sources.length && sources.every((s, r) => s === this.sources[r]);
    if (sameSources) return new EncoderDecoderCache(self, this.cross, this.encoderMask, sources);
    return new EncoderDecoderCache(
      self,
      this.cross.map((kv) => ({ key: gather(kv.key, 0, indices), value: gather(kv.value, 0, indices) })),
      gather(this.encoderMask, 0, indices),
      sources,
    );
  }
}

/** ids [rows][n] → an i32 tensor [rows, n], refusing ragged rows. */
export function idsTensor(ids: readonly (readonly number[])[], what = 'ids'): Tensor {
  const n = ids[0]?.length ?? 0;
  for (const [r, row] of ids.entries()) {
    if (row.length !== n) throw new ShapeError(`${what}: row ${r} has ${row.length} tokens, row 0 has ${n}; every row needs the same length`);
  }
  return Tensor.i32(ids.flat(), [ids.length, n]);
}

/** What an encoder pass is asked for beside its input. */
export interface EncodeOptions {
  /**
   * false: nothing reads the encoder's attention patterns (a decoding
   * session), so the fused attention skips them ([batch, heads, S, S] a
   * layer) and `attentions` holds only what the unfused path computed anyway.
   * Default true.
   */
  outputAttentions?: boolean;
}

/** What a decoder pass is asked for beside its tokens and cache. */
export interface DecodeOptions {
  /**
   * false: nothing reads the attention patterns (a decoding session), so the
   * fused attention skips them and `attentions`, `crossAttentions` hold only
   * what the unfused path (hooks, gradients) computed anyway. Default true.
   */
  outputAttentions?: boolean;
  /**
   * A decoding session's buffers: with no hook attached, the pass writes its
   * intermediates and logits into the workspace's tensors, so its outputs are
   * overwritten by the session's next step.
   */
  buffers?: Workspace;
}

/**
 * The DecodingSession of an encoder-decoder: each step feeds the new decoder
 * tokens through the decoder with the cache and returns the last position's
 * logits; nothing reads the attention patterns, so none are computed unless
 * a hook is attached (the unfused path shows them to it).
 *
 * A step of one token per row with no hook attached runs on the session's
 * buffers: the ids, every intermediate of the decoder and the logits are
 * written into a workspace the next such step reuses (the KV cache grows in
 * place; the cross-attention keys and values were projected once), so once
 * the shapes have settled a decoded token allocates no array. Its logits are
 * therefore valid until the next call (see `DecodingSession.step`). Steps of
 * several tokens and hooked steps allocate (hooks may keep what they see).
 */
export class EncoderDecoderSession implements DecodingSession {
  private readonly buffers = new Workspace();

  constructor(
    private cache: EncoderDecoderCache,
    private readonly model: Pick<EncoderDecoderModel, 'decode'>,
    private readonly hooks: HookPoints = noHooks,
  ) {}

  /** Decoder positions fed so far. */
  get length(): number {
    return this.cache.length;
  }

  /** Buffers allocated by the session's workspace so far (a decode step in steady state adds none). */
  get allocations(): number {
    return this.buffers.allocations;
  }

  step(ids: readonly (readonly number[])[]): Tensor {
    const rows = this.cache.encoderMask.shape[0];
    if (ids.length !== rows) throw new ShapeError(`DecodingSession.step: got ${ids.length} rows of ids, the session holds ${rows}`);
    const onBuffers = !this.hooks.active && ids.every((row) => row.length === 1);
    const tokens = onBuffers ? this.tokens(ids) : idsTensor(ids, 'decoder ids'); // [rows, n]
    const { logits } = this.model.decode(tokens, this.cache, this.hooks, { outputAttentions: false, buffers: onBuffers ? this.buffers : undefined }); // [rows, n, vocab]
    const [, n, vocab] = logits.shape;
    return (n === 1 ? logits : logits.slice(1, n - 1, n)).reshape([rows, vocab]);
  }

  /** One id per row as the workspace's first tensor [rows, 1] (the step's pass starts here). */
  private tokens(ids: readonly (readonly number[])[]): Tensor {
    this.buffers.reset();
    const tokens = this.buffers.i32([ids.length, 1]);
    for (let r = 0; r < ids.length; r++) tokens.data[r] = ids[r][0];
    return tokens;
  }

  reorder(indices: readonly number[]): void {
    this.cache = this.cache.reorder(indices);
  }
}

/** Check SessionInputs and give them as tensors: ids and mask [batch, S]. */
export function sessionTensors(inputs: SessionInputs): { ids: Tensor; mask: Tensor } {
  if (!Number.isInteger(inputs.expandBy) || inputs.expandBy < 1) {
    throw new ShapeError(`SessionInputs.expandBy must be a positive integer, found ${inputs.expandBy}`);
  }
  const ids = idsTensor(inputs.inputIds, 'encoder input ids');
  const mask = idsTensor(inputs.attentionMask, 'encoder attention mask');
  if (ids.shape[0] !== mask.shape[0] || ids.shape[1] !== mask.shape[1]) {
    throw new ShapeError(`SessionInputs: input ids are [${ids.shape.join(', ')}] but the attention mask is [${mask.shape.join(', ')}]`);
  }
  return { ids, mask };
}

/** What every encoder-decoder family offers beside generation: the encoder once, then the decoder over a cache. */
export interface EncoderDecoderModel {
  readonly vocabSize: number;
  encode(ids: Tensor, attentionMask: Tensor, hooks?: HookPoints, options?: EncodeOptions): { output: Tensor; hiddenStates: Tensor[]; attentions: Tensor[]; positionBias?: Tensor };
  startCache(encoderOutput: Tensor, attentionMask: Tensor, hooks?: HookPoints, sources?: readonly number[]): EncoderDecoderCache;
  decode(
    ids: Tensor,
    cache: EncoderDecoderCache,
    hooks?: HookPoints,
    options?: DecodeOptions,
  ): { logits: Tensor; hiddenStates: Tensor[]; attentions: Tensor[]; crossAttentions: Tensor[]; positionBias?: Tensor };
}

/**
 * The DecodingSession of any encoder-decoder: encode once (without the
 * attention patterns nobody reads), repeat each row `expandBy` times, and
 * decode step by step from the caches; `hooks` see the encoder once and the
 * decoder at every step.
 */
export function startEncoderDecoderSession(model: EncoderDecoderModel, inputs: SessionInputs, hooks: HookPoints = noHooks): DecodingSession {
  const { ids, mask } = sessionTensors(inputs);
  const encoder = model.encode(ids, mask, hooks, { outputAttentions: false });
  const rows = expandedRows(ids.shape[0], inputs.expandBy);
  const cache = model.startCache(gather(encoder.output, 0, rows), gather(mask, 0, rows), hooks, rows);
  return new EncoderDecoderSession(cache, model, hooks);
}
