import { matmulKernel } from '../kernels/index.js';
import type { MatmulKernel, PrepackingMatmulKernel } from '../kernels/types.js';
import { ShapeError } from '../errors.js';
import { addInPlace, layerNorm, layerNormInto, linear, matmul, matmulInto, rmsNorm, rmsNormInto } from '../ops/index.js';
import { needsGrad } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';
import { linearBf16 } from './bf16.js';
import { Int8Matrix, linearInt8 } from './int8.js';
import { packedWeight, setWeightPrepacking as setPrepacking } from './prepacked.js';
import type { LinearWeight, Weights } from './weights.js';

/**
 * y = x·Wᵀ + b for a weight held as f32, bf16 or int8. `into`, a tensor of the
 * result's shape (a decoding session's workspace), receives the result at
 * inference; when gradients are recorded it is ignored and y is new.
 */
export function linearAny(x: Tensor, weight: LinearWeight, bias?: Tensor, into?: Tensor): Tensor {
  if (weight instanceof Int8Matrix) return linearInt8(x, weight, bias, into);
  if (weight.dtype === 'bf16') return linearBf16(x, weight, bias, into);
  // Training records the op graph through ops/linear; inference adds the bias
  // into the fresh product in place (the same f32 sums as a broadcast add,
  // without its index arithmetic or a second output buffer).
  if (needsGrad(x, weight, bias)) return linear(x, weight, bias);
  const y = packedProduct(x, weight, into) ?? (into ? matmulInto(x, weight, into, { transposeB: true }) : matmul(x, weight, { transposeB: true })); // [..., out]
  if (bias) addInPlace(y, bias);
  return y;
}

export { forgetPackedWeights } from './prepacked.js';

// Decode's few rows stream the weight itself (the GEMV); packing pays from
// here, unless the kernel's packs serve fewer rows (`packedMinRows`).
const PACKED_MIN_ROWS = 5;

/** See prepacked.ts; returns the previous setting for the active kernel. */
export function setWeightPrepacking(on: boolean): boolean {
  return setPrepacking(on, matmulKernel());
}

function canPrepack(kernel: MatmulKernel): kernel is PrepackingMatmulKernel {
  return typeof (kernel as Partial<PrepackingMatmulKernel>).prepack === 'function';
}

/** x·Wᵀ from W's packed copy (packed on first use), into `into` when given, or undefined where packing does not apply. */
function packedProduct(x: Tensor, weight: Tensor, into: Tensor | undefined): Tensor | undefined {
  const kernel = matmulKernel();
  if (weight.requiresGrad || weight.dtype !== 'f32' || weight.rank !== 2 || !canPrepack(kernel)) return undefined;
  const [n, k] = weight.shape;
  const rows = x.size / k;
  if (rows < (kernel.packedMinRows ?? PACKED_MIN_ROWS) || x.shape[x.rank - 1] !== k) return undefined;
  const data = weight.data as Float32Array;
  const packed = packedWeight(kernel, data, (p) => p.n === n && p.k === k, () => kernel.prepack(data, 0, n, k, true));
  if (packed === undefined) return undefined;
  if (into && into.size !== rows * n) throw new ShapeError(`linear: output ${into} does not match ${rows} rows of the weight [${n}, ${k}]`);
  const y = into ?? new Tensor('f32', [...x.shape.slice(0, -1), n], new Float32Array(rows * n)); // [..., out]
  kernel.gemmPacked(x.f32(), 0, packed, y.data as Float32Array, 0, rows);
  return y;
}

/**
 * A learned affine map y = x·Wᵀ + b, W stored [out, in] as torch.nn.Linear:
 * f32, or bf16 / int8 when the weights were loaded so (see `WeightsOptions`).
 */
export class Linear {
  constructor(
    readonly stored: LinearWeight,
    readonly bias?: Tensor,
  ) {}

  /** The output's width. */
  get outFeatures(): number {
    return this.stored.shape[0];
  }

  /** W as an f32 or bf16 tensor; an int8 weight is dequantized for the caller (a copy). */
  get weight(): Tensor {
    return this.stored instanceof Int8Matrix ? this.stored.dequantize() : this.stored;
  }

  /** `name.weight` [out, in] and, when `bias` is true, `name.bias` [out]. */
  static load(w: Weights, name: string, inFeatures: number, outFeatures: number, bias = true): Linear {
    const scoped = w.scope(name);
    return new Linear(scoped.matrix('weight', [outFeatures, inFeatures]), bias ? scoped.get('bias', [outFeatures]) : undefined);
  }

  /** `into`: where the result may go at inference (see `linearAny`). */
  forward(x: Tensor, into?: Tensor): Tensor {
    return linearAny(x, this.stored, this.bias, into);
  }
}

/** Layer normalisation with a learned gain and bias. */
export class LayerNorm {
  constructor(
    readonly weight: Tensor,
    readonly bias: Tensor | undefined,
    readonly eps: number,
  ) {}

  static load(w: Weights, name: string, d: number, eps: number, bias = true): LayerNorm {
    const scoped = w.scope(name);
    return new LayerNorm(scoped.get('weight', [d]), bias ? scoped.get('bias', [d]) : undefined, eps);
  }

  /** `into`: a tensor of x's shape the result is written into at inference; ignored when gradients are recorded. */
  forward(x: Tensor, into?: Tensor): Tensor {
    if (into && !needsGrad(x, this.weight, this.bias)) return layerNormInto(x, this.weight, this.bias, this.eps, into);
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** RMS normalisation with a learned gain (Llama RMSNorm, T5 LayerNorm). */
export class RMSNorm {
  constructor(
    readonly weight: Tensor,
    readonly eps: number,
  ) {}

  static load(w: Weights, name: string, d: number, eps: number): RMSNorm {
    return new RMSNorm(w.scope(name).get('weight', [d]), eps);
  }

  /** `into`: a tensor of x's shape the result is written into at inference; ignored when gradients are recorded. */
  forward(x: Tensor, into?: Tensor): Tensor {
    if (into && !needsGrad(x, this.weight)) return rmsNormInto(x, this.weight, this.eps, into);
    return rmsNorm(x, this.weight, this.eps);
  }
}
