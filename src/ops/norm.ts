import { ShapeError } from '../errors.js';
import { elementwiseKernel } from '../kernels/elementwise.js';
import { needsGrad, record } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';
import { checkOut, target } from './out.js';

function checkGain(x: Tensor, gain: Tensor, what: string, name = 'weight'): number {
  const d = x.shape[x.rank - 1];
  if (gain.size !== d) throw new ShapeError(`${what}: ${name} ${gain} does not match the last axis of ${x}`);
  return d;
}

/** Inference on f32 tensors goes to the native kernel when it is loaded. */
function fusable(x: Tensor, weight: Tensor, bias?: Tensor): boolean {
  return x.dtype === 'f32' && weight.dtype === 'f32' && (bias?.dtype ?? 'f32') === 'f32' && !needsGrad(x, weight, bias);
}

/** Layer normalisation (Ba et al. 2016): (x − mean) / √(var + ε) · γ + β over the last axis, biased variance. */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor | undefined, eps: number): Tensor {
  return layerNormOp(x, weight, bias, eps);
}

/** layerNorm written into `out` (inference only; `out` may be `x`: see ops/out.ts). */
export function layerNormInto(x: Tensor, weight: Tensor, bias: Tensor | undefined, eps: number, out: Tensor): Tensor {
  return layerNormOp(x, weight, bias, eps, out);
}

function layerNormOp(x: Tensor, weight: Tensor, bias: Tensor | undefined, eps: number, into?: Tensor): Tensor {
  const d = checkGain(x, weight, 'layerNorm');
  if (bias) checkGain(x, bias, 'layerNorm', 'bias');
  if (into) checkOut('layerNorm', into, x.shape, [x, weight, bias]);
  const kernel = elementwiseKernel();
  if (kernel && fusable(x, weight, bias)) {
    const result = target(into, x.shape);
    kernel.layerNorm(x.f32(), null, null, weight.f32(), bias ? bias.f32() : null, result.data as Float32Array, d === 0 ? 0 : x.size / d, d, eps);
    return result;
  }
  const src = x.f32();
  const g = weight.f32();
  const b = bias?.f32();
  // Straight into `out` when given (each element is read before it is written, so `out` may be x).
  const result = target(into, x.shape);
  const out = result.data as Float32Array;
  for (let row = 0; row < src.length; row += d) {
    let mean = 0;
    for (let j = 0; j < d; j++) mean += src[row + j];
    mean /= d;
    let variance = 0;
    for (let j = 0; j < d; j++) {
      const c = src[row + j] - mean;
      variance += c * c;
    }
    variance /= d;
    const inv = 1 / Math.sqrt(variance + eps);
    for (let j = 0; j < d; j++) out[row + j] = (src[row + j] - mean) * inv * g[j] + (b ? b[j] : 0);
  }
  if (!needsGrad(x, weight, bias)) return result;
  return record(result, 'layerNorm', bias ? [x, weight, bias] : [x, weight], (dy) => layerNormBackward(dy, src, g, d, eps, !!bias));
}

/**
 * With x̂ = (x − μ)·r, r = 1/√(var + ε): dγ = Σ dy⊙x̂, dβ = Σ dy, and per row
 * dx = r/d · (d·dx̂ − Σ dx̂ − x̂·Σ dx̂⊙x̂) where dx̂ = dy⊙γ.
 */
function layerNormBackward(dy: Float32Array, src: Float32Array, g: Float32Array, d: number, eps: number, hasBias: boolean): Float32Array[] {
  const dx = new Float32Array(src.length);
  const dg = new Float32Array(d);
  const db = new Float32Array(d);
  const xhat = new Float64Array(d);
  for (let row = 0; row < src.length; row += d) {
    let mean = 0;
    for (let j = 0; j < d; j++) mean += src[row + j];
    mean /= d;
    let variance = 0;
    for (let j = 0; j < d; j++) variance += (src[row + j] - mean) ** 2;
    const r = 1 / Math.sqrt(variance / d + eps);
    let sum = 0;
    let dot = 0;
    for (let j = 0; j < d; j++) {
      xhat[j] = (src[row + j] - mean) * r;
      const dxhat = dy[row + j] * g[j];
      sum += dxhat;
      dot += dxhat * xhat[j];
      dg[j] += dy[row + j] * xhat[j];
      db[j] += dy[row + j];
    }
    for (let j = 0; j < d; j++) dx[row + j] = (r / d) * (d * dy[row + j] * g[j] - sum - xhat[j] * dot);
  }
  return hasBias ? [dx, dg, db] : [dx, dg];
}

/** RMS normalisation (Zhang & Sennrich 2019): x / √(mean(x²) + ε) · γ, as Llama's RMSNorm and T5's LayerNorm. */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  return rmsNormOp(x, weight, eps);
}

/** rmsNorm written into `out` (inference only; `out` may be `x`: see ops/out.ts). */
export function rmsNormInto(x: Tensor, weight: Tensor, eps: number, out: Tensor): Tensor {
  return rmsNormOp(x, weight, eps, out);
}

function rmsNormOp(x: Tensor, weight: Tensor, eps: number, into?: Tensor): Tensor {
  const d = checkGain(x, weight, 'rmsNorm');
  if (into) checkOut('rmsNorm', into, x.shape, [x, weight]);
  const kernel = elementwiseKernel();
  if (kernel && fusable(x, weight)) {
    const result = target(into, x.shape);
    kernel.rmsNorm(x.f32(), weight.f32(), result.data as Float32Array, d === 0 ? 0 : x.size / d, d, eps);
    return result;
  }
  const src = x.f32();
  const g = weight.f32();
  // Straight into `out` when given (each element is read before it is written, so `out` may be x).
  const result = target(into, x.shape);
  const out = result.data as Float32Array;
  for (let row = 0; row < src.length; row += d) {
    let sumSquares = 0;
    for (let j = 0; j < d; j++) sumSquares += src[row + j] * src[row + j];
    // HF multiplies the gain into the f32-rounded normalised value.
    const inv = 1 / Math.sqrt(sumSquares / d + eps);
    for (let j = 0; j < d; j++) out[row + j] = g[j] * Math.fround(src[row + j] * inv);
  }
  if (!needsGrad(x, weight)) return result;
  // With r = 1/√(mean(x²) + ε): dγ = Σ dy⊙x·r, dx = r·(dx̂ − x·r²·Σ(dx̂⊙x)/d) where dx̂ = dy⊙γ.
  return record(result, 'rmsNorm', [x, weight], (dy) => {
    const dx = new Float32Array(src.length);
    const dg = new Float32Array(d);
    for (let row = 0; row < src.length; row += d) {
      let sumSquares = 0;
      for (let j = 0; j < d; j++) sumSquares += src[row + j] * src[row + j];
      const r = 1 / Math.sqrt(sumSquares / d + eps);
      let dot = 0;
      for (let j = 0; j < d; j++) {
        dot += dy[row + j] * g[j] * src[row + j];
        dg[j] += dy[row + j] * src[row + j] * r;
      }
      for (let j = 0; j < d; j++) dx[row + j] = r * (dy[row + j] * g[j] - (src[row + j] * r * r * dot) / d);
    }
    return [dx, dg];
  });
}
