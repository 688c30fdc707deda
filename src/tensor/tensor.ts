import { ShapeError } from '../errors.js';
import { elementwiseKernel, permuteLayout } from '../kernels/elementwise.js';
import { needsGrad, record, type GradNode } from './autograd.js';
import { allocate, bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, type DType, type TensorData } from './dtype.js';

export type Shape = readonly number[];

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function stridesOf(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

export function shapeString(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

function normaliseAxis(axis: number, rank: number, what: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new ShapeError(`${what}: axis ${axis} is out of range for rank ${rank}`);
  return a;
}

type Nested = number | Nested[];

/**
 * A dense, contiguous, row-major n-dimensional array. `reshape` and
 * `narrowRows` (leading rows) share memory, as both stay contiguous; every
 * other shape-changing operation returns a fresh copy.
 */
export class Tensor {
  readonly shape: Shape;
  /** Gradients flow to this tensor in `backward` (set on parameters; ops set it on what they compute from them). */
  requiresGrad = false;
  /** How this tensor was computed, when it was recorded on the tape (see autograd.ts). */
  gradNode?: GradNode;
  /** d(loss)/d(this), accumulated by `backward` on leaves that require gradients. */
  grad?: Tensor;

  constructor(
    readonly dtype: DType,
    shape: Shape,
    readonly data: TensorData,
  ) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new ShapeError(`invalid dimension ${d} in shape ${shapeString(shape)}`);
    }
    if (sizeOf(shape) !== data.length) {
      throw new ShapeError(`shape ${shapeString(shape)} holds ${sizeOf(shape)} elements but the data has ${data.length}`);
    }
    this.shape = Object.freeze([...shape]);
  }

  static zeros(shape: Shape, dtype: DType = 'f32'): Tensor {
    return new Tensor(dtype, shape, allocate(dtype, sizeOf(shape)));
  }

  static full(shape: Shape, value: number): Tensor {
    return new Tensor('f32', shape, new Float32Array(sizeOf(shape)).fill(value));
  }

  static f32(data: ArrayLike<number>, shape?: Shape): Tensor {
    const array = data instanceof Float32Array ? data : Float32Array.from(data);
    return new Tensor('f32', shape ?? [array.length], array);
  }

  static i32(data: ArrayLike<number>, shape?: Shape): Tensor {
    const array = data instanceof Int32Array ? data : Int32Array.from(data);
    return new Tensor('i32', shape ?? [array.length], array);
  }

  /** Build from nested arrays, e.g. `Tensor.from([[1, 2], [3, 4]])`. */
  static from(nested: Nested, dtype: 'f32' | 'i32' = 'f32'): Tensor {
    const shape: number[] = [];
    let probe: Nested = nested;
    while (Array.isArray(probe)) {
      shape.push(probe.length);
      probe = probe[0];
    }
    const flat: number[] = [];
    const walk = (n: Nested): void => {
      if (Array.isArray(n)) n.forEach(walk);
      else flat.push(n);
    };
    walk(nested);
    return dtype === 'i32' ? Tensor.i32(flat, shape) : Tensor.f32(flat, shape);
  }

  /** Mark this tensor as a parameter that gradients flow to; returns it. */
  requireGrad(flag = true): this {
    this.requiresGrad = flag;
    return this;
  }

  /** The same data cut off from the tape: gradients stop here. */
  detach(): Tensor {
    return new Tensor(this.dtype, this.shape, this.data);
  }

  get size(): number {
    return this.data.length;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** The values as f32, widening 16-bit storage. Shares memory when already f32. */
  f32(): Float32Array {
    const d = this.data;
    if (this.dtype === 'f32') return d as Float32Array;
    const out = new Float32Array(d.length);
    if (this.dtype === 'i32') out.set(d);
    else if (this.dtype === 'bf16') for (let i = 0; i < d.length; i++) out[i] = bf16ToF32(d[i]);
    else for (let i = 0; i < d.length; i++) out[i] = f16ToF32(d[i]);
    return out;
  }

  /** Convert to another dtype (f32 → i32 truncates toward zero). */
  to(dtype: DType): Tensor {
    if (dtype === this.dtype) return this;
    if (dtype === 'f32') return new Tensor('f32', this.shape, this.f32());
    const src = this.f32();
    const out = allocate(dtype, src.length);
    if (dtype === 'i32') for (let i = 0; i < src.length; i++) out[i] = Math.trunc(src[i]);
    else if (dtype === 'bf16') for (let i = 0; i < src.length; i++) out[i] = f32ToBf16(src[i]);
    else for (let i = 0; i < src.length; i++) out[i] = f32ToF16(src[i]);
    return new Tensor(dtype, this.shape, out);
  }

  /** Same data, new shape; one dimension may be -1 and is inferred. */
  reshape(shape: Shape): Tensor {
    const known = shape.reduce((n, d) => (d === -1 ? n : n * d), 1);
    const inferred = shape.filter((d) => d === -1).length;
    if (inferred > 1) throw new ShapeError(`reshape ${shapeString(shape)}: only one dimension may be -1`);
    const resolved = shape.map((d) => (d === -1 ? this.size / known : d));
    if (sizeOf(resolved) !== this.size || resolved.some((d) => !Number.isInteger(d))) {
      throw new ShapeError(`cannot reshape ${shapeString(this.shape)} (${this.size} elements) to ${shapeString(shape)}`);
    }
    const out = new Tensor(this.dtype, resolved, this.data);
    return needsGrad(this) ? record(out, 'reshape', [this], (g) => [g]) : out;
  }

  /** Reorder axes, e.g. `permute([0, 2, 1, 3])`; returns a contiguous copy. */
  permute(axes: readonly number[]): Tensor {
    const out = this.permuteData(axes);
    if (!needsGrad(this)) return out;
    const perm = axes.map((a) => normaliseAxis(a, this.rank, 'permute'));
    const inverse = new Array<number>(perm.length);
    perm.forEach((a, i) => (inverse[a] = i));
    return record(out, 'permute', [this], (g) => [new Tensor('f32', out.shape, g).permuteData(inverse).data as Float32Array]);
  }

  private permuteData(axes: readonly number[]): Tensor {
    const rank = this.rank;
    if (axes.length !== rank || new Set(axes.map((a) => normaliseAxis(a, rank, 'permute'))).size !== rank) {
      throw new ShapeError(`permute: ${shapeString(axes)} is not a permutation of ${rank} axes`);
    }
    const perm = axes.map((a) => normaliseAxis(a, rank, 'permute'));
    const outShape = perm.map((a) => this.shape[a]);
    // f32 with the addon loaded: a native strided copy (splitting and merging heads).
    const kernel = elementwiseKernel();
    const layout = kernel && this.dtype === 'f32' ? permuteLayout(this.shape, perm) : undefined;
    if (kernel && layout) {
      const out = new Float32Array(this.size);
      kernel.permute(this.data as Float32Array, out, layout);
      return new Tensor('f32', outShape, out);
    }
    const inStrides = stridesOf(this.shape);
    const permStrides = perm.map((a) => inStrides[a]);
    const out = allocate(this.dtype, this.size);
    const src = this.data;
    const index = new Array<number>(rank).fill(0);
    const last = rank - 1;
    if (rank === 0) {
      out[0] = src[0];
      return new Tensor(this.dtype, outShape, out);
    }
    const innerLen = outShape[last];
    const innerStride = permStrides[last];
    let o = 0;
    while (o < out.length) {
      let base = 0;
      for (let i = 0; i < last; i++) base += index[i] * permStrides[i];
      for (let j = 0; j < innerLen; j++) out[o++] = src[base + j * innerStride];
      for (let i = last - 1; i >= 0; i--) {
        if (++index[i] < outShape[i]) break;
        index[i] = 0;
      }
    }
    return new Tensor(this.dtype, outShape, out);
  }

  transpose(a = -2, b = -1): Tensor {
    const axes = this.shape.map((_, i) => i);
    const x = normaliseAxis(a, this.rank, 'transpose');
    const y = normaliseAxis(b, this.rank, 'transpose');
    [axes[x], axes[y]] = [axes[y], axes[x]];
    return this.permute(axes);
  }

  /** Elements `start ≤ i < end` along one axis (negative indices count from the end). */
  slice(axis: number, start: number, end?: number): Tensor {
    const ax = normaliseAxis(axis, this.rank, 'slice');
    const dim = this.shape[ax];
    const s = Math.max(0, Math.min(dim, start < 0 ? start + dim : start));
    const e0 = end ?? dim;
    const e = Math.max(s, Math.min(dim, e0 < 0 ? e0 + dim : e0));
    const outer = sizeOf(this.shape.slice(0, ax));
    const inner = sizeOf(this.shape.slice(ax + 1));
    const outShape = [...this.shape];
    outShape[ax] = e - s;
    const out = allocate(this.dtype, outer * (e - s) * inner);
    const chunk = (e - s) * inner;
    for (let o = 0; o < outer; o++) {
      const from = (o * dim + s) * inner;
      out.set(this.data.subarray(from, from + chunk), o * chunk);
    }
    const result = new Tensor(this.dtype, outShape, out);
    if (!needsGrad(this)) return result;
    return record(result, 'slice', [this], (g) => {
      const dx = new Float32Array(this.size);
      for (let o = 0; o < outer; o++) dx.set(g.subarray(o * chunk, (o + 1) * chunk), (o * dim + s) * inner);
      return [dx];
    });
  }

  /**
   * Rows `start ≤ i < end` of the first axis as a view that shares this
   * tensor's memory (torch.narrow on dim 0): a fused weight split at load time
   * (q|k|v stacked in one matrix) keeps seeing the optimizer's in-place
   * updates, and gradients flow back into the fused parameter.
   */
  narrowRows(start: number, end: number): Tensor {
    const dim = this.shape[0];
    if (this.rank === 0 || start < 0 || end > dim || start > end) throw new ShapeError(`narrowRows: rows [${start}, ${end}) of ${this}`);
    const inner = this.size / dim;
    const out = new Tensor(this.dtype, [end - start, ...this.shape.slice(1)], this.data.subarray(start * inner, end * inner));
    if (!needsGrad(this)) return out;
    return record(out, 'narrowRows', [this], (g) => {
      const dx = new Float32Array(this.size);
      dx.set(g, start * inner);
      return [dx];
    });
  }

  /** Drop a leading-axes index: `t.at(1)` of a [2, 3, 4] tensor is its [3, 4] second row. */
  at(index: number): Tensor {
    if (this.rank === 0) throw new ShapeError('at: a scalar has no rows');
    const dim = this.shape[0];
    const i = index < 0 ? index + dim : index;
    if (i < 0 || i >= dim) throw new ShapeError(`at: index ${index} out of range for dimension ${dim}`);
    return this.slice(0, i, i + 1).reshape(this.shape.slice(1));
  }

  /** One element by its full index. */
  get(...index: number[]): number {
    if (index.length !== this.rank) throw new ShapeError(`get: expected ${this.rank} indices, got ${index.length}`);
    const strides = stridesOf(this.shape);
    let offset = 0;
    for (let i = 0; i < index.length; i++) offset += index[i] * strides[i];
    const v = this.data[offset];
    if (this.dtype === 'bf16') return bf16ToF32(v);
    if (this.dtype === 'f16') return f16ToF32(v);
    return v;
  }

  /** Nested arrays, for printing and JSON. */
  toArray(): Nested {
    const values = Array.from(this.f32());
    const build = (dim: number, offset: number): Nested => {
      if (dim === this.rank) return values[offset];
      const inner = sizeOf(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim] }, (_, i) => build(dim + 1, offset + i * inner));
    };
    return build(0, 0);
  }

  clone(): Tensor {
    const out = new Tensor(this.dtype, this.shape, this.data.slice());
    return needsGrad(this) ? record(out, 'clone', [this], (g) => [g]) : out;
  }

  toString(): string {
    return `Tensor(${this.dtype}, ${shapeString(this.shape)})`;
  }
}

