import { ShapeError, UnsupportedError } from '../errors.js';
import { BINARY_OPS, UNARY_KINDS, binaryLayout, elementwiseKernel, type BinaryOp, type UnaryKind } from '../kernels/elementwise.js';
import { needsGrad, record } from '../tensor/autograd.js';
import { Tensor, shapeString, sizeOf, stridesOf, type Shape } from '../tensor/tensor.js';
import { checkOut, target } from './out.js';

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

/**
 * f(a, b) broadcast, into `into` when given (checked by the caller: it may be
 * a or b only when that input has the result's shape, and each position is
 * read before it is written, so that works in place).
 */
function binaryValues(a: Tensor, b: Tensor, f: Binary, into?: Tensor): Tensor {
  const x = a.f32();
  const y = b.f32();
  const shape = broadcastShapes(a.shape, b.shape);
  const out = into ? (into.data as Float32Array) : new Float32Array(sizeOf(shape));
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
  return into ?? new Tensor('f32', shape, out);
}

/**
 * Sum a gradient over the axes along which `shape` was broadcast to `outShape`,
 * so that it has `shape` again (a bias [d] used for every row gets the sum of
 * the rows' gradients).
 */
export function reduceToShape(g: Float32Array, outShape: Shape, shape: Shape): Float32Array {
  const n = sizeOf(shape);
  if (n === g.length) return g;
  const out = new Float32Array(n);
  if (isSuffix(shape, outShape)) {
    for (let i = 0; i < g.length; i++) out[i % n] += g[i];
    return out;
  }
  const strides = broadcastStrides(shape, outShape);
  const index = new Array<number>(outShape.length).fill(0);
  let at = 0;
  for (let i = 0; i < g.length; i++) {
    out[at] += g[i];
    for (let d = outShape.length - 1; d >= 0; d--) {
      index[d]++;
      at += strides[d];
      if (index[d] < outShape[d]) break;
      at -= strides[d] * outShape[d];
      index[d] = 0;
    }
  }
  return out;
}

/** `values` of a broadcast input read at every position of the output shape. */
function expand(t: Tensor, outShape: Shape): Float32Array {
  return t.size === sizeOf(outShape) ? t.f32() : binaryValues(t, new Tensor('f32', outShape, new Float32Array(sizeOf(outShape))), (x) => x).f32();
}

type BinaryGrad = (g: Float32Array, a: Tensor, b: Tensor, shape: Shape) => [Float32Array | undefined, Float32Array | undefined];

/**
 * a ∘ b through the native kernel: inference on f32 tensors whose broadcast
 * fits its four axes; undefined sends the caller to the TypeScript loop.
 */
function fusedBinary(op: BinaryOp, a: Tensor, b: Tensor, shape: Shape, out: Tensor | undefined): Tensor | undefined {
  const kernel = elementwiseKernel();
  if (!kernel || a.dtype !== 'f32' || b.dtype !== 'f32' || needsGrad(a, b)) return undefined;
  const layout = binaryLayout(a.shape, b.shape, shape);
  if (!layout) return undefined;
  const result = target(out, shape);
  kernel.binary(BINARY_OPS[op], a.f32(), b.f32(), result.data as Float32Array, layout);
  return result;
}

function binary(op: BinaryOp, a: Tensor, b: Tensor, f: Binary, grad: BinaryGrad, out?: Tensor): Tensor {
  const shape = broadcastShapes(a.shape, b.shape);
  if (out) checkOut(op, out, shape, [a, b]);
  const fused = fusedBinary(op, a, b, shape, out);
  if (fused) return fused;
  const result = binaryValues(a, b, f, out);
  if (!needsGrad(a, b)) return result;
  return record(result, op, [a, b], (g) => {
    const [ga, gb] = grad(g, a, b, result.shape);
    return [
      ga && a.requiresGrad ? reduceToShape(ga, result.shape, a.shape) : undefined,
      gb && b.requiresGrad ? reduceToShape(gb, result.shape, b.shape) : undefined,
    ];
  });
}

function times(g: Float32Array, x: Float32Array, f: (gi: number, xi: number) => number = (gi, xi) => gi * xi): Float32Array {
  const out = new Float32Array(g.length);
  for (let i = 0; i < g.length; i++) out[i] = f(g[i], x[i]);
  return out;
}

