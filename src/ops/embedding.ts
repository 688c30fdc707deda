import { ShapeError } from '../errors.js';
import { needsGrad, record } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';

/** Look up rows of `weight` [vocab, d]: ids [...] → [..., d]. */
export function embedding(weight: Tensor, ids: Tensor | ArrayLike<number>, shape?: readonly number[]): Tensor {
  const indices = ids instanceof Tensor ? ids.data : ids;
  const idShape = ids instanceof Tensor ? ids.shape : (shape ?? [indices.length]);
  const [vocab, d] = weight.shape;
  const table = weight.f32();
  const out = new Float32Array(indices.length * d);
  for (let i = 0; i < indices.length; i++) {
    const id = indices[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocab) {
      throw new ShapeError(`embedding: token id ${id} is outside the vocabulary of ${vocab} rows`);
    }
    out.set(table.subarray(id * d, (id + 1) * d), i * d);
  }
  const result = new Tensor('f32', [...idShape, d], out);
  if (!needsGrad(weight)) return result;
  // Ids are constants; each looked-up row adds its gradient back into its row (scatter-add).
  return record(result, 'embedding', [weight], (g) => {
    const dw = new Float32Array(weight.size);
    for (let i = 0; i < indices.length; i++) {
      const row = indices[i] * d;
      for (let j = 0; j < d; j++) dw[row + j] += g[i * d + j];
    }
    return [dw];
  });
}
