import { ShapeError, UnsupportedError } from '../errors.js';
import { add, matmul, scale as scaleBy, softmax } from '../ops/index.js';
import { fusedAttentionKernel } from '../kernels/attention.js';
import { needsGrad } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';
import { noHooks, type HookPoints } from './hooks.js';
import { CachedKV, packedRows, type HeadRows, type LayerKV } from './kv-cache.js';
import type { Linear } from './linear.js';

/** [batch, seq, heads·dHead] → [batch, heads, seq, dHead]: one slice of the model width per head. */
export function splitHeads(x: Tensor, heads: number): Tensor {
  const [batch, seq, width] = x.shape;
  if (width % heads !== 0) throw new ShapeError(`splitHeads: width ${width} is not divisible by ${heads} heads`);
  return x.reshape([batch, seq, heads, width / heads]).permute([0, 2, 1, 3]);
}

/** [batch, heads, seq, dHead] → [batch, seq, heads·dHead]: concatenate the heads again. */
export function mergeHeads(x: Tensor): Tensor {
  const [batch, heads, seq, dHead] = x.shape;
  return x.permute([0, 2, 1, 3]).reshape([batch, seq, heads * dHead]);
}

export interface AttendOptions {
  /** Multiplies q·kᵀ (1/√dHead in most models; 1 in T5, and in BART where q is pre-scaled). */
  scale?: number;
  /** Additive mask broadcastable to [batch, heads, queries, keys] (0 = visible). */
  mask?: Tensor;
  /** Additive position bias [1|batch, heads, queries, keys] (T5). */
  positionBias?: Tensor;
  hooks?: HookPoints;
}

/**
 * Scaled dot-product attention (Vaswani et al. 2017, eq. 1): softmax(q·kᵀ·scale + mask) · v.
 * q [batch, heads, queries, dHead], k and v [batch, heads, keys, dHead] → z [batch, heads, queries, dHead].
 * Hook names are relative to the attention block: `scores`, `pattern`, `z`.
 */
export function attend(q: Tensor, k: Tensor, v: Tensor, options: AttendOptions = {}): { z: Tensor; pattern: Tensor } {
  return fusedAttend(q, { key: k, value: v }, options) ?? unfusedAttend(q, k, v, options);
}

/**
 * `attend` over keys and values that may sit in a KV cache: the fused kernel
 * reads a `CachedKV`'s buffers in place; the unfused path (hooks, gradients,
 * no addon) gets the filled positions as tensors.
 */
export function attendKV(q: Tensor, kv: LayerKV, options: AttendOptions = {}): { z: Tensor; pattern: Tensor } {
  return fusedAttend(q, kv, options) ?? unfusedAttend(q, kv.key, kv.value, options);
}

/** The attention as separate ops: what hooks see and patch, and what gradients flow through. */
function unfusedAttend(q: Tensor, k: Tensor, v: Tensor, options: AttendOptions): { z: Tensor; pattern: Tensor } {
  const hooks = options.hooks ?? noHooks;
  let scores = matmul(q, k, { transposeB: true }); // [batch, heads, queries, keys]
  if (options.scale !== undefined && options.scale !== 1) scores = scaleBy(scores, options.scale);
  if (options.positionBias) scores = add(scores, options.positionBias);
  if (options.mask) scores = add(scores, options.mask);
  scores = hooks.run('scores', scores);
  const pattern = hooks.run('pattern', softmax(scores));
  const z = hooks.run('z', matmul(pattern, v)); // [batch, heads, queries, dHead]
  return { z, pattern };
}

/**
 * The attention through the native fused kernel (one tiled pass, online
 * softmax), or undefined when it does not apply: no addon, a hook that wants
 * to see or change the scores, the pattern or z, or inputs that require
 * gradients. q [batch, heads, queries, dHead]; kv [batch, kvHeads, keys, dHead]
 * with heads a multiple of kvHeads (grouped-query attention).
 */