const addOp = (a: Tensor, b: Tensor, out?: Tensor): Tensor => binary('add', a, b, (x, y) => x + y, (g) => [g, g], out);
const mulOp = (a: Tensor, b: Tensor, out?: Tensor): Tensor =>
  binary(
    'mul',
    a,
    b,
    (x, y) => x * y,
    (g, x, y, shape) => [x.requiresGrad ? times(g, expand(y, shape)) : undefined, y.requiresGrad ? times(g, expand(x, shape)) : undefined],
    out,
  );

export const add = (a: Tensor, b: Tensor): Tensor => addOp(a, b);
export const sub = (a: Tensor, b: Tensor): Tensor => binary('sub', a, b, (x, y) => x - y, (g) => [g, times(g, g, (gi) => -gi)]);
export const mul = (a: Tensor, b: Tensor): Tensor => mulOp(a, b);
// d(x/y)/dx = 1/y, d(x/y)/dy = −x/y².
export const div = (a: Tensor, b: Tensor): Tensor =>
  binary('div', a, b, (x, y) => x / y, (g, x, y, shape) => {
    const ys = expand(y, shape);
    const ga = times(g, ys, (gi, yi) => gi / yi);
    if (!y.requiresGrad) return [ga, undefined];
    const xs = expand(x, shape);
    const gb = new Float32Array(g.length);
    for (let i = 0; i < g.length; i++) gb[i] = (-g[i] * xs[i]) / (ys[i] * ys[i]);
    return [ga, gb];
  });

/** add(a, b) written into `out` (inference only; `out` may be `a` or `b` when it has the result's shape: see ops/out.ts). */
export const addInto = (a: Tensor, b: Tensor, out: Tensor): Tensor => addOp(a, b, out);
/** mul(a, b) written into `out` (inference only; `out` may be `a` or `b` when it has the result's shape: see ops/out.ts). */
export const mulInto = (a: Tensor, b: Tensor, out: Tensor): Tensor => mulOp(a, b, out);

// The native layouts of y [rows, n] += b [n] for decode's rows (batch × beams,
// up to 64), made once: a decode step adds a bias after most products, and
// building the layout cost more than the add (and made an array per add).
const DECODE_ROWS = 64;
const rowLayouts = new Map<number, Float64Array>();

function rowsLayout(rows: number, n: number): Float64Array | undefined {
  if (rows > DECODE_ROWS) return binaryLayout([rows, n], [n], [rows, n]);
  const key = n * (DECODE_ROWS + 1) + rows;
  let layout = rowLayouts.get(key);
  if (!layout) {
    layout = binaryLayout([rows, n], [n], [rows, n]);
    if (layout) rowLayouts.set(key, layout);
  }
  return layout;
}

/**
 * y += b in place, b repeated over y's leading axes (a bias [n] over
 * [..., n], or a tensor of y's shape: a residual): for a fresh result nobody
 * else holds, at inference. The same f32 sums as `add`.
 */
export function addInPlace(y: Tensor, b: Tensor): Tensor {
  const n = b.size;
  if (y.dtype !== 'f32' || !isSuffix(b.shape, y.shape)) throw new ShapeError(`addInPlace: ${b} does not match the last axes of ${y}`);
  if (needsGrad(y, b)) throw new UnsupportedError('addInPlace: in place is for inference, but an input requires gradients');
  if (n === 0) return y;
  const out = y.data as Float32Array;
  const add = b.f32();
  const kernel = elementwiseKernel();
  const layout = kernel ? rowsLayout(y.size / n, n) : undefined;
  if (kernel && layout) {
    kernel.binary(BINARY_OPS.add, out, add, out, layout);
    return y;
  }
  for (let at = 0; at < out.length; at += n) {
    for (let j = 0; j < n; j++) out[at + j] += add[j];
  }
  return y;
}

/**
 * An elementwise function without a gradient rule: the values only. A tensor
 * that requires gradients is refused rather than silently cut off the tape.
 */
export function map(t: Tensor, f: (x: number) => number): Tensor {
  if (needsGrad(t)) throw new UnsupportedError(`map: no gradient rule for an arbitrary function of ${t}; use a differentiable op or noGrad`);
  return mapValues(t, f);
}

/** f of every value, into `into` when given (which may be t itself). */
function mapValues(t: Tensor, f: (x: number) => number, into?: Tensor): Tensor {
  const x = t.f32();
  const out = into ? (into.data as Float32Array) : new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = f(x[i]);
  return into ?? new Tensor('f32', t.shape, out);
}

