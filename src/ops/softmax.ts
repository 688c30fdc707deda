import { elementwiseKernel } from '../kernels/elementwise.js';
import { needsGrad, record } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';
import { checkOut, deliver, target } from './out.js';

/** The largest of x[row], …, x[row + n − 1]; −∞ for a row of all −∞. */
function rowMax(x: Float32Array, row: number, n: number): number {
  let max = -Infinity;
  for (let j = 0; j < n; j++) if (x[row + j] > max) max = x[row + j];
  return max;
}

const NO_MASK = new Float64Array(3);

/** Softmax over the last axis, stable: exp(x − max) / Σ exp(x − max). A row of all −∞ stays all 0. */
export function softmax(t: Tensor): Tensor {
  return softmaxOp(t);
}

/** softmax written into `out` (inference only; `out` may be `t`: see ops/out.ts). */
export function softmaxInto(t: Tensor, out: Tensor): Tensor {
  return softmaxOp(t, out);
}

function softmaxOp(t: Tensor, into?: Tensor): Tensor {
  const x = t.f32();
  const n = t.shape[t.rank - 1];
  if (into) checkOut('softmax', into, t.shape, [t]);
  const kernel = elementwiseKernel();
  if (kernel && t.rank > 0 && t.dtype === 'f32' && !needsGrad(t)) {
    const result = target(into, t.shape);
    kernel.softmax(x, result.data as Float32Array, n === 0 ? 0 : x.length / n, n, 1, null, NO_MASK, NO_MASK);
    return result;
  }
  const out = new Float32Array(x.length);
  for (let row = 0; row < x.length; row += n) {
    const max = rowMax(x, row, n);
    if (max === -Infinity) continue;
    let sum = 0;
    for (let j = 0; j < n; j++) {
      const e = Math.exp(x[row + j] - max);
      out[row + j] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let j = 0; j < n; j++) out[row + j] *= inv;
  }
  const result = new Tensor('f32', t.shape, out);
  if (!needsGrad(t)) return deliver(result, into);
  // dx = y ⊙ (g − Σ g⊙y), row by row.
  return record(result, 'softmax', [t], (g) => {
    const dx = new Float32Array(g.length);
    for (let row = 0; row < g.length; row += n) {
      let dot = 0;
      for (let j = 0; j < n; j++) dot += g[row + j] * out[row + j];
      for (let j = 0; j < n; j++) dx[row + j] = out[row + j] * (g[row + j] - dot);
    }
    return [dx];
  });
}

/** log(softmax(x)) over the last axis, computed as x − max − log Σ exp(x − max). */
export function logSoftmax(t: Tensor): Tensor {
  const x = t.f32();
  const n = t.shape[t.rank - 1];
  const out = new Float32Array(x.length);
  for (let row = 0; row < x.length; row += n) {
    const max = rowMax(x, row, n);
    let sum = 0;
    for (let j = 0; j < n; j++) sum += Math.exp(x[row + j] - max);
    const logZ = max + Math.log(sum);
    for (let j = 0; j < n; j++) out[row + j] = x[row + j] - logZ;
  }
  const result = new Tensor('f32', t.shape, out);
  if (!needsGrad(t)) return result;
  // dx = g − softmax(x) · Σ g, row by row.
  return record(result, 'logSoftmax', [t], (g) => {
    const dx = new Float32Array(g.length);
    for (let row = 0; row < g.length; row += n) {
      let sum = 0;
      for (let j = 0; j < n; j++) sum += g[row + j];
      for (let j = 0; j < n; j++) dx[row + j] = g[row + j] - Math.exp(out[row + j]) * sum;
    }
    return [dx];
  });
}