export function fusedAttend(q: Tensor, kv: LayerKV, options: AttendOptions): { z: Tensor; pattern: Tensor } | undefined {
  const call = fusedOperands(q, kv, options);
  if (!call) return undefined;
  const pattern = attendRows(call.operands, call.dims, options);
  return { z: call.z, pattern };
}

/**
 * softmax(q·kᵀ·scale + mask) · v without the pattern, for callers that do not
 * return it (an encoder asked for no `attentions`): the fused kernel then
 * never writes the probabilities. q [batch, heads, queries, dHead], k and v
 * [batch, heads, keys, dHead] → z [batch, heads, queries, dHead].
 */
export function attendValues(q: Tensor, k: Tensor, v: Tensor, options: AttendOptions = {}): Tensor {
  const call = fusedOperands(q, { key: k, value: v }, options);
  if (!call) return unfusedAttend(q, k, v, options).z;
  runFused(call.operands, call.dims, options, null);
  return call.z;
}

/** The fused kernel's operands for `attend`'s tensors (z allocated), or undefined when the fused path does not apply. */
function fusedOperands(q: Tensor, kv: LayerKV, options: AttendOptions): { operands: AttentionOperands; dims: AttentionDims; z: Tensor } | undefined {
  if (!fusedAttentionKernel() || options.hooks?.active || needsGrad(q) || q.rank !== 4) return undefined;
  const [batch, heads, queries, dHead] = q.shape;
  const history = keyValueRows(kv, batch, dHead);
  if (!history) return undefined;
  const { rows, kvHeads, keys } = history;
  const z = new Float32Array(batch * heads * queries * dHead); // [batch, heads, queries, dHead]
  return {
    operands: { q: packedRows(q.f32(), heads, queries, dHead), k: rows.key, v: rows.value, z: packedRows(z, heads, queries, dHead) },
    dims: { batch, heads, kvHeads, queries, keys, dHead },
    z: new Tensor('f32', [batch, heads, queries, dHead], z),
  };
}

/**
 * A layer's keys and values as the fused kernel reads them: a `CachedKV`'s
 * buffers where they lie, or packed tensors [batch, kvHeads, keys, dHead];
 * undefined when the tensors require gradients (the unfused ops record them).
 */
export function keyValueRows(kv: LayerKV, batch: number, dHead: number): { rows: { key: HeadRows; value: HeadRows }; kvHeads: number; keys: number } | undefined {
  if (kv instanceof CachedKV) {
    if (kv.batch !== batch || kv.dHead !== dHead) throw new ShapeError(`attend: ${batch} rows of ${dHead}-wide heads do not line up with the cached keys [${kv.batch}, ${kv.heads}, ${kv.length}, ${kv.dHead}]`);
    return { rows: kv.rows, kvHeads: kv.heads, keys: kv.length };
  }
  const { key, value } = kv;
  if (needsGrad(key, value)) return undefined;
  if (key.rank !== 4 || key.shape[0] !== batch || key.shape[3] !== dHead || value.shape.some((d, i) => d !== key.shape[i])) {
    throw new ShapeError(`attend: k ${key} and v ${value} do not line up with ${batch} rows of ${dHead}-wide heads`);
  }
  const [, kvHeads, keys] = key.shape;
  return { rows: { key: packedRows(key.f32(), kvHeads, keys, dHead), value: packedRows(value.f32(), kvHeads, keys, dHead) }, kvHeads, keys };
}

/**
 * Heads side by side in rows of `rowWidth` floats, `seq` rows per batch row:
 * [batch, seq, …heads·dHead…] read per head, the first head from `start`.
 */
export function mergedRows(data: Float32Array, seq: number, rowWidth: number, dHead: number, start = 0): HeadRows {
  return { data, strides: [seq * rowWidth, dHead, rowWidth], start };
}