/**
 * A unary elementwise op with its derivative: `derivative(x, y)` is dy/dx at
 * input x with output y (whichever is cheaper to use).
 */
function unary(op: string, t: Tensor, out: Tensor, derivative: (x: number, y: number) => number): Tensor {
  if (!needsGrad(t)) return out;
  return record(out, op, [t], (g) => {
    const x = t.f32();
    const y = out.f32();
    const dx = new Float32Array(g.length);
    for (let i = 0; i < g.length; i++) dx[i] = g[i] * derivative(x[i], y[i]);
    return [dx];
  });
}

/**
 * f(t) through the native kernel (inference, f32): the same values as the
 * TypeScript formulas to f32 rounding; undefined runs those formulas.
 */
function fusedUnary(kind: UnaryKind, t: Tensor, param: number, out: Tensor | undefined): Tensor | undefined {
  const kernel = elementwiseKernel();
  if (!kernel || t.dtype !== 'f32' || needsGrad(t)) return undefined;
  const result = target(out, t.shape);
  kernel.unary(UNARY_KINDS[kind], t.f32(), null, result.data as Float32Array, t.size, param);
  return result;
}

/**
 * An activation the native kernel also computes: there for inference on f32,
 * else `values()` (the TypeScript formula) with `derivative` on the tape.
 */
function activationOp(
  kind: UnaryKind,
  t: Tensor,
  out: Tensor | undefined,
  param: number,
  values: (into?: Tensor) => Tensor,
  derivative: (x: number, y: number) => number,
): Tensor {
  if (out) checkOut(kind, out, t.shape, [t]);
  return fusedUnary(kind, t, param, out) ?? unary(kind, t, values(out), derivative);
}

const scaleOp = (t: Tensor, s: number, out?: Tensor): Tensor => activationOp('scale', t, out, s, (into) => mapValues(t, (x) => x * s, into), () => s);
export const scale = (t: Tensor, s: number): Tensor => scaleOp(t, s);
/** scale(t, s) written into `out` (inference only; `out` may be `t`: see ops/out.ts). */
export const scaleInto = (t: Tensor, s: number, out: Tensor): Tensor => scaleOp(t, s, out);

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

type UnaryOp = (t: Tensor, out?: Tensor) => Tensor;

const reluOp: UnaryOp = (t, out) => activationOp('relu', t, out, 0, (into) => mapValues(t, (x) => (x > 0 ? x : 0), into), (x) => (x > 0 ? 1 : 0));

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

// d/dx x·Φ(x) = Φ(x) + x·φ(x).
const geluOp: UnaryOp = (t, out) =>
  activationOp(
    'gelu',
    t,
    out,
    0,
    (into) => mapValues(t, (x) => 0.5 * x * (1 + erf(x * Math.SQRT1_2)), into),
    (v) => 0.5 * (1 + erf(v * Math.SQRT1_2)) + v * INV_SQRT_2PI * Math.exp(-0.5 * v * v),
  );

const GELU_C = Math.sqrt(2 / Math.PI);

const geluTanhOp: UnaryOp = (t, out) =>
  activationOp(
    'geluTanh',
    t,
    out,
    0,
    (into) => mapValues(t, (x) => 0.5 * x * (1 + Math.tanh(GELU_C * (x + 0.044715 * x * x * x))), into),
    (x) => {
      const th = Math.tanh(GELU_C * (x + 0.044715 * x * x * x));
      return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * GELU_C * (1 + 3 * 0.044715 * x * x);
    },
  );

// d/dx x·σ(x) = σ(x)·(1 + x·(1 − σ(x))).
const siluOp: UnaryOp = (t, out) =>
  activationOp(
    'silu',
    t,
    out,
    0,
    (into) => mapValues(t, (x) => x / (1 + Math.exp(-x)), into),
    (x) => {
      const sig = 1 / (1 + Math.exp(-x));
      return sig * (1 + x * (1 - sig));
    },
  );

const tanhOp: UnaryOp = (t, out) => {
  if (out) checkOut('tanh', out, t.shape, [t]);
  return unary('tanh', t, mapValues(t, Math.tanh, out), (_x, y) => 1 - y * y);
};

