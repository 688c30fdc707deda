import { Tensor } from '../tensor/tensor.js';

/**
 * Hugging Face masks with the most negative f32, not −∞, so a fully masked row
 * stays finite (it becomes uniform after softmax instead of NaN).
 */
export const F32_MIN = -3.4028234663852886e38;

/** Additive padding mask [batch, 1, 1, keys]: 0 where attention_mask is 1, `value` where it is 0. */
export function paddingMask(attentionMask: Tensor, value = F32_MIN): Tensor {
  const [batch, keys] = attentionMask.shape;
  const m = attentionMask.data;
  const out = new Float32Array(batch * keys);
  for (let i = 0; i < out.length; i++) out[i] = m[i] ? 0 : value;
  return new Tensor('f32', [batch, 1, 1, keys], out);
}

/**
 * Additive causal mask [batch, 1, queries, keys] for queries at the end of a
 * `keys`-long sequence (queries ≤ keys with a KV cache), optionally also hiding
 * padded keys: query i sees key j iff j ≤ (keys − queries + i) and the key is real.
 */
export function causalMask(queries: number, keys: number, attentionMask?: Tensor, value = F32_MIN): Tensor {
  const batch = attentionMask ? attentionMask.shape[0] : 1;
  const past = keys - queries;
  const out = new Float32Array(batch * queries * keys);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < queries; i++) {
      for (let j = 0; j < keys; j++) {
        const visible = j <= past + i && (!attentionMask || attentionMask.data[b * keys + j] !== 0);
        out[(b * queries + i) * keys + j] = visible ? 0 : value;
      }
    }
  }
  return new Tensor('f32', [batch, 1, queries, keys], out);
}
