import { ShapeError } from '../errors.js';
import { add, matmul, scale as scaleBy, softmax } from '../ops/index.js';
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
  let scores = matmul(q, k, { transposeB: true }); // [batch, heads, queries, keys]
  if (options.scale !== undefined && options.scale !== 1) scores = scaleBy(scores, options.scale);
  if (options.positionBias) scores = add(scores, options.positionBias);
  if (options.mask) scores = add(scores, options.mask);
  scores = hooks.run('scores', scores);
  const pattern = hooks.run('pattern', softmax(scores));
  const z = hooks.run('z', matmul(pattern, v)); // [batch, heads, queries, dHead]
  return { z, pattern };
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