export const relu = (t: Tensor): Tensor => reluOp(t);
/** GELU, exact form x·Φ(x) (BERT, BART: `gelu`). */
export const gelu = (t: Tensor): Tensor => geluOp(t);
/** GELU, tanh approximation (GPT-2 `gelu_new`, T5 gated-gelu), Hendrycks & Gimpel 2016. */
export const geluTanh = (t: Tensor): Tensor => geluTanhOp(t);
/** SiLU / swish, x·σ(x) (Llama, Marian). */
export const silu = (t: Tensor): Tensor => siluOp(t);
export const tanh = (t: Tensor): Tensor => tanhOp(t);

export type Activation = 'relu' | 'gelu' | 'gelu_new' | 'gelu_pytorch_tanh' | 'silu' | 'swish' | 'tanh';

/** An activation: the function, the op that can also write into a tensor, and its native kind for the gated pass. */
interface ActivationOps {
  f: (t: Tensor) => Tensor;
  op: UnaryOp;
  gatedKind?: UnaryKind;
}

const RELU: ActivationOps = { f: relu, op: reluOp, gatedKind: 'relu' };
const GELU: ActivationOps = { f: gelu, op: geluOp, gatedKind: 'gelu' };
const GELU_TANH: ActivationOps = { f: geluTanh, op: geluTanhOp, gatedKind: 'geluTanh' };
const SILU: ActivationOps = { f: silu, op: siluOp, gatedKind: 'silu' };
const TANH: ActivationOps = { f: tanh, op: tanhOp };

const ACTIVATIONS: Record<Activation, ActivationOps> = {
  relu: RELU,
  gelu: GELU,
  gelu_new: GELU_TANH,
  gelu_pytorch_tanh: GELU_TANH,
  silu: SILU,
  swish: SILU,
  tanh: TANH,
};

const BY_FUNCTION = new WeakMap<(t: Tensor) => Tensor, ActivationOps>([RELU, GELU, GELU_TANH, SILU, TANH].map((a) => [a.f, a]));

function lookUp(name: string): ActivationOps {
  const a = ACTIVATIONS[name as Activation];
  if (!a) throw new UnsupportedError(`unknown activation "${name}"; supported: ${Object.keys(ACTIVATIONS).join(', ')}`);
  return a;
}

/** An activation by its Hugging Face `hidden_act` / `activation_function` name. */
export function activation(name: string): (t: Tensor) => Tensor {
  return lookUp(name).f;
}

/**
 * The same activation writing into `out` (inference only; `out` may be the
 * input itself, e.g. a feed-forward's fresh up-projection: see ops/out.ts).
 */
export function activationInto(name: string): (t: Tensor, out: Tensor) => Tensor {
  const { op } = lookUp(name);
  return (t, out) => op(t, out);
}

/**
 * act(t) for a `t` the caller owns and will not read again (a fresh product
 * no hook has seen): written over t when `act` is one of these activations
 * and nothing records gradients, since a new 50 MB result costs more than
 * the activation itself; any other function, or training, just calls act(t).
 */
export function activateInPlace(act: (t: Tensor) => Tensor, t: Tensor): Tensor {
  const op = BY_FUNCTION.get(act)?.op;
  return op && t.dtype === 'f32' && !needsGrad(t) ? op(t, t) : act(t);
}

/**
 * act(t) ⊙ gate for a `t` the caller owns (the gated feed-forward of Shazeer
 * 2020: SwiGLU, gated GELU): for inference on f32 tensors of one shape,
 * written over t, in one native pass when act is one of these activations
 * (the f32-rounded activation times the gate, as mul(act(t), gate)). With
 * gradients, other dtypes or shapes it is mul(act(t), gate), t untouched.
 */
export function activateGatedInPlace(act: (t: Tensor) => Tensor, t: Tensor, gate: Tensor): Tensor {
  const kernel = elementwiseKernel();
  const kind = BY_FUNCTION.get(act)?.gatedKind;
  const ours = t.dtype === 'f32' && gate.dtype === 'f32' && !needsGrad(t, gate) && t.rank === gate.rank && t.shape.every((d, i) => d === gate.shape[i]);
  if (kernel && kind && ours) {
    const x = t.f32();
    kernel.unary(UNARY_KINDS[kind], x, gate.f32(), x, t.size, 0);
    return t;
  }
  return ours ? mulInto(activateInPlace(act, t), gate, t) : mul(act(t), gate);
}
