import { ShapeError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';

function checkGain(x: Tensor, gain: Tensor, what: string): number {
  const d = x.shape[x.rank - 1];
  if (gain.size !== d) throw new ShapeError(`${what}: weight ${gain} does not match the last axis of ${x}`);
  return d;
}

/** Layer normalisation (Ba et al. 2016): (x − mean) / √(var + ε) · γ + β over the last axis, biased variance. */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor | undefined, eps: number): Tensor {
  const d = checkGain(x, weight, 'layerNorm');
  const src = x.f32();
  const g = weight.f32();
  const b = bias?.f32();
  const out = new Float32Array(src.length);
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
  return new Tensor('f32', x.shape, out);
}

/** RMS normalisation (Zhang & Sennrich 2019): x / √(mean(x²) + ε) · γ, as Llama's RMSNorm and T5's LayerNorm. */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  const d = checkGain(x, weight, 'rmsNorm');
  const src = x.f32();
  const g = weight.f32();
  const out = new Float32Array(src.length);
  for (let row = 0; row < src.length; row += d) {
    let sumSquares = 0;
    for (let j = 0; j < d; j++) sumSquares += src[row + j] * src[row + j];
    // HF multiplies the gain into the f32-rounded normalised value.
    const inv = 1 / Math.sqrt(sumSquares / d + eps);
    for (let j = 0; j < d; j++) out[row + j] = g[j] * Math.fround(src[row + j] * inv);
  }
  return new Tensor('f32', x.shape, out);
}
