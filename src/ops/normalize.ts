import { needsGrad, record } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';

/**
 * x / max(‖x‖₂, ε) over the last axis (torch.nn.functional.normalize, as
 * sentence-transformers' Normalize module); dx = (g − y·(g·y)) / ‖x‖.
 */
export function normalizeL2(x: Tensor, eps = 1e-12): Tensor {
  const src = x.f32();
  const d = x.shape[x.rank - 1];
  const out = new Float32Array(src.length);
  const norms = new Float32Array(src.length / d);
  for (let row = 0, r = 0; row < src.length; row += d, r++) {
    let sum = 0;
    for (let j = 0; j < d; j++) sum += src[row + j] * src[row + j];
    norms[r] = Math.max(Math.sqrt(sum), eps);
    for (let j = 0; j < d; j++) out[row + j] = src[row + j] / norms[r];
  }
  const result = new Tensor('f32', x.shape, out);
  if (!needsGrad(x)) return result;
  return record(result, 'normalizeL2', [x], (g) => {
    const dx = new Float32Array(g.length);
    for (let row = 0, r = 0; row < g.length; row += d, r++) {
      let dot = 0;
      for (let j = 0; j < d; j++) dot += g[row + j] * out[row + j];
      for (let j = 0; j < d; j++) dx[row + j] = (g[row + j] - out[row + j] * dot) / norms[r];
    }
    return [dx];
  });
}
