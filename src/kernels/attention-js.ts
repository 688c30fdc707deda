/**
 * Fused attention in plain TypeScript: the `FusedAttentionKernel` for browsers
 * and for Node without the addon. Same contract as native/ops.cc `attention`
 * (strided q, k, v, z; mask and bias read through strides with 0 on repeated
 * axes; grouped-query heads; optional pattern), computed one (batch row, head,
 * query) at a time: scores into a scratch row, max, exp, sum, weighted sum of
 * the values. The scratch rows are kept between calls and grow by doubling, so
 * a decode step allocates nothing once they have reached the session's length.
 *
 * This file imports no `node:` module, so a browser build can include it.
 */
import { ShapeError } from '../errors.js';
import type { FusedAttentionKernel } from './attention.js';

/** First capacity of the scratch rows: a decode session's first 256 keys (and head widths up to 256) need no growth. */
const FIRST_CAPACITY = 256;

// One query's exp(score − max) over the keys, rounded to f32 as the native kernel stores them.
let probabilities = new Float32Array(FIRST_CAPACITY);
// One query's unnormalised weighted sum of values, [dim], in doubles (one rounding, at the end).
let accumulator = new Float64Array(FIRST_CAPACITY);

/** The scratch rows, grown to at least `keys` and `dim` by doubling (a no-op in the steady state). */
function reserve(keys: number, dim: number): void {
  if (probabilities.length < keys) probabilities = new Float32Array(grown(probabilities.length, keys));
  if (accumulator.length < dim) accumulator = new Float64Array(grown(accumulator.length, dim));
}

function grown(capacity: number, needed: number): number {
  let next = Math.max(capacity, 1);
  while (next < needed) next *= 2;
  return next;
}

/** q_row · k_row over dim floats: four partial sums, as the native dot keeps lanes of partial sums. */
function dot(q: Float32Array, qi: number, k: Float32Array, ki: number, dim: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let d = 0;
  for (; d + 4 <= dim; d += 4) {
    s0 += q[qi + d] * k[ki + d];
    s1 += q[qi + d + 1] * k[ki + d + 1];
    s2 += q[qi + d + 2] * k[ki + d + 2];
    s3 += q[qi + d + 3] * k[ki + d + 3];
  }
  let total = s0 + s1 + (s2 + s3);
  for (; d < dim; d++) total += q[qi + d] * k[ki + d];
  return total;
}

/** accumulator[0, dim) += p · v_row. */
function accumulate(p: number, v: Float32Array, vi: number, dim: number): void {
  const acc = accumulator;
  for (let d = 0; d < dim; d++) acc[d] += p * v[vi + d];
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
  if (end > length) throw new ShapeError(`attention: ${name} needs ${end} elements for its strides but has length ${length}`);
}

/** The last element an additive term [batch, heads, queries, keys] reads through `strides[at..at+4)` must lie inside it. */
function checkTerm(name: string, length: number, strides: Float64Array, at: number, shape: readonly [number, number, number, number]): void {
  let last = 0;
  for (let axis = 0; axis < 4; axis++) last += (shape[axis] - 1) * strides[at + axis];
  if (last >= length) throw new ShapeError(`attention: the ${name}'s strides reach element ${last} but it has length ${length}`);
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
  checkStrides(strides);
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
 * z = softmax(q·kᵀ·scale + bias + mask) · v, with the native kernel's
 * roundings: each score f32(f32(q·k)·scale), then + bias and + mask each
 * rounded to f32 (the unfused order), exp(score − max) rounded to f32 and
 * summed in a double, the row scaled by f32(1 / sum). A row whose every score
 * is −∞ attends to nothing (z and its pattern row 0), as softmax() leaves it.
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
  reserve(keys, dim);
  const p = probabilities;
  const acc = accumulator;
  const s = Math.fround(scale);
  const group = heads / kvHeads;
  const qb = strides[0], qh = strides[1], qi = strides[2];
  const kb = strides[3], kh = strides[4], kj = strides[5];
  const vb = strides[6], vh = strides[7], vj = strides[8];
  const zb = strides[9], zh = strides[10], zi = strides[11];
  const mb = strides[12], mh = strides[13], mi = strides[14], mj = strides[15];
  const bb = strides[16], bh = strides[17], bi = strides[18], bj = strides[19];
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / group);
      const kHead = b * kb + g * kh;
      const vHead = b * vb + g * vh;
      for (let i = 0; i < queries; i++) {
        const qRow = b * qb + h * qh + i * qi;
        const maskRow = b * mb + h * mh + i * mi;
        const biasRow = b * bb + h * bh + i * bi;
        // Scores, rounded where the native kernel rounds them; their max.
        let max = -Infinity;
        for (let j = 0; j < keys; j++) {
          let score = Math.fround(Math.fround(dot(q, qRow, k, kHead + j * kj, dim)) * s);
          if (bias) score = Math.fround(score + bias[biasRow + j * bj]);
          if (mask) score = Math.fround(score + mask[maskRow + j * mj]);
          p[j] = score;
          if (score > max) max = score;
        }
        const zRow = b * zb + h * zh + i * zi;
        const patternRow = ((b * heads + h) * queries + i) * keys;
        if (max === -Infinity) {
          z.fill(0, zRow, zRow + dim);
          if (pattern) pattern.fill(0, patternRow, patternRow + keys);
          continue;
        }
        // exp(score − max) and the values they weight.
        acc.fill(0, 0, dim);
        let sum = 0;
        for (let j = 0; j < keys; j++) {
          const e = Math.fround(Math.exp(p[j] - max));
          p[j] = e;
          sum += e;
          if (e !== 0) accumulate(e, v, vHead + j * vj, dim);
        }
        const inv = Math.fround(1 / sum);
        for (let d = 0; d < dim; d++) z[zRow + d] = acc[d] * inv;
        if (pattern) for (let j = 0; j < keys; j++) pattern[patternRow + j] = p[j] * inv;
      }
    }
  }
}

/** The TypeScript fused attention kernel. */
export const jsAttentionKernel: FusedAttentionKernel = { attention };
