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
 * erf(x) within 1.5e-7 absolute (Abramowitz & Stegun 7.1.26): a fifth-degree
 * polynomial in t = 1/(1 + p·|x|) times exp(−x²). Below f32 resolution for the
 * GELU it feeds, and a third of the cost of a long Chebyshev series.
 */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * z);
  const poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
  const y = 1 - poly * Math.exp(-z * z);
  return x < 0 ? -y : y;
}

export const relu = (t: Tensor): Tensor => map(t, (x) => (x > 0 ? x : 0));

/** GELU, exact form x·Φ(x) (BERT, BART: `gelu`). */
export function gelu(t: Tensor): Tensor {
  const x = t.f32();
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = 0.5 * x[i] * (1 + erf(x[i] * Math.SQRT1_2));
  return new Tensor('f32', t.shape, out);
}

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
