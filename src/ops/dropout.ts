import { ShapeError } from '../errors.js';
import { needsGrad, record } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';

/** A seeded generator of uniform numbers in [0, 1): dropout masks and data order that replay exactly. */
export interface RandomSource {
  next(): number;
}

/**
 * Inverted dropout (Srivastava et al. 2014, as torch.nn.Dropout in train mode):
 * each element is zeroed with probability p and the survivors scaled by
 * 1/(1 − p), so evaluation needs no rescaling. Evaluation simply does not call it.
 */
export function dropout(x: Tensor, p: number, random: RandomSource): Tensor {
  if (!(p >= 0 && p < 1)) throw new ShapeError(`dropout: probability must be in [0, 1), got ${p}`);
  if (p === 0) return x;
  const src = x.f32();
  const keep = 1 / (1 - p);
  const factor = new Float32Array(src.length);
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    factor[i] = random.next() < p ? 0 : keep;
    out[i] = src[i] * factor[i];
  }
  const result = new Tensor('f32', x.shape, out);
  if (!needsGrad(x)) return result;
  return record(result, 'dropout', [x], (g) => {
    const dx = new Float32Array(g.length);
    for (let i = 0; i < g.length; i++) dx[i] = g[i] * factor[i];
    return [dx];
  });
}
