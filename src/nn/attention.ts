import { ShapeError } from '../errors.js';
import { add, matmul, scale as scaleBy, softmax } from '../ops/index.js';
import { attentionKernel, type AttentionKernel } from '../kernels/index.js';
import { needsGrad } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';
import { noHooks, type HookPoints } from './hooks.js';
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

export { repeatKv } from '../ops/repeat-kv.js';

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
  const hooks = options.hooks ?? noHooks;
  // Decoding asks a few queries against the whole cache: one fused native pass,
  // unless a hook wants to see or change the scores, the pattern or z.
  const fused = attentionKernel();
  if (fused && !hooks.active && !options.positionBias && q.shape[2] <= FUSED_MAX_QUERIES && !needsGrad(q, k, v)) {
    return fusedAttend(fused, q, k, v, options.scale ?? 1, options.mask);
  }
  let scores = matmul(q, k, { transposeB: true }); // [batch, heads, queries, keys]
  if (options.scale !== undefined && options.scale !== 1) scores = scaleBy(scores, options.scale);
  if (options.positionBias) scores = add(scores, options.positionBias);
  if (options.mask) scores = add(scores, options.mask);
  scores = hooks.run('scores', scores);
  const pattern = hooks.run('pattern', softmax(scores));
  const z = hooks.run('z', matmul(pattern, v)); // [batch, heads, queries, dHead]
  return { z, pattern };
}

/** Up to this many queries (decode steps) take the fused pass; prompts use the matmul kernel. */
const FUSED_MAX_QUERIES = 4;

/**
 * `attend` through the fused kernel: q [batch, heads, queries, dHead], k and v
 * [batch, heads, keys, dHead], mask broadcastable to [batch, heads, queries, keys].
 */
function fusedAttend(kernel: AttentionKernel, q: Tensor, k: Tensor, v: Tensor, scale: number, mask?: Tensor): { z: Tensor; pattern: Tensor } {
  const [batch, heads, queries, dHead] = q.shape;
  const keys = k.shape[2];
  if (k.shape[0] !== batch || k.shape[1] !== heads || k.shape[3] !== dHead || v.shape.some((d, i) => d !== k.shape[i])) {
    throw new ShapeError(`attend: q ${q}, k ${k} and v ${v} do not line up`);
  }
  const pattern = new Float32Array(batch * heads * queries * keys); // [batch, heads, queries, keys]
  const z = new Float32Array(batch * heads * queries * dHead); // [batch, heads, queries, dHead]
  const strides = mask ? broadcastStrides(mask, [batch, heads, queries, keys]) : new Float32Array(4);
  kernel.attend(q.f32(), k.f32(), v.f32(), mask ? mask.f32() : null, strides, scale, pattern, z, batch, heads, queries, keys, dHead);
  return { z: new Tensor('f32', [batch, heads, queries, dHead], z), pattern: new Tensor('f32', [batch, heads, queries, keys], pattern) };
}

/** Element strides of `t` read as `shape` (left-padded with 1s; 0 on every axis it repeats). */
function broadcastStrides(t: Tensor, shape: readonly number[]): Float32Array {
  if (t.rank > shape.length) throw new ShapeError(`attend: mask ${t} has more axes than [${shape.join(', ')}]`);
  const dims = [...new Array<number>(shape.length - t.rank).fill(1), ...t.shape];
  const strides = new Float32Array(shape.length);
  let stride = 1;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    if (dims[axis] !== 1 && dims[axis] !== shape[axis]) throw new ShapeError(`attend: mask ${t} does not broadcast to [${shape.join(', ')}]`);
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
    const hooks = options.hooks ?? noHooks;
    const source = options.context ?? x;
    const q = hooks.run('q', splitHeads(this.q.forward(x), this.heads)); // [batch, heads, queries, dHead]
    const k = hooks.run('k', splitHeads(this.k.forward(source), this.heads)); // [batch, heads, keys, dHead]
    const v = hooks.run('v', splitHeads(this.v.forward(source), this.heads));
    const { z, pattern } = attend(q, k, v, { ...options, hooks });
    const out = hooks.run('out', this.o.forward(mergeHeads(z))); // [batch, queries, d]
    return { out, pattern };
  }
}
