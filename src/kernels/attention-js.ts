/**
 * Fused attention without the addon: the `FusedAttentionKernel` for browsers
 * and for Node under GLASSFORMER_NATIVE=0, in TypeScript over the active
 * matmul kernel (WebAssembly SIMD there). Same contract as native/ops.cc
 * `attention` (strided q, k, v, z; mask and bias read through strides with 0
 * on repeated axes; grouped-query heads; optional pattern). Per (batch row,
 * head): scores = q·kᵀ by the matmul kernel into a scratch block, the scale,
 * bias, mask and softmax in place on it, z = softmax·v by the matmul kernel.
 * Scalar TypeScript loops (one pass per query, as the native kernel) were
 * slower at every size measured, one query included: V8 does not vectorize
 * them (docs/performance.md). Every scratch block is kept between calls and
 * grows by doubling, so a decode step allocates nothing once they have
 * reached the session's length.
 *
 * This file imports no `node:` module, so a browser build can include it.
 */
import { ShapeError } from '../errors.js';
import type { FusedAttentionKernel } from './attention.js';
import { matmulKernel } from './index.js';

/** First capacity of a scratch array: a decode session's first 256 keys need no growth. */
const FIRST_CAPACITY = 256;

/** A scratch array of at least `n` floats, `current` when it is large enough, else a new one of twice its length or more. */
function atLeast(current: Float32Array, n: number): Float32Array {
  if (current.length >= n) return current;
  let capacity = current.length;
  while (capacity < n) capacity *= 2;
  return new Float32Array(capacity);
}

// Scores and then their softmax [queries, keys] of one (batch row, head); q, k, v and z as contiguous rows when their strides are not.
let scoreBlock: Float32Array = new Float32Array(FIRST_CAPACITY);
let qBlock: Float32Array = new Float32Array(FIRST_CAPACITY);
let kBlock: Float32Array = new Float32Array(FIRST_CAPACITY);
let vBlock: Float32Array = new Float32Array(FIRST_CAPACITY);
let zBlock: Float32Array = new Float32Array(FIRST_CAPACITY);

/** An f32 operand: a Float32Array (a TypeError otherwise, as the native kernel throws), or null where the contract allows it. */
function checkFloat32(name: string, array: Float32Array | null): void {
  if (array !== null && !(array instanceof Float32Array)) throw new TypeError(`attention: ${name} must be a Float32Array`);
}

/** Element strides as the native kernel reads them: 20 non-negative integers. */
function checkStrides(strides: Float64Array): void {
  if (strides.length < 20) throw new ShapeError(`attention: strides needs 20 entries (q's, k's, v's and z's 3, the mask's and the bias's 4), got ${strides.length}`);
  for (let t = 0; t < 20; t++) {
    const s = strides[t];
    if (!(Number.isInteger(s) && s >= 0 && s < 2 ** 53)) throw new ShapeError(`attention: strides[${t}] must be a non-negative integer below 2^53, got ${s}`);
  }
}

/** Rows of `dim` contiguous floats at the strides `strides[at..at+3)` over n0 × n1 × n2 must lie inside `length`. */
function checkRows(name: string, length: number, strides: Float64Array, at: number, n0: number, n1: number, n2: number, dim: number): void {
  if (n0 === 0 || n1 === 0 || n2 === 0 || dim === 0) return;
  const end = (n0 - 1) * strides[at] + (n1 - 1) * strides[at + 1] + (n2 - 1) * strides[at + 2] + dim;
  if (end > length) throw new ShapeError(`attention: ${name} needs ${Math.min(end, 2 ** 53)} elements for its strides but has length ${length}`);
}

/** The last element an additive term [batch, heads, queries, keys] reads through `strides[at..at+4)` must lie inside it. */
function checkTerm(name: string, length: number, strides: Float64Array, at: number, shape: readonly [number, number, number, number]): void {
  let last = 0;
  for (let axis = 0; axis < 4; axis++) last += (shape[axis] - 1) * strides[at + axis];
  if (last >= length) throw new ShapeError(`attention: the ${name}'s strides reach element ${Math.min(last, 2 ** 53)} but it has length ${length}`);
}

