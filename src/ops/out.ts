/**
 * The `*Into` ops (addInto, activationInto, layerNormInto, softmaxInto, …)
 * write their result into a tensor the caller provides instead of allocating
 * one: an f32 tensor of the result's shape, returned. It may be one of the
 * inputs when that input has the result's shape (the op then works in place:
 * a feed-forward's fresh up-projection, a residual sum nobody else holds),
 * but may not otherwise share memory with an input. Inference only: an op
 * whose input requires gradients refuses it, since the tape keeps its inputs
 * and output. On this machine a fresh 50 MB result (GELU over BERT-base's
 * 4096 × 3072 activations) costs more in page faults than the GELU itself.
 */
import { ShapeError, UnsupportedError } from '../errors.js';
import { needsGrad } from '../tensor/autograd.js';
import { Tensor, shapeString, sizeOf, type Shape } from '../tensor/tensor.js';

function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function overlaps(a: Tensor['data'], b: Tensor['data']): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

/** Throws a typed error naming what is wrong when `out` cannot take `op`'s result of `shape` computed from `inputs`. */
export function checkOut(op: string, out: Tensor, shape: Shape, inputs: readonly (Tensor | undefined)[]): void {
  if (needsGrad(inputs[0], inputs[1], inputs[2])) throw new UnsupportedError(`${op}: out is for inference, but an input requires gradients`);
  if (out.dtype !== 'f32' || !sameShape(out.shape, shape)) throw new ShapeError(`${op}: out ${out} must be f32 ${shapeString(shape)}`);
  for (const input of inputs) {
    if (!input || !overlaps(input.data, out.data)) continue;
    const same = input.data.byteOffset === out.data.byteOffset && sameShape(input.shape, shape);
    if (!same) throw new ShapeError(`${op}: out ${out} shares memory with the input ${input} but is not that input`);
  }
}

/** The tensor an op writes a result of `shape` into: `out` (which the op has passed through `checkOut` on entry), or a new one. */
export function target(out: Tensor | undefined, shape: Shape): Tensor {
  return out ?? new Tensor('f32', shape, new Float32Array(sizeOf(shape)));
}

/** `result` copied into `out` when one was given (the TypeScript paths compute first, then copy). */
export function deliver(result: Tensor, out: Tensor | undefined): Tensor {
  if (!out) return result;
  (out.data as Float32Array).set(result.f32());
  return out;
}
