import { needsGrad, record } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';

/**
 * Grouped-query attention (Ainslie et al. 2023): key/value head j serves query
 * heads j·g … j·g+g−1. [batch, kvHeads, seq, d] → [batch, kvHeads·g, seq, d].
 */
export function repeatKv(x: Tensor, groups: number): Tensor {
  if (groups === 1) return x;
  const [batch, kvHeads, seq, d] = x.shape;
  const block = seq * d;
  const src = x.f32();
  const out = new Float32Array(batch * kvHeads * groups * block);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < kvHeads; h++) {
      const from = (b * kvHeads + h) * block;
      for (let g = 0; g < groups; g++) out.set(src.subarray(from, from + block), ((b * kvHeads + h) * groups + g) * block);
    }
  }
  const result = new Tensor('f32', [batch, kvHeads * groups, seq, d], out);
  if (!needsGrad(x)) return result;
  // Each KV head receives the sum of the gradients of the query heads it served.
  return record(result, 'repeatKv', [x], (grad) => {
    const dx = new Float32Array(src.length);
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < kvHeads; h++) {
        const to = (b * kvHeads + h) * block;
        for (let g = 0; g < groups; g++) {
          const from = ((b * kvHeads + h) * groups + g) * block;
          for (let e = 0; e < block; e++) dx[to + e] += grad[from + e];
        }
      }
    }
    return [dx];
  });
}
