import { Tensor } from '../tensor/tensor.js';

/** Softmax over the last axis, stable: exp(x − max) / Σ exp(x − max). A row of all −∞ stays all 0. */
export function softmax(t: Tensor): Tensor {
  const x = t.f32();
  const n = t.shape[t.rank - 1];
  const out = new Float32Array(x.length);
  for (let row = 0; row < x.length; row += n) {
    let max = -Infinity;
    for (let j = 0; j < n; j++) if (x[row + j] > max) max = x[row + j];
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
  return new Tensor('f32', t.shape, out);
}

/** log(softmax(x)) over the last axis, computed as x − max − log Σ exp(x − max). */
export function logSoftmax(t: Tensor): Tensor {
  const x = t.f32();
  const n = t.shape[t.rank - 1];
  const out = new Float32Array(x.length);
  for (let row = 0; row < x.length; row += n) {
    let max = -Infinity;
    for (let j = 0; j < n; j++) if (x[row + j] > max) max = x[row + j];
    let sum = 0;
    for (let j = 0; j < n; j++) sum += Math.exp(x[row + j] - max);
    const logZ = max + Math.log(sum);
    for (let j = 0; j < n; j++) out[row + j] = x[row + j] - logZ;
  }
  return new Tensor('f32', t.shape, out);
}