/** The array the kernel reads rows from: the rows' own, or a view from their start. */
function rowData(rows: HeadRows): Float32Array {
  return rows.start ? rows.data.subarray(rows.start) : rows.data;
}

/**
 * An additive term of the scores (a mask or a position bias) read through
 * element strides over (batch, head, query, key), 0 on an axis it repeats: a
 * decoding session's mask, whose rows lie in a buffer that grows with the
 * session and so are further apart than the keys of one step, or T5's
 * position bias of one decoder step, written into the session's buffer.
 */
export interface MaskRows {
  data: Float32Array;
  /** [batch | 1, heads | 1, queries, keys] */
  shape: readonly [number, number, number, number];
  strides: readonly [number, number, number, number];
}

/**
 * The mask (or bias) as a packed tensor of its shape for the unfused ops: a
 * tensor as given, strided rows copied (the unfused path of a decoding step
 * that lent its rows: no fused kernel, or gradients).
 */
export function maskTensor(mask: Tensor | MaskRows): Tensor {
  if (mask instanceof Tensor) return mask;
  const [batch, heads, queries, keys] = mask.shape;
  const [sb, sh, sq, sk] = mask.strides;
  const out = new Float32Array(batch * heads * queries * keys);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < queries; i++) {
        const row = ((b * heads + h) * queries + i) * keys;
        for (let j = 0; j < keys; j++) out[row + j] = mask.data[b * sb + h * sh + i * sq + j * sk];
      }
    }
  }
  return new Tensor('f32', [...mask.shape], out);
}

/** The fused kernel's options: as `AttendOptions`, and the mask and position bias may also be given as strided rows. */
export interface FusedAttendOptions extends Omit<AttendOptions, 'hooks' | 'mask' | 'positionBias'> {
  mask?: Tensor | MaskRows;
  positionBias?: Tensor | MaskRows;
}

/**
 * The fused kernel with q read as merged heads (straight from a projection)
 * and z written as merged heads [batch, queries, heads·dHead], ready for the
 * output projection: no split or merge copy. z goes into `into` when given
 * (a decoding session's workspace). Returns z and the pattern (or no pattern
 * when `withPattern` is false).
 */
export function attendMerged(q: HeadRows, k: HeadRows, v: HeadRows, dims: AttentionDims, options: FusedAttendOptions): { z: Tensor; pattern: Tensor };
export function attendMerged(q: HeadRows, k: HeadRows, v: HeadRows, dims: AttentionDims, options: FusedAttendOptions, withPattern: boolean, into?: Tensor): { z: Tensor; pattern?: Tensor };
export function attendMerged(q: HeadRows, k: HeadRows, v: HeadRows, dims: AttentionDims, options: FusedAttendOptions, withPattern = true, into?: Tensor): { z: Tensor; pattern?: Tensor } {
  const { batch, heads, queries, dHead } = dims;
  const width = heads * dHead;
  if (into && into.size !== batch * queries * width) throw new ShapeError(`attend: z ${into} does not hold [${batch}, ${queries}, ${width}]`);
  const z = into ?? new Tensor('f32', [batch, queries, width], new Float32Array(batch * queries * width)); // [batch, queries, heads·dHead]
  const pattern = attendRows({ q, k, v, z: mergedRows(z.data as Float32Array, queries, width, dHead) }, dims, options, withPattern);
  return { z, pattern };
}

/** What the fused kernel reads (q, k, v) and writes (z), each through its strides. */
export interface AttentionOperands {
  q: HeadRows;
  k: HeadRows;
  v: HeadRows;
  z: HeadRows;
}

/** The sizes of one attention call. */
export interface AttentionDims {
  batch: number;
  heads: number;
  kvHeads: number;
  queries: number;
  keys: number;
  dHead: number;
}

/**
 * The fused kernel on operands read and written through their strides (q, k,
 * v straight from a fused projection or a KV cache; z as merged heads): writes
 * z and returns the pattern [batch, heads, queries, keys], or skips it when
 * `withPattern` is false. For callers that checked `fusedAttentionKernel()`
 * and that no hook or gradient needs the unfused ops.
 */
