/**
 * Pooling: one vector per text from the encoder's per-token hidden states,
 * as sentence-transformers' `Pooling` module computes it (v3). Only real
 * tokens (attention_mask = 1) take part.
 */
import { ConfigError, ShapeError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * - `cls`: the first token's state ([CLS] / <s>).
 * - `mean`: Σ h·mask / max(Σ mask, 1e-9).
 * - `max`: element-wise max over real tokens (padding set to −1e9 first).
 * - `mean_sqrt_len`: Σ h·mask / √(Σ mask).
 * - `weightedmean`: mean weighted by position 1…T (SGPT).
 * - `lasttoken`: the last real token's state (decoder-style embedders).
 */
export type PoolingMode = 'cls' | 'mean' | 'max' | 'mean_sqrt_len' | 'weightedmean' | 'lasttoken';

/** sentence-transformers concatenates the active modes in this order. */
export const POOLING_MODES: readonly PoolingMode[] = ['cls', 'max', 'mean', 'mean_sqrt_len', 'weightedmean', 'lasttoken'];

export function checkPoolingMode(mode: string, where: string): PoolingMode {
  if (!(POOLING_MODES as readonly string[]).includes(mode)) {
    throw new ConfigError(`${where}: unknown pooling "${mode}"; supported: ${POOLING_MODES.join(', ')}`);
  }
  return mode as PoolingMode;
}

/**
 * Pool hidden [batch, seq, d] under mask [batch, seq] into one Float32Array per
 * row; with several modes the results are concatenated in `POOLING_MODES` order.
 * `skipFirst` tokens of each row (an instruction prompt with include_prompt=false)
 * are left out of every mode but `cls`, as sentence-transformers masks them.
 */
export function pool(hidden: Tensor, attentionMask: Tensor, modes: readonly PoolingMode[], skipFirst = 0): Float32Array[] {
  if (hidden.rank !== 3) throw new ShapeError(`pool: hidden states must be [batch, seq, d], found [${hidden.shape.join(', ')}]`);
  const [batch, seq, d] = hidden.shape;
  if (attentionMask.shape[0] !== batch || attentionMask.shape[1] !== seq) {
    throw new ShapeError(`pool: attention mask [${attentionMask.shape.join(', ')}] does not match hidden states [${hidden.shape.join(', ')}]`);
  }
  if (modes.length === 0) throw new ConfigError('pool: no pooling mode selected');
  const ordered = POOLING_MODES.filter((m) => modes.includes(m));
  const h = hidden.f32();
  const out: Float32Array[] = [];
  for (let b = 0; b < batch; b++) {
    const row = h.subarray(b * seq * d, (b + 1) * seq * d);
    const mask = Array.from({ length: seq }, (_, t) => (t >= skipFirst && attentionMask.data[b * seq + t] !== 0 ? 1 : 0));
    const parts = ordered.map((mode) => poolRow(row, mask, seq, d, mode));
    const joined = new Float32Array(parts.length * d);
    parts.forEach((p, i) => joined.set(p, i * d));
    out.push(joined);
  }
  return out;
}

function poolRow(h: Float32Array, mask: number[], seq: number, d: number, mode: PoolingMode): Float32Array {
  const out = new Float32Array(d);
  switch (mode) {
    case 'cls':
      out.set(h.subarray(0, d));
      return out;
    case 'lasttoken': {
      // The last position whose mask is 1; an all-padding row uses position seq − 1 (sentence-transformers' rule).
      let last = seq - 1;
      for (let t = seq - 1; t >= 0; t--) {
        if (mask[t]) {
          last = t;
          break;
        }
      }
      out.set(h.subarray(last * d, (last + 1) * d));
      return out;
    }
    case 'max': {
      out.fill(-Infinity);
      for (let t = 0; t < seq; t++) {
        for (let j = 0; j < d; j++) {
          const v = mask[t] ? h[t * d + j] : -1e9;
          if (v > out[j]) out[j] = v;
        }
      }
      return out;
    }
    case 'mean':
    case 'mean_sqrt_len':
    case 'weightedmean': {
      let weightSum = 0;
      const sum = new Float64Array(d);
      for (let t = 0; t < seq; t++) {
        const w = mode === 'weightedmean' ? mask[t] * (t + 1) : mask[t];
        if (w === 0) continue;
        weightSum += w;
        for (let j = 0; j < d; j++) sum[j] += w * h[t * d + j];
      }
      const denominator = mode === 'mean_sqrt_len' ? Math.sqrt(Math.max(weightSum, 1e-9)) : Math.max(weightSum, 1e-9);
      for (let j = 0; j < d; j++) out[j] = sum[j] / denominator;
      return out;
    }
  }
}

/** v / max(‖v‖₂, 1e-12), as torch.nn.functional.normalize (sentence-transformers' Normalize module). */
export function normalizeL2(v: Float32Array): Float32Array {
  let sumSquares = 0;
  for (let i = 0; i < v.length; i++) sumSquares += v[i] * v[i];
  const norm = Math.max(Math.sqrt(sumSquares), 1e-12);
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i] / norm;
  return out;
}

/** Cosine similarity of two vectors (0 when either is zero). */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new ShapeError(`cosine similarity of vectors of ${a.length} and ${b.length} dimensions`);
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}
