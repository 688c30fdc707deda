/**
 * The seam for the fused elementwise ops between the matrix products (norms,
 * activations, softmax, broadcast arithmetic): native/elementwise.cc when the
 * addon is loaded, nothing otherwise. ops/ call these for inference on f32
 * tensors and run their own TypeScript loops, the reference and the browser
 * path, when `elementwiseKernel()` is undefined or an input requires gradients.
 *
 * This file imports no `node:` module, so a browser build can include it.
 */
import { onNativeAddon } from './index.js';

/** The activations `unary` computes, by the addon's numbering. */
export const UNARY_KINDS = { relu: 0, gelu: 1, geluTanh: 2, silu: 3, scale: 4 } as const;
export type UnaryKind = keyof typeof UNARY_KINDS;

/** The broadcast binary ops `binary` computes, by the addon's numbering. */
export const BINARY_OPS = { add: 0, sub: 1, mul: 2, div: 3 } as const;
export type BinaryOp = keyof typeof BINARY_OPS;

/**
 * What native/elementwise.cc exports. Every array is row-major and contiguous;
 * outputs are overwritten and may be the first input (in place).
 */
export interface ElementwiseKernel {
  /**
   * out = layerNorm(x + residual) · gamma + beta over rows of d; with a
   * residual, x + residual (rounded to f32) is also written to `sum` if given.
   */
  layerNorm(
    x: Float32Array,
    residual: Float32Array | null,
    sum: Float32Array | null,
    gamma: Float32Array,
    beta: Float32Array | null,
    out: Float32Array,
    rows: number,
    d: number,
    eps: number,
  ): void;
  /** out = gamma · f32(x / √(mean(x²) + eps)) over rows of d. */
  rmsNorm(x: Float32Array, gamma: Float32Array, out: Float32Array, rows: number, d: number, eps: number): void;
  /** out[i] = f(x[i]) (· gate[i]); `param` is the factor of `scale`. */
  unary(kind: number, x: Float32Array, gate: Float32Array | null, out: Float32Array, n: number, param: number): void;
  /**
   * Softmax over rows of n of f32(f32(x · scale) + mask). Rows are [B, H, Q]
   * flattened; the mask row of (b, h, q) starts at b·s0 + h·s1 + q·s2 for
   * maskStrides [s0, s1, s2], with dims [H, Q].
   */
  softmax(
    x: Float32Array,
    out: Float32Array,
    rows: number,
    n: number,
    scale: number,
    mask: Float32Array | null,
    maskStrides: Float64Array,
    dims: Float64Array,
  ): void;
  /** out = a ∘ b over layout [shape ×4, a strides ×4, b strides ×4] (see `binaryLayout`). */
  binary(op: number, a: Float32Array, b: Float32Array, out: Float32Array, layout: Float64Array): void;
  /** out (contiguous, not overlapping x) = x read through layout [shape ×4, x strides ×4] (see `permuteLayout`). */
  permute(x: Float32Array, out: Float32Array, layout: Float64Array): void;
}

const FUNCTIONS = ['layerNorm', 'rmsNorm', 'unary', 'softmax', 'binary', 'permute'] as const;

let active: ElementwiseKernel | undefined;

onNativeAddon((addon) => {
  if (FUNCTIONS.every((name) => typeof addon[name] === 'function')) active = addon as unknown as ElementwiseKernel;
});

/** The fused elementwise kernel, when the native addon is loaded; undefined runs the TypeScript ops. */
export function elementwiseKernel(): ElementwiseKernel | undefined {
  return active;
}

/** Swap the kernel (undefined turns the fused paths off, to compare); returns the previous one. */
export function setElementwiseKernel(kernel: ElementwiseKernel | undefined): ElementwiseKernel | undefined {
  const previous = active;
  active = kernel;
  return previous;
}

/** Axes the native `binary` and `permute` walk; a layout that does not fit in this many runs the TypeScript loop. */
const BINARY_AXES = 4;

/**
 * The native `binary` layout of a ∘ b broadcast to `out`: NumPy broadcasting
 * as element strides (0 on a repeated axis), merged and padded by
 * `mergedLayout`. Undefined when more than four axes remain or an operand
 * repeats along a run of the last axis that is not the whole axis (the kernel
 * needs stride 0 or 1 there).
 */
export function binaryLayout(a: readonly number[], b: readonly number[], out: readonly number[]): Float64Array | undefined {
  const layout = mergedLayout(out, [broadcastStrides(a, out), broadcastStrides(b, out)]);
  if (layout === undefined || layout[2 * BINARY_AXES - 1] > 1 || layout[3 * BINARY_AXES - 1] > 1) return undefined;
  return layout;
}

/** Element strides that read `shape` as `target` (right-aligned; 0 on every axis it repeats). */
function broadcastStrides(shape: readonly number[], target: readonly number[]): number[] {
  const strides = new Array<number>(target.length).fill(0);
  let stride = 1;
  for (let i = target.length - 1, j = shape.length - 1; i >= 0; i--, j--) {
    if (j < 0) break;
    strides[i] = shape[j] === 1 ? 0 : stride;
    stride *= shape[j];
  }
  return strides;
}

/**
 * The native `permute` layout of a contiguous tensor of `shape` with its axes
 * reordered by `axes` (output axis i is input axis axes[i]): the output shape
 * and the input's strides along it, merged and padded by `mergedLayout`.
 * Undefined when more than four axes remain.
 */
export function permuteLayout(shape: readonly number[], axes: readonly number[]): Float64Array | undefined {
  const inStrides = new Array<number>(shape.length);
  for (let i = shape.length - 1, stride = 1; i >= 0; i--) {
    inStrides[i] = stride;
    stride *= shape[i];
  }
  return mergedLayout(
    axes.map((axis) => shape[axis]),
    [axes.map((axis) => inStrides[axis])],
  );
}

/**
 * [shape ×4, then each operand's element strides ×4]: `shape` with axes of
 * size 1 dropped and neighbouring axes merged while every operand steps over
 * both as one run (so the kernel's innermost loop is as long as it can be),
 * padded in front to four axes. Undefined when more than four axes remain.
 */
function mergedLayout(shape: readonly number[], operands: readonly (readonly number[])[]): Float64Array | undefined {
  const merged: number[] = [];
  const strides: number[][] = operands.map(() => []);
  for (let axis = 0; axis < shape.length; axis++) {
    const size = shape[axis];
    if (size === 1) continue;
    const last = merged.length - 1;
    let joins = last >= 0;
    for (let o = 0; o < operands.length && joins; o++) joins = strides[o][last] === operands[o][axis] * size;
    if (joins) merged[last] *= size;
    else merged.push(size);
    for (let o = 0; o < operands.length; o++) strides[o][merged.length - 1] = operands[o][axis];
  }
  if (merged.length > BINARY_AXES) return undefined;
  const pad = BINARY_AXES - merged.length;
  const layout = new Float64Array((1 + operands.length) * BINARY_AXES);
  for (let i = 0; i < BINARY_AXES; i++) {
    layout[i] = i < pad ? 1 : merged[i - pad];
    for (let o = 0; o < operands.length; o++) layout[(1 + o) * BINARY_AXES + i] = i < pad ? 0 : strides[o][i - pad];
  }
  return layout;
}
