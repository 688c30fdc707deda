/**
 * The fused attention: scores, mask, position bias, softmax and the weighted
 * sum of values in one pass, for decode steps against a KV cache read in place
 * and for whole prompts. The native kernel (native/ops.cc `attention`, one
 * tiled pass per batch row, head and block of queries) once the addon is
 * loaded; before that and without it (browsers, GLASSFORMER_NATIVE=0) the
 * TypeScript kernel of attention-js.ts. nn/attention.ts runs its unfused ops,
 * the reference, when a hook, gradients or `setFusedAttentionKernel(undefined)`
 * turn fusing off.
 *
 * This file imports no `node:` module, so a browser build can include it.
 */
import { jsAttentionKernel } from './attention-js.js';
import { onNativeAddon } from './index.js';

export interface FusedAttentionKernel {
  /**
   * z = softmax(q·kᵀ·scale + bias + mask) · v. q, z [batch, heads, queries, dim]
   * and k, v [batch, kvHeads, keys, dim]: rows of dim contiguous floats, the
   * three outer axes at element strides (`strides` 0–2 for q, 3–5 for k, 6–8
   * for v, 9–11 for z), so a KV cache is read in place and q, k, v straight
   * from a fused projection. Query head h uses KV head h / (heads / kvHeads).
   * pattern [batch, heads, queries, keys] receives the softmax, or null to
   * skip it. mask and bias are read through `strides` 12–15 and 16–19 (batch,
   * head, query, key; 0 on an axis they repeat), or null.
   */
  attention(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    z: Float32Array,
    pattern: Float32Array | null,
    mask: Float32Array | null,
    bias: Float32Array | null,
    strides: Float64Array,
    scale: number,
    batch: number,
    heads: number,
    kvHeads: number,
    queries: number,
    keys: number,
    dim: number,
  ): void;
}

let loaded: FusedAttentionKernel | undefined;
let active: FusedAttentionKernel | undefined = jsAttentionKernel;
let overridden = false;

onNativeAddon((addon) => {
  if (typeof addon.attention !== 'function') return;
  loaded = { attention: addon.attention as FusedAttentionKernel['attention'] };
  if (!overridden) active = loaded;
});

/** The fused attention kernel: the native one once `useFastestKernel()` has loaded the addon, else the TypeScript one; undefined when turned off. */
export function fusedAttentionKernel(): FusedAttentionKernel | undefined {
  return active;
}

/** Swap the kernel (undefined turns the fused path off, to compare with the unfused ops); returns the previous one. */
export function setFusedAttentionKernel(kernel: FusedAttentionKernel | undefined): FusedAttentionKernel | undefined {
  const previous = active;
  active = kernel;
  overridden = true;
  return previous;
}