export function attendRows(operands: AttentionOperands, dims: AttentionDims, options: FusedAttendOptions): Tensor;
export function attendRows(operands: AttentionOperands, dims: AttentionDims, options: FusedAttendOptions, withPattern: boolean): Tensor | undefined;
export function attendRows(operands: AttentionOperands, dims: AttentionDims, options: FusedAttendOptions, withPattern = true): Tensor | undefined {
  if (!withPattern) {
    runFused(operands, dims, options, null);
    return undefined;
  }
  const { batch, heads, queries, keys } = dims;
  const pattern = new Float32Array(batch * heads * queries * keys); // [batch, heads, queries, keys]
  runFused(operands, dims, options, pattern);
  return new Tensor('f32', [batch, heads, queries, keys], pattern);
}

// The strides of one call (q, k, v, z, mask, bias): the call is synchronous and
// the kernel keeps nothing, so one array serves every call.
const callStrides = new Float64Array(20);

/** One call of the fused kernel; `pattern` receives the probabilities, or null skips them. */
function runFused(operands: AttentionOperands, dims: AttentionDims, options: FusedAttendOptions, pattern: Float32Array | null): void {
  const kernel = fusedAttentionKernel();
  if (!kernel) throw new UnsupportedError('attendRows: the native fused attention is not loaded (call useFastestKernel(); without the addon use attend)');
  const { batch, heads, kvHeads, queries, keys, dHead } = dims;
  if (kvHeads === 0 || heads % kvHeads !== 0) throw new ShapeError(`attend: ${heads} query heads are not a multiple of ${kvHeads} key/value heads`);
  const strides = callStrides.fill(0);
  strides.set(operands.q.strides, 0);
  strides.set(operands.k.strides, 3);
  strides.set(operands.v.strides, 6);
  strides.set(operands.z.strides, 9);
  const { mask, positionBias } = options;
  if (mask) strides.set(mask instanceof Tensor ? broadcastStrides(mask, [batch, heads, queries, keys]) : mask.strides, 12);
  if (positionBias) strides.set(positionBias instanceof Tensor ? broadcastStrides(positionBias, [batch, heads, queries, keys]) : positionBias.strides, 16);
  kernel.attention(rowData(operands.q), rowData(operands.k), rowData(operands.v), rowData(operands.z), pattern, termData(mask), termData(positionBias), strides, options.scale ?? 1, batch, heads, kvHeads, queries, keys, dHead);
}

/** The floats of an additive term, a tensor's or strided rows', or null when there is none. */
function termData(term: Tensor | MaskRows | undefined): Float32Array | null {
  if (!term) return null;
  return term instanceof Tensor ? term.f32() : term.data;
}

/** Element strides of `t` read as `shape` (left-padded with 1s; 0 on every axis it repeats). */
function broadcastStrides(t: Tensor, shape: readonly number[]): number[] {
  if (t.rank > shape.length) throw new ShapeError(`attend: ${t} has more axes than [${shape.join(', ')}]`);
  const dims = [...new Array<number>(shape.length - t.rank).fill(1), ...t.shape];
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    if (dims[axis] !== 1 && dims[axis] !== shape[axis]) throw new ShapeError(`attend: ${t} does not broadcast to [${shape.join(', ')}]`);
    strides[axis] = dims[axis] === 1 ? 0 : stride;
    stride *= dims[axis];
  }
  return strides;
}

export interface MultiHeadAttentionOptions extends Omit<AttendOptions, 'hooks'> {
  hooks?: HookPoints;
  /** Keys and values come from here instead of x (cross-attention to the encoder output). */
  context?: Tensor;
}

/**
 * Multi-head attention (Vaswani et al. 2017 §3.2.2): project x to queries and
 * x (or the context) to keys and values, attend in each head, concatenate the
 * heads and project back. Hook names: q, k, v (per head), scores, pattern, z, out.
 */
