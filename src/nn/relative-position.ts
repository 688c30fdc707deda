/**
 * T5's relative position bias (Raffel et al. 2020 §2.1, after Shaw et al. 2018):
 * instead of adding position vectors to the embeddings, every attention score
 * gets a learned scalar per head that depends only on the bucketed distance
 * key − query. Small distances get a bucket each, larger ones share
 * logarithmically wider buckets up to `maxDistance`.
 */
import { ShapeError } from '../errors.js';
import { embedding } from '../ops/embedding.js';
import type { Tensor } from '../tensor/tensor.js';

export interface BucketOptions {
  /** Encoder self-attention sees both directions; decoder self-attention only the past. */
  bidirectional: boolean;
  numBuckets: number;
  maxDistance: number;
}

/**
 * The bucket of one relative position `rel = keyPosition − queryPosition`
 * (HF `T5Attention._relative_position_bucket`). Bidirectional: half the buckets
 * per direction, keys ahead of the query in the upper half. The logarithmic
 * part is computed in float32 as PyTorch does, so the edges between buckets
 * fall where they fall in the checkpoints' training.
 */
export function relativePositionBucket(rel: number, options: BucketOptions): number {
  let numBuckets = options.numBuckets;
  let bucket = 0;
  let n: number;
  if (options.bidirectional) {
    numBuckets = Math.floor(numBuckets / 2);
    if (rel > 0) bucket += numBuckets;
    n = Math.abs(rel);
  } else {
    n = Math.max(-rel, 0);
  }
  const maxExact = Math.floor(numBuckets / 2);
  if (n < maxExact) return bucket + n;
  const f = Math.fround;
  const ratio = f(f(n) / f(maxExact));
  const logRatio = f(Math.log(ratio));
  const scaled = f(f(logRatio / f(Math.log(options.maxDistance / maxExact))) * f(numBuckets - maxExact));
  return bucket + Math.min(maxExact + Math.trunc(scaled), numBuckets - 1);
}

/**
 * Bucket indices for queries at positions `queryOffset … queryOffset+queries−1`
 * against keys `0 … keys−1` (a KV-cached decoder step has queryOffset > 0),
 * as a [queries][keys] matrix.
 */
export function relativePositionBuckets(queries: number, keys: number, options: BucketOptions, queryOffset = 0): number[][] {
  return Array.from({ length: queries }, (_, i) =>
    Array.from({ length: keys }, (_, j) => relativePositionBucket(j - (queryOffset + i), options)),
  );
}

/**
 * The additive attention bias [1, heads, queries, keys]: row `bucket` of the
 * learned table `relative_attention_bias.weight` [numBuckets, heads], per head.
 */
export function relativePositionBias(table: Tensor, queries: number, keys: number, options: BucketOptions, queryOffset = 0): Tensor {
  const [numBuckets, heads] = table.shape;
  if (numBuckets !== options.numBuckets) {
    throw new ShapeError(`relativePositionBias: the bias table ${table} has ${numBuckets} rows, expected relative_attention_num_buckets = ${options.numBuckets}`);
  }
  const buckets = relativePositionBuckets(queries, keys, options, queryOffset);
  // A lookup of each (query, key) pair's bucket row, so gradients reach the table when training.
  const rows = embedding(table, buckets.flat(), [queries, keys]); // [queries, keys, heads]
  return rows.permute([2, 0, 1]).reshape([1, heads, queries, keys]);
}

/**
 * The bias of one decoder query at position keys − 1 against keys 0 … keys−1
 * (a KV-cached step), written into `out` as one row of `keys` floats per head:
 * the values of `relativePositionBias(table, 1, keys, options, keys − 1)`
 * without a tensor per step, for a decoding session's buffer. Inference only
 * (no gradient reaches the table).
 */
export function relativePositionBiasRow(table: Tensor, keys: number, options: BucketOptions, out: Float32Array): void {
  const [numBuckets, heads] = table.shape;
  if (numBuckets !== options.numBuckets) {
    throw new ShapeError(`relativePositionBiasRow: the bias table ${table} has ${numBuckets} rows, expected relative_attention_num_buckets = ${options.numBuckets}`);
  }
  if (out.length < heads * keys) throw new ShapeError(`relativePositionBiasRow: ${heads} heads × ${keys} keys do not fit in an output that holds ${out.length} floats`);
  const values = table.f32(); // [numBuckets, heads]
  const query = keys - 1;
  for (let j = 0; j < keys; j++) {
    const bucket = relativePositionBucket(j - query, options);
    for (let h = 0; h < heads; h++) out[h * keys + j] = values[bucket * heads + h];
  }
}
