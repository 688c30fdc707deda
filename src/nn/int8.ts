/**
 * Linear weights quantized to int8, one scale per output channel (row of W):
 * w ≈ scale_j · q_jp with q in [−127, 127] and scale_j = max_p |w_jp| / 127,
 * the symmetric per-channel scheme of LLM.int8()'s vector-wise quantization
 * (Dettmers et al. 2022) without its outlier split. By default each input row
 * is quantized too, at run time (dynamic, symmetric, one scale per row), so
 * the products are integer dot products (VNNI's vpdpbusd where the CPU has it)
 * and memory carries 1 byte a weight (decode's limit). `setInt8Activations('f32')`
 * keeps the inputs f32 instead: the weights' rounding is then the only error.
 * Inference only.
 */
import { ShapeError, UnsupportedError } from '../errors.js';
import { int8MatmulKernel } from '../kernels/index.js';
import type { Int8MatmulKernel, PrepackingInt8MatmulKernel } from '../kernels/types.js';
import { packedWeight } from './prepacked.js';
import { addInPlace } from '../ops/elementwise.js';
import { Tensor } from '../tensor/tensor.js';

/** An int8 matrix [rows, cols] with one f32 scale per row. */
export class Int8Matrix {
  readonly dtype = 'int8';

  constructor(
    readonly q: Int8Array,
    readonly scales: Float32Array,
    readonly shape: readonly [number, number],
  ) {}

  /** Round each row of an f32 matrix [rows, cols] to int8 against its own largest magnitude. */
  static quantize(w: Tensor): Int8Matrix {
    if (w.rank !== 2) throw new ShapeError(`int8 quantization needs a matrix, got ${w}`);
    const [rows, cols] = w.shape;
    const data = w.f32();
    const q = new Int8Array(rows * cols);
    const scales = new Float32Array(rows);
    for (let j = 0; j < rows; j++) {
      let largest = 0;
      for (let p = 0; p < cols; p++) largest = Math.max(largest, Math.abs(data[j * cols + p]));
      // An all-zero row keeps scale 0 and zeros.
      const scale = Math.fround(largest / 127);
      scales[j] = scale;
      if (scale === 0) continue;
      for (let p = 0; p < cols; p++) q[j * cols + p] = Math.max(-127, Math.min(127, Math.round(data[j * cols + p] / scale)));
    }
    return new Int8Matrix(q, scales, [rows, cols]);
  }

  /** The f32 matrix this one stands for (scale · q), for code that reads a weight rather than multiplying by it. */
  dequantize(): Tensor {
    const [rows, cols] = this.shape;
    const out = new Float32Array(rows * cols);
    for (let j = 0; j < rows; j++) for (let p = 0; p < cols; p++) out[j * cols + p] = this.q[j * cols + p] * this.scales[j];
    return new Tensor('f32', [rows, cols], out);
  }
}

/**
 * What int8 linear layers do with their input: `'int8'` (the default) rounds
 * each row to int8 against its own largest magnitude before the integer dot
 * products; `'f32'` multiplies the f32 input by the widened weights. The
 * accuracy of each is measured in docs/performance.md.
 */
export type Int8Activations = 'int8' | 'f32';

let activations: Int8Activations = 'int8';

/** Sets how int8 linear layers treat their input; returns the previous setting. */
export function setInt8Activations(mode: Int8Activations): Int8Activations {
  const previous = activations;
  activations = mode;
  return previous;
}

/** y = x·Wᵀ + b with W an Int8Matrix [out, in]. x [..., in] → [..., out], written into `into` when given (a decoding session's workspace). */
export function linearInt8(x: Tensor, weight: Int8Matrix, bias?: Tensor, into?: Tensor): Tensor {
  const [out, inFeatures] = weight.shape;
  if (x.shape[x.rank - 1] !== inFeatures) throw new ShapeError(`linear: input ${x} does not match the int8 weight [${out}, ${inFeatures}]`);
  if (x.requiresGrad) throw new UnsupportedError('linear: int8 weights are for inference; load the weights with linearDtype f32 to train');
  const rows = x.size / inFeatures;
  if (into && into.size !== rows * out) throw new ShapeError(`linear: output ${into} does not hold ${rows} rows of ${out}`);
  const result = into ?? new Tensor('f32', [...x.shape.slice(0, -1), out], new Float32Array(rows * out));
  const y = result.data as Float32Array;
  const kernel = int8MatmulKernel();
  if (activations === 'int8') kernel.gemmInt8Quantized(x.f32(), 0, weight.q, 0, weight.scales, y, 0, rows, out, inFeatures);
  else {
    const packed = canPrepackInt8(kernel)
      ? packedWeight(kernel, weight.q, () => true, () => kernel.prepackInt8(weight.q, 0, weight.scales, out, inFeatures))
      : undefined;
    if (packed) (kernel as PrepackingInt8MatmulKernel).gemmInt8Packed(x.f32(), 0, packed, y, 0, rows);
    else kernel.gemmInt8(x.f32(), 0, weight.q, 0, weight.scales, y, 0, rows, out, inFeatures);
  }
  return bias ? addInPlace(result, bias) : result;
}

function canPrepackInt8(kernel: Int8MatmulKernel): kernel is PrepackingInt8MatmulKernel {
  return typeof (kernel as Partial<PrepackingInt8MatmulKernel>).prepackInt8 === 'function';
}

/** Rows of an int8 table [vocab, d], dequantized: ids [...] → [..., d] f32, into `into` when given (a decoding session's workspace). */
export function embeddingInt8(table: Int8Matrix, ids: Tensor, into?: Tensor): Tensor {
  const [vocab, d] = table.shape;
  if (into && (into.dtype !== 'f32' || into.size !== ids.size * d)) throw new ShapeError(`embedding: output ${into} does not hold ${ids.size} rows of ${d}`);
  const result = into ?? new Tensor('f32', [...ids.shape, d], new Float32Array(ids.size * d));
  const out = result.data as Float32Array;
  for (let i = 0; i < ids.size; i++) {
    const id = ids.data[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new ShapeError(`embedding: token id ${id} is outside the vocabulary of ${vocab} rows`);
    for (let j = 0; j < d; j++) out[i * d + j] = table.q[id * d + j] * table.scales[id];
  }
  return result;
}
