/**
 * Rotary position embedding, RoPE (Su et al. 2021, "RoFormer"), in Hugging Face's
 * `rotate_half` layout: the head dimension is split into two halves
 * [x1, x2] and each pair (x1[i], x2[i]) is rotated by the angle
 * position · inv_freq[i]. llama2.c (and the original Meta code) rotate
 * interleaved pairs (x[2i], x[2i+1]) instead; its checkpoints are permuted into
 * this layout when loaded.
 */
import { ShapeError } from '../errors.js';
import { rotary } from '../ops/rotary.js';
import type { Workspace } from '../ops/workspace.js';
import { Tensor } from '../tensor/tensor.js';

/** The `rope_scaling` kinds RotaryEmbedding implements (io/config.ts parses them from config.json). */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'dynamic'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

/** inv_freq[i] = 1 / θ^(2i/d), in float32 as HF computes it (`_compute_default_rope_parameters`). */
export function ropeInverseFrequencies(dim: number, theta: number): Float32Array {
  if (dim % 2 !== 0) throw new ShapeError(`rotary dimension ${dim} must be even`);
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < out.length; i++) out[i] = 1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / dim)));
  return out;
}

/**
 * Llama 3.1's frequency-dependent scaling: long wavelengths are slowed by
 * `factor`, short ones kept, and the band between blended smoothly
 * (HF `_compute_llama3_parameters`).
 */
export function llama3InverseFrequencies(base: Float32Array, s: Extract<RopeScaling, { type: 'llama3' }>): Float32Array {
  const lowFreqWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  return base.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen > lowFreqWavelen) return f / s.factor;
    if (wavelen < highFreqWavelen) return f;
    const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}

/**
 * The rotary table of a model: inverse frequencies (after any scaling) and the
 * cos/sin of position · inv_freq for given position ids. "dynamic" NTK scaling
 * grows θ once a position beyond max_position_embeddings is seen and keeps it,
 * as HF's `_dynamic_frequency_update` does.
 */
export class RotaryEmbedding {
  private invFreq: Float32Array;
  private maxSeenLength: number;

  constructor(
    readonly dim: number,
    readonly theta: number,
    readonly scaling: RopeScaling | null,
    readonly maxPositionEmbeddings: number,
  ) {
    this.invFreq = this.frequencies(maxPositionEmbeddings);
    this.maxSeenLength = maxPositionEmbeddings;
  }

  private frequencies(seqLen: number): Float32Array {
    const s = this.scaling;
    if (!s) return ropeInverseFrequencies(this.dim, this.theta);
    if (s.type === 'linear') return ropeInverseFrequencies(this.dim, this.theta).map((f) => f / s.factor);
    if (s.type === 'llama3') return llama3InverseFrequencies(ropeInverseFrequencies(this.dim, this.theta), s);
    // Dynamic NTK (bloc97): θ' = θ · (factor·L/L₀ − (factor − 1))^(d/(d−2)) for L > L₀.
    const len = Math.max(seqLen, this.maxPositionEmbeddings);
    const base = this.theta * Math.pow((s.factor * len) / this.maxPositionEmbeddings - (s.factor - 1), this.dim / (this.dim - 2));
    return ropeInverseFrequencies(this.dim, base);
  }

  /**
   * cos and sin of the rotation angles, each [batch, seq, dim] (both halves
   * share one angle); into two tensors of `buffers` when given (a decoding
   * session's workspace).
   */
  cosSin(positionIds: Tensor, buffers?: Workspace): { cos: Tensor; sin: Tensor } {
    const [batch, seq] = positionIds.shape;
    const pos = positionIds.data;
    if (this.scaling?.type === 'dynamic') {
      let maxPos = 0;
      for (let i = 0; i < pos.length; i++) maxPos = Math.max(maxPos, pos[i]);
      const seqLen = maxPos + 1;
      if (seqLen > this.maxSeenLength) {
        this.invFreq = this.frequencies(seqLen);
        this.maxSeenLength = seqLen;
      } else if (seqLen < this.maxPositionEmbeddings && this.maxSeenLength > this.maxPositionEmbeddings) {
        this.invFreq = this.frequencies(this.maxPositionEmbeddings);
        this.maxSeenLength = this.maxPositionEmbeddings;
      }
    }
    const half = this.dim / 2;
    const shape = [batch, seq, this.dim];
    const cosTensor = buffers ? buffers.f32(shape) : new Tensor('f32', shape, new Float32Array(batch * seq * this.dim));
    const sinTensor = buffers ? buffers.f32(shape) : new Tensor('f32', shape, new Float32Array(batch * seq * this.dim));
    const cos = cosTensor.data as Float32Array;
    const sin = sinTensor.data as Float32Array;
    for (let t = 0; t < batch * seq; t++) {
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(pos[t] * this.invFreq[i]);
        const c = Math.cos(angle);
        const s = Math.sin(angle);
        cos[t * this.dim + i] = c;
        cos[t * this.dim + half + i] = c;
        sin[t * this.dim + i] = s;
        sin[t * this.dim + half + i] = s;
      }
    }
    return { cos: cosTensor, sin: sinTensor };
  }
}

/**
 * Rotate queries or keys: x·cos + rotate_half(x)·sin with rotate_half([x1, x2]) = [−x2, x1].
 * x [batch, heads, seq, dim]; cos, sin [batch, seq, dim].
 */
export function applyRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return rotary(x, cos, sin);
}