/** Join tensors along an existing axis. */
export function concat(tensors: readonly Tensor[], axis: number): Tensor {
  if (tensors.length === 0) throw new ShapeError('concat: no tensors given');
  const first = tensors[0];
  const ax = normaliseAxis(axis, first.rank, 'concat');
  for (const t of tensors) {
    if (t.rank !== first.rank || t.dtype !== first.dtype || t.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      throw new ShapeError(`concat along axis ${axis}: ${t} does not match ${first}`);
    }
  }
  const outer = sizeOf(first.shape.slice(0, ax));
  const inner = sizeOf(first.shape.slice(ax + 1));
  const total = tensors.reduce((n, t) => n + t.shape[ax], 0);
  const outShape = [...first.shape];
  outShape[ax] = total;
  const out = allocate(first.dtype, outer * total * inner);
  let offset = 0;
  for (const t of tensors) {
    const chunk = t.shape[ax] * inner;
    for (let o = 0; o < outer; o++) out.set(t.data.subarray(o * chunk, (o + 1) * chunk), o * total * inner + offset);
    offset += chunk;
  }
  const result = new Tensor(first.dtype, outShape, out);
  if (!tensors.some((t) => needsGrad(t))) return result;
  return record(result, 'concat', tensors, (g) => {
    let start = 0;
    return tensors.map((t) => {
      const chunk = t.shape[ax] * inner;
      const dx = new Float32Array(t.size);
      for (let o = 0; o < outer; o++) dx.set(g.subarray(o * total * inner + start, o * total * inner + start + chunk), o * chunk);
      start += chunk;
      return dx;
    });
  });
}