function checkCount(name: string, n: number): void {
  if (!(Number.isInteger(n) && n >= 0 && n < 2 ** 53)) throw new ShapeError(`attention: ${name} must be a non-negative integer, got ${n}`);
}

/** Every extent the kernel reads or writes, with the native kernel's rules (native/ops.cc check_attention). */
function checkCall(q: Float32Array, k: Float32Array, v: Float32Array, z: Float32Array, pattern: Float32Array | null, mask: Float32Array | null, bias: Float32Array | null, strides: Float64Array, batch: number, heads: number, kvHeads: number, queries: number, keys: number, dim: number): void {
  checkCount('batch', batch);
  checkCount('heads', heads);
  checkCount('kvHeads', kvHeads);
  checkCount('queries', queries);
  checkCount('keys', keys);
  checkCount('dim', dim);
  if (!(strides instanceof Float64Array)) throw new TypeError('attention: strides must be a Float64Array');
  checkStrides(strides);
  checkFloat32('q', q);
  checkFloat32('k', k);
  checkFloat32('v', v);
  checkFloat32('z', z);
  checkFloat32('pattern', pattern);
  checkFloat32('mask', mask);
  checkFloat32('bias', bias);
  if (heads > 0 && (kvHeads === 0 || heads % kvHeads !== 0)) throw new ShapeError(`attention: heads (${heads}) must be a positive multiple of kvHeads (${kvHeads})`);
  checkRows('q', q.length, strides, 0, batch, heads, queries, dim);
  checkRows('k', k.length, strides, 3, batch, kvHeads, keys, dim);
  checkRows('v', v.length, strides, 6, batch, kvHeads, keys, dim);
  checkRows('z', z.length, strides, 9, batch, heads, queries, dim);
  if (pattern && pattern.length < batch * heads * queries * keys) throw new ShapeError(`attention: pattern needs ${batch * heads * queries * keys} elements but has length ${pattern.length}`);
  if (batch * heads * queries === 0 || keys === 0) return;
  const shape = [batch, heads, queries, keys] as const;
  if (mask) checkTerm('mask', mask.length, strides, 12, shape);
  if (bias) checkTerm('bias', bias.length, strides, 16, shape);
}

/**
 * z = softmax(q·kᵀ·scale + bias + mask) · v with the unfused ops' arithmetic
 * (the same products on the same matmul kernel, each of ·scale, + bias, +
 * mask rounded to f32, the TypeScript softmax), so its bits are theirs when
 * the elementwise ops run in TypeScript too, as without the addon. A row whose
 * every score is −∞ attends to nothing (z and its pattern row 0), as
 * softmax() and the native kernel leave it.
 */
function attention(
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
): void {
  checkCall(q, k, v, z, pattern, mask, bias, strides, batch, heads, kvHeads, queries, keys, dim);
  if (batch === 0 || heads === 0 || queries === 0) return;
  perHead(q, k, v, z, pattern, mask, bias, strides, scale, batch, heads, kvHeads, queries, keys, dim);
}

/** Rows of `dim` floats `stride` apart from `at`, as [rows, dim] contiguous in `into`. */
function packRows(src: Float32Array, at: number, stride: number, rows: number, dim: number, into: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    const from = at + r * stride;
    for (let d = 0; d < dim; d++) into[r * dim + d] = src[from + d];
  }
}

/**
 * Per (batch row, head): scores = q·kᵀ by the matmul kernel, then in place
 * per row f32(score·scale), + bias, + mask, the softmax, then z = softmax·v
 * by the matmul kernel: the unfused ops' order, on reused blocks instead of
 * fresh tensors. Operands whose rows are `dim` apart are read and written
 * where they lie (a KV cache, a packed tensor); others (heads read from a
 * fused projection, z written as merged heads) go through the blocks.
 */
