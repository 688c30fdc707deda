import { concat, type Tensor } from '../tensor/tensor.js';

/** Keys and values of one attention layer: [batch, kvHeads, seq, dHead] each. */
export interface LayerKV {
  key: Tensor;
  value: Tensor;
}

/**
 * The KV cache of a decoder: each layer's keys and values for every position
 * seen so far, so a new token attends to the past without recomputing it.
 */
export class KVCache {
  readonly layers: (LayerKV | undefined)[];

  constructor(numLayers: number) {
    this.layers = new Array<LayerKV | undefined>(numLayers).fill(undefined);
  }

  /** Positions cached so far. */
  get length(): number {
    return this.layers[0]?.key.shape[2] ?? 0;
  }

  /** Append this step's keys and values to layer `i`; returns the whole history. */
  append(i: number, key: Tensor, value: Tensor): LayerKV {
    const past = this.layers[i];
    const next = past ? { key: concat([past.key, key], 2), value: concat([past.value, value], 2) } : { key, value };
    this.layers[i] = next;
    return next;
  }

  /** Keep only the batch rows `indices` (beam search reorders hypotheses). */
  select(indices: readonly number[]): KVCache {
    const out = new KVCache(this.layers.length);
    this.layers.forEach((kv, i) => {
      if (kv) out.layers[i] = { key: selectRows(kv.key, indices), value: selectRows(kv.value, indices) };
    });
    return out;
  }
}

function selectRows(t: Tensor, indices: readonly number[]): Tensor {
  return concat(
    indices.map((r) => t.slice(0, r, r + 1)),
    0,
  );
}
