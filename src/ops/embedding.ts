import { ShapeError } from '../errors.js';
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
  return new Tensor('f32', [...idShape, d], out);
}