/** Stack equally shaped tensors along a new leading axis. */
export function stack(tensors: readonly Tensor[]): Tensor {
  if (tensors.length === 0) throw new ShapeError('stack: no tensors given');
  return concat(
    tensors.map((t) => t.reshape([1, ...t.shape])),
    0,
  );
}

/** Pick rows `indices` along `axis` (torch.index_select). */
export function gather(t: Tensor, axis: number, indices: ArrayLike<number>): Tensor {
  const ax = normaliseAxis(axis, t.rank, 'gather');
  const dim = t.shape[ax];
  const outer = sizeOf(t.shape.slice(0, ax));
  const inner = sizeOf(t.shape.slice(ax + 1));
  const outShape = [...t.shape];
  outShape[ax] = indices.length;
  const out = allocate(t.dtype, outer * indices.length * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < indices.length; j++) {
      const idx = indices[j];
      if (!Number.isInteger(idx) || idx < 0 || idx >= dim) {
        throw new ShapeError(`gather: index ${idx} is out of range for dimension ${dim} of ${t}`);
      }
      const from = (o * dim + idx) * inner;
      out.set(t.data.subarray(from, from + inner), (o * indices.length + j) * inner);
    }
  }
  const result = new Tensor(t.dtype, outShape, out);
  if (!needsGrad(t)) return result;
  // A row picked twice receives both gradients (scatter-add).
  return record(result, 'gather', [t], (g) => {
    const dx = new Float32Array(t.size);
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < indices.length; j++) {
        const to = (o * dim + indices[j]) * inner;
        const from = (o * indices.length + j) * inner;
        for (let e = 0; e < inner; e++) dx[to + e] += g[from + e];
      }
    }
    return [dx];
  });
}
