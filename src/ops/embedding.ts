import { ShapeError, UnsupportedError } from '../errors.js';
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

/**
 * Rows of `weight` [vocab, d] written into `out` [..., d] (inference only: a
 * decoding session's workspace); ids [...]. The same values as `embedding`.
 */
export function embeddingInto(weight: Tensor, ids: Tensor, out: Tensor): Tensor {
  const [vocab, d] = weight.shape;
  if (needsGrad(weight)) throw new UnsupportedError('embeddingInto: out is for inference, but the table requires gradients');
  if (out.dtype !== 'f32' || out.size !== ids.size * d) throw new ShapeError(`embeddingInto: out ${out} does not hold ${ids.size} rows of ${d}`);
  const table = weight.f32();
  const to = out.data as Float32Array;
  for (let i = 0; i < ids.size; i++) {
    const id = ids.data[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new ShapeError(`embedding: token id ${id} is outside the vocabulary of ${vocab} rows`);
    // A loop rather than set(subarray): a decode step copies one row and allocates nothing.
    for (let j = 0, from = id * d, at = i * d; j < d; j++) to[at + j] = table[from + j];
  }
  return out;
}
