import { ShapeError, UnsupportedError } from '../errors.js';
import { Tensor, shapeString, sizeOf, stridesOf, type Shape } from '../tensor/tensor.js';

/** NumPy broadcasting: align from the right; each pair of sizes must match or be 1. */
export function broadcastShapes(a: Shape, b: Shape): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new ShapeError(`shapes ${shapeString(a)} and ${shapeString(b)} do not broadcast`);
    out[i] = x === 1 ? y : x;
  }
  return out;
}

/** Strides that read `shape` as if it had `target` shape (0 along broadcast axes). */
function broadcastStrides(shape: Shape, target: Shape): number[] {
  const strides = stridesOf(shape);
  return target.map((_, i) => {
    const j = shape.length - target.length + i;
    return j < 0 || shape[j] === 1 ? 0 : strides[j];
  });
}

function isSuffix(small: Shape, big: Shape): boolean {
  if (small.length > big.length) return false;
  for (let i = 1; i <= small.length; i++) if (small[small.length - i] !== big[big.length - i]) return false;
  return true;
}

type Binary = (x: number, y: number) => number;

function binary(a: Tensor, b: Tensor, f: Binary): Tensor {
  const x = a.f32();
  const y = b.f32();
  const shape = broadcastShapes(a.shape, b.shape);
  const out = new Float32Array(sizeOf(shape));
  if (x.length === out.length && y.length === out.length) {
    for (let i = 0; i < out.length; i++) out[i] = f(x[i], y[i]);
  } else if (x.length === out.length && isSuffix(b.shape, a.shape)) {
    // The common case of a bias or gain over the last axes.
    const period = y.length;
    for (let i = 0; i < out.length; i++) out[i] = f(x[i], y[i % period]);
  } else {
    const sa = broadcastStrides(a.shape, shape);
    const sb = broadcastStrides(b.shape, shape);
    const index = new Array<number>(shape.length).fill(0);
    let ia = 0;
    let ib = 0;
    for (let i = 0; i < out.length; i++) {
      out[i] = f(x[ia], y[ib]);
      for (let d = shape.length - 1; d >= 0; d--) {
        index[d]++;
        ia += sa[d];
        ib += sb[d];
        if (index[d] < shape[d]) break;
        ia -= sa[d] * shape[d];
        ib -= sb[d] * shape[d];
        index[d] = 0;
      }
    }
  }
  return new Tensor('f32', shape, out);
}

export const add = (a: Tensor, b: Tensor): Tensor => binary(a, b, (x, y) => x + y);
export const sub = (a: Tensor, b: Tensor): Tensor => binary(a, b, (x, y) => x - y);
export const mul = (a: Tensor, b: Tensor): Tensor => binary(a, b, (x, y) => x * y);
export const div = (a: Tensor, b: Tensor): Tensor => binary(a, b, (x, y) => x / y);

export function map(t: Tensor, f: (x: number) => number): Tensor {
  const x = t.f32();
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = f(x[i]);
  return new Tensor('f32', t.shape, out);
}

export const scale = (t: Tensor, s: number): Tensor => map(t, (x) => x * s);

/**
 * erf(x) to about 1e-7 relative error: the Chebyshev fit of erfc from Numerical
 * Recipes (§6.2), enough for f32 activations.
 */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 2 / (2 + z);
  const ty = 4 * t - 2;
  const coefficients = [
    -1.3026537197817094, 0.6419697923564902, 1.9476473204185836e-2, -9.561514786808631e-3, -9.46595344482036e-4,
    3.66839497852761e-4, 4.2523324806907e-5, -2.0278578112534e-5, -1.624290004647e-6, 1.30365583558e-6,
    1.5626441722e-8, -8.5238095915e-8, 6.529054439e-9, 5.059343495e-9, -9.91364156e-10, -2.27365122e-10,
    9.6467911e-11, 2.394038e-12, -6.886027e-12, 8.94487e-13, 3.13092e-13, -1.12708e-13, 3.81e-16, 7.106e-15,
    -1.523e-15, -9.4e-17, 1.21e-16, -2.8e-17,
  ];
  let d = 0;
  let dd = 0;
  for (let j = coefficients.length - 1; j > 0; j--) {
    const tmp = d;
    d = ty * d - dd + coefficients[j];
    dd = tmp;
  }
  const erfc = t * Math.exp(-z * z + 0.5 * (coefficients[0] + ty * d) - dd);
  return x >= 0 ? 1 - erfc : erfc - 1;
}

export const relu = (t: Tensor): Tensor => map(t, (x) => (x > 0 ? x : 0));

/** GELU, exact form x·Φ(x) (BERT, BART: `gelu`). */
export const gelu = (t: Tensor): Tensor => map(t, (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)));

/** GELU, tanh approximation (GPT-2 `gelu_new`, T5 gated-gelu), Hendrycks & Gimpel 2016. */
export const geluTanh = (t: Tensor): Tensor =>
  map(t, (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))));

/** SiLU / swish, x·σ(x) (Llama, Marian). */
export const silu = (t: Tensor): Tensor => map(t, (x) => x / (1 + Math.exp(-x)));

export const tanh = (t: Tensor): Tensor => map(t, Math.tanh);

export type Activation = 'relu' | 'gelu' | 'gelu_new' | 'gelu_pytorch_tanh' | 'silu' | 'swish' | 'tanh';

const ACTIVATIONS: Record<Activation, (t: Tensor) => Tensor> = {
  relu,
  gelu,
  gelu_new: geluTanh,
  gelu_pytorch_tanh: geluTanh,
  silu,
  swish: silu,
  tanh,
};

/** An activation by its Hugging Face `hidden_act` / `activation_function` name. */
export function activation(name: string): (t: Tensor) => Tensor {
  const f = ACTIVATIONS[name as Activation];
  if (!f) throw new UnsupportedError(`unknown activation "${name}"; supported: ${Object.keys(ACTIVATIONS).join(', ')}`);
  return f;
}
