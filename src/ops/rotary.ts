import { ShapeError, UnsupportedError } from '../errors.js';
import { needsGrad, record } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';

/**
 * Rotary position embedding (Su et al. 2021) in Hugging Face's rotate_half
 * layout: x·cos + rotate_half(x)·sin with rotate_half([x1, x2]) = [−x2, x1].
 * x [batch, heads, seq, dim]; cos, sin [batch, seq, dim] are constants.
 */
export function rotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const [batch, heads, seq, dim] = x.shape;
  if (cos.shape[2] !== dim) throw new ShapeError(`rotary: rotary dimension ${cos.shape[2]} differs from head dimension ${dim}`);
  const half = dim / 2;
  const src = x.f32();
  const c = cos.f32();
  const s = sin.f32();
  const out = new Float32Array(src.length);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let t = 0; t < seq; t++) {
        const row = ((b * heads + h) * seq + t) * dim;
        const table = (b * seq + t) * dim;
        for (let i = 0; i < dim; i++) {
          const rotated = i < half ? -src[row + i + half] : src[row + i - half];
          out[row + i] = Math.fround(src[row + i] * c[table + i]) + Math.fround(rotated * s[table + i]);
        }
      }
    }
  }
  const result = new Tensor('f32', x.shape, out);
  if (!needsGrad(x)) return result;
  // The transpose of the rotation: rotating by −angle, i.e. dx = g·cos − rotate_half(g·sin).
  return record(result, 'rotary', [x], (g) => {
    const dx = new Float32Array(g.length);
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < heads; h++) {
        for (let t = 0; t < seq; t++) {
          const row = ((b * heads + h) * seq + t) * dim;
          const table = (b * seq + t) * dim;
          for (let i = 0; i < dim; i++) {
            const partner = i < half ? g[row + i + half] * s[table + i + half] : -g[row + i - half] * s[table + i - half];
            dx[row + i] = g[row + i] * c[table + i] + partner;
          }
        }
      }
    }
    return [dx];
  });
}

/**
 * `rotary` written over x where the heads lie side by side, [batch, seq,
 * heads·dim] (a projection's fresh output, at inference): the same values,
 * without splitting the heads out first. cos, sin [batch, seq, dim].
 */
export function rotaryMergedInPlace(x: Tensor, heads: number, cos: Tensor, sin: Tensor): Tensor {
  const [batch, seq, width] = x.shape;
  const dim = cos.shape[2];
  if (x.rank !== 3 || width !== heads * dim || cos.shape[0] !== batch || cos.shape[1] !== seq) throw new ShapeError(`rotary: ${x} is not ${heads} heads of the rotary dimension ${dim} over [${cos.shape.slice(0, 2).join(', ')}]`);
  if (needsGrad(x)) throw new UnsupportedError('rotaryMergedInPlace: in place is for inference, but x requires gradients');
  const half = dim / 2;
  const data = x.data as Float32Array;
  const c = cos.f32();
  const s = sin.f32();
  for (let t = 0; t < batch * seq; t++) {
    const table = t * dim;
    for (let h = 0; h < heads; h++) {
      const row = t * width + h * dim;
      // Each pair (x1, x2) = (x[i], x[i + half]) is read before either is written.
      for (let i = 0; i < half; i++) {
        const x1 = data[row + i];
        const x2 = data[row + i + half];
        data[row + i] = Math.fround(x1 * c[table + i]) + Math.fround(-x2 * s[table + i]);
        data[row + i + half] = Math.fround(x2 * c[table + i + half]) + Math.fround(x1 * s[table + i + half]);
      }
    }
  }
  return x;
}