export class MultiHeadAttention {
  constructor(
    readonly q: Linear,
    readonly k: Linear,
    readonly v: Linear,
    readonly o: Linear,
    readonly heads: number,
  ) {}

  forward(x: Tensor, options: MultiHeadAttentionOptions = {}): { out: Tensor; pattern: Tensor } {
    const fused = this.fusedForward(x, options, true);
    if (fused?.pattern) return { out: fused.out, pattern: fused.pattern };
    const { q, k, v, hooks } = this.project(x, options);
    const { z, pattern } = attend(q, k, v, { ...options, hooks });
    return { out: this.merge(z, hooks), pattern };
  }

  /** `forward`'s output alone: with nothing to return the pattern to, the fused kernel skips it. */
  output(x: Tensor, options: MultiHeadAttentionOptions = {}): Tensor {
    const fused = this.fusedForward(x, options, false);
    if (fused) return fused.out;
    const { q, k, v, hooks } = this.project(x, options);
    return this.merge(attendValues(q, k, v, { ...options, hooks }), hooks);
  }

  /**
   * Inference with no hook attached and the fused kernel loaded: the kernel
   * reads each head of the q, k and v projections [batch, seq, heads·dHead]
   * where they lie and writes z as merged heads, so there is no split or merge
   * copy (a permute of the whole activation each, four per layer). Undefined
   * when that does not apply (the caller then runs the unfused ops).
   */
  private fusedForward(x: Tensor, options: MultiHeadAttentionOptions, withPattern: boolean): { out: Tensor; pattern?: Tensor } | undefined {
    const source = options.context ?? x;
    if (!fusedAttentionKernel() || options.hooks?.active || needsGrad(x, source) || this.hasTrainableParameters()) return undefined;
    const q = this.q.forward(x); // [batch, queries, heads·dHead]
    const k = this.k.forward(source); // [batch, keys, heads·dHead]
    const v = this.v.forward(source);
    const [batch, queries, width] = q.shape;
    const keys = k.shape[1];
    if (width % this.heads !== 0 || k.shape[2] !== width || v.shape[2] !== width || k.shape[0] !== batch) {
      throw new ShapeError(`attention: projections q ${q}, k ${k}, v ${v} do not split into ${this.heads} equal heads`);
    }
    const dHead = width / this.heads;
    const { z, pattern } = attendMerged(
      mergedRows(q.f32(), queries, width, dHead),
      mergedRows(k.f32(), keys, width, dHead),
      mergedRows(v.f32(), keys, width, dHead),
      { batch, heads: this.heads, kvHeads: this.heads, queries, keys, dHead },
      options,
      withPattern,
    );
    return { out: this.o.forward(z), pattern };
  }

  /** Whether any weight or bias requires gradients (training takes the unfused ops, which record them). */
  private hasTrainableParameters(): boolean {
    return [this.q, this.k, this.v, this.o].some((l) => (l.stored instanceof Tensor && l.stored.requiresGrad) || l.bias?.requiresGrad === true);
  }

  private project(x: Tensor, options: MultiHeadAttentionOptions): { q: Tensor; k: Tensor; v: Tensor; hooks: HookPoints } {
    const hooks = options.hooks ?? noHooks;
    const source = options.context ?? x;
    const q = hooks.run('q', splitHeads(this.q.forward(x), this.heads)); // [batch, heads, queries, dHead]
    const k = hooks.run('k', splitHeads(this.k.forward(source), this.heads)); // [batch, heads, keys, dHead]
    const v = hooks.run('v', splitHeads(this.v.forward(source), this.heads));
    return { q, k, v, hooks };
  }

  /** z [batch, heads, queries, dHead] → out [batch, queries, d]. */
  private merge(z: Tensor, hooks: HookPoints): Tensor {
    return hooks.run('out', this.o.forward(mergeHeads(z)));
  }
}
