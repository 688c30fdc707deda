/**
 * Layers whose weights stay bf16 in memory (`Weights` loaded with linearDtype
 * 'bf16'): a bf16 value is the top half of an f32, so each weight is widened
 * exactly as it is read and the arithmetic stays f32. Inference only.
 * `setBf16Activations('bf16')` opts into rounding the inputs of products of
 * more than 4 rows (prompts, encoder batches) to bf16 as well, for AVX512_BF16's
 * dot products at twice the f32 rate.
 */
import { ShapeError, UnsupportedError } from '../errors.js';
import { bf16MatmulKernel } from '../kernels/index.js';
import type { Bf16MatmulKernel, PrepackingBf16MatmulKernel } from '../kernels/types.js';
import { packedWeight } from './prepacked.js';
import { addInPlace } from '../ops/elementwise.js';
import { Tensor } from '../tensor/tensor.js';

/**
 * What bf16 linear layers do with their input: `'f32'` (the default) keeps it
 * exact, widening the weights; `'bf16'` rounds each input of more than
 * 4 rows to bf16 too, so the products run as bf16 dot products (vdpbf16ps).
 * Decode's few rows are bound by memory, so they always stay exact.
 */
export type Bf16Activations = 'f32' | 'bf16';

let activations: Bf16Activations = 'f32';

// Rows from which rounded activations are used: below, decode streams the weights.
const ROUNDED_MIN_ROWS = 5;

/** Sets how bf16 linear layers treat their input; returns the previous setting. */
export function setBf16Activations(mode: Bf16Activations): Bf16Activations {
  const previous = activations;
  activations = mode;
  return previous;
}

/**
 * y = x·Wᵀ + b with W [out, in] held as bf16 (`Weights` loaded with
 * linearDtype 'bf16'): the kernel widens each weight as it reads it, so the
 * result is the f32 product on the widened weights. x [..., in] → [..., out],
 * written into `into` when given (a decoding session's workspace).
 */
export function linearBf16(x: Tensor, weight: Tensor, bias?: Tensor, into?: Tensor): Tensor {
  const [out, inFeatures] = weight.shape;
  if (x.shape[x.rank - 1] !== inFeatures) throw new ShapeError(`linear: input ${x} does not match the bf16 weight [${out}, ${inFeatures}]`);
  if (x.requiresGrad || weight.requiresGrad) {
    throw new UnsupportedError('linear: bf16 weights are for inference; load the weights with linearDtype f32 to train');
  }
  const rows = x.size / inFeatures;
  if (into && into.size !== rows * out) throw new ShapeError(`linear: output ${into} does not hold ${rows} rows of ${out}`);
  const result = into ?? new Tensor('f32', [...x.shape.slice(0, -1), out], new Float32Array(rows * out));
  const y = result.data as Float32Array;
  const kernel = bf16MatmulKernel();
  if (activations === 'bf16' && rows >= ROUNDED_MIN_ROWS) {
    kernel.gemmBf16Rounded(x.f32(), 0, weight.data as Uint16Array, 0, y, 0, rows, out, inFeatures);
  } else {
    const bits = weight.data as Uint16Array;
    const packed = canPrepackBf16(kernel) ? packedWeight(kernel, bits, () => true, () => kernel.prepackBf16(bits, 0, out, inFeatures)) : undefined;
    if (packed) (kernel as PrepackingBf16MatmulKernel).gemmBf16Packed(x.f32(), 0, packed, y, 0, rows);
    else kernel.gemmBf16(x.f32(), 0, bits, 0, y, 0, rows, out, inFeatures);
  }
  return bias ? addInPlace(result, bias) : result;
}

function canPrepackBf16(kernel: Bf16MatmulKernel): kernel is PrepackingBf16MatmulKernel {
  return typeof (kernel as Partial<PrepackingBf16MatmulKernel>).prepackBf16 === 'function';
}

/**
 * Rows of a bf16 table [vocab, d], widened: ids [...] → [..., d] f32, as
 * `embedding` on the f32 table; into `into` when given (a decoding session's workspace).
 */
export function embeddingBf16(table: Tensor, ids: Tensor, into?: Tensor): Tensor {
  const [vocab, d] = table.shape;
  const bits = table.data as Uint16Array;
  if (into && (into.dtype !== 'f32' || into.size !== ids.size * d)) throw new ShapeError(`embedding: output ${into} does not hold ${ids.size} rows of ${d}`);
  const result = into ?? new Tensor('f32', [...ids.shape, d], new Float32Array(ids.size * d));
  const out = result.data as Float32Array;
  // The f32 bits of a bf16 value are its 16 bits shifted up.
  const outBits = bitsOf(out);
  for (let i = 0; i < ids.size; i++) {
    const id = ids.data[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new ShapeError(`embedding: token id ${id} is outside the vocabulary of ${vocab} rows`);
    for (let j = 0; j < d; j++) outBits[i * d + j] = bits[id * d + j] << 16;
  }
  return result;
}

// The integer view of each output array, made once per array (a decoding session reuses its arrays).
const integerViews = new WeakMap<Float32Array, Uint32Array>();

function bitsOf(out: Float32Array): Uint32Array {
  let view = integerViews.get(out);
  if (!view) {
    view = new Uint32Array(out.buffer, out.byteOffset, out.length);
    integerViews.set(out, view);
  }
  return view;
}
