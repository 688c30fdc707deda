import { Tensor } from '../tensor/tensor.js';

/**
 * The sinusoidal positional encoding of "Attention Is All You Need" §3.5,
 * interleaved: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(same).
 * Computed in f64 and rounded to f32, as PyTorch tutorials and the fixtures do.
 */
export function sinusoidalInterleaved(positions: number, d: number): Tensor {
  const out = new Float32Array(positions * d);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < d; i += 2) {
      const angle = p / Math.pow(10000, i / d);
      out[p * d + i] = Math.sin(angle);
      if (i + 1 < d) out[p * d + i + 1] = Math.cos(angle);
    }
  }
  return new Tensor('f32', [positions, d], out);
}

/**
 * The same sinusoids laid out "sin half | cos half" (Marian, fairseq):
 * column j < d/2 is sin(p / 10000^(2j/d)), column d/2 + j the matching cos.
 */
export function sinusoidalHalves(positions: number, d: number): Tensor {
  const half = Math.ceil(d / 2);
  const out = new Float32Array(positions * d);
  for (let p = 0; p < positions; p++) {
    for (let j = 0; j < d; j++) {
      const column = j < half ? 2 * j : 2 * (j - half) + 1;
      const angle = p / Math.pow(10000, (2 * Math.floor(column / 2)) / d);
      out[p * d + j] = j < half ? Math.sin(angle) : Math.cos(angle);
    }
  }
  return new Tensor('f32', [positions, d], out);
}