function perHead(q: Float32Array, k: Float32Array, v: Float32Array, z: Float32Array, pattern: Float32Array | null, mask: Float32Array | null, bias: Float32Array | null, strides: Float64Array, scale: number, batch: number, heads: number, kvHeads: number, queries: number, keys: number, dim: number): void {
  const kernel = matmulKernel();
  scoreBlock = atLeast(scoreBlock, queries * keys);
  const scores = scoreBlock;
  const group = heads / kvHeads;
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / group);
      // q [queries, dim], k and v [keys, dim]: in place when contiguous rows, else packed.
      const qAt = b * strides[0] + h * strides[1];
      const kAt = b * strides[3] + g * strides[4];
      const vAt = b * strides[6] + g * strides[7];
      const zAt = b * strides[9] + h * strides[10];
      let qs = q;
      let qo = qAt;
      if (strides[2] !== dim) {
        qBlock = atLeast(qBlock, queries * dim);
        packRows(q, qAt, strides[2], queries, dim, qBlock);
        qs = qBlock;
        qo = 0;
      }
      let ks = k;
      let ko = kAt;
      if (strides[5] !== dim) {
        kBlock = atLeast(kBlock, keys * dim);
        packRows(k, kAt, strides[5], keys, dim, kBlock);
        ks = kBlock;
        ko = 0;
      }
      kernel.gemm(qs, qo, ks, ko, scores, 0, queries, keys, dim, true); // [queries, keys]
      for (let i = 0; i < queries; i++) {
        softmaxRow(scores, i * keys, keys, scale, mask, b * strides[12] + h * strides[13] + i * strides[14], strides[15], bias, b * strides[16] + h * strides[17] + i * strides[18], strides[19]);
      }
      if (pattern) {
        const to = (b * heads + h) * queries * keys;
        for (let t = 0; t < queries * keys; t++) pattern[to + t] = scores[t];
      }
      let vs = v;
      let vo = vAt;
      if (strides[8] !== dim) {
        vBlock = atLeast(vBlock, keys * dim);
        packRows(v, vAt, strides[8], keys, dim, vBlock);
        vs = vBlock;
        vo = 0;
      }
      if (strides[11] === dim) {
        kernel.gemm(scores, 0, vs, vo, z, zAt, queries, dim, keys, false); // [queries, dim]
        continue;
      }
      zBlock = atLeast(zBlock, queries * dim);
      kernel.gemm(scores, 0, vs, vo, zBlock, 0, queries, dim, keys, false);
      for (let i = 0; i < queries; i++) {
        const to = zAt + i * strides[11];
        for (let d = 0; d < dim; d++) z[to + d] = zBlock[i * dim + d];
      }
    }
  }
}

/**
 * One row of scores, in place: f32(x·scale), + bias, + mask (each rounded to
 * f32), then its softmax as ops/softmax.ts computes it (each exp stored as
 * f32, their sum and its inverse in doubles); all 0 when every score is −∞.
 */
function softmaxRow(x: Float32Array, at: number, keys: number, scale: number, mask: Float32Array | null, maskAt: number, maskStride: number, bias: Float32Array | null, biasAt: number, biasStride: number): void {
  let max = -Infinity;
  for (let j = 0; j < keys; j++) {
    let score = Math.fround(x[at + j] * scale);
    if (bias) score = Math.fround(score + bias[biasAt + j * biasStride]);
    if (mask) score = Math.fround(score + mask[maskAt + j * maskStride]);
    x[at + j] = score;
    if (score > max) max = score;
  }
  if (max === -Infinity) {
    x.fill(0, at, at + keys);
    return;
  }
  let sum = 0;
  for (let j = 0; j < keys; j++) {
    const e = Math.exp(x[at + j] - max);
    x[at + j] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let j = 0; j < keys; j++) x[at + j] *= inv;
}

/** The TypeScript fused attention kernel. */
export const jsAttentionKernel: FusedAttentionKernel = { attention };
