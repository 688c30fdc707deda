import { ShapeError, UnsupportedError } from '../errors.js';
import { matmulKernel } from '../kernels/index.js';
import { needsGrad, record } from '../tensor/autograd.js';
import { Tensor, shapeString, sizeOf, type Shape } from '../tensor/tensor.js';
import { add } from './elementwise.js';

export interface MatmulOptions {
  /** Treat the last two axes of `b` as [n, k] (an nn.Linear weight, or keys in q·kᵀ). */
  transposeB?: boolean;
}

function broadcastBatch(a: Shape, b: Shape, what: string): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new ShapeError(`${what}: batch dimensions ${shapeString(a)} and ${shapeString(b)} do not broadcast`);
    out.push(Math.max(x, y));
  }
  return out;
}

/** Flat offset of batch `index` (over `outBatch`) into a tensor whose batch shape broadcasts to it. */
function batchOffset(index: number, outBatch: Shape, batch: Shape, matrixSize: number): number {
  let offset = 0;
  let stride = matrixSize;
  for (let i = outBatch.length - 1, j = batch.length - 1; i >= 0; i--, j--) {
    const coordinate = index % outBatch[i];
    index = Math.floor(index / outBatch[i]);
    if (j >= 0) {
      if (batch[j] !== 1) offset += coordinate * stride;
      stride *= batch[j];
    }
  }
  return offset;
}

/**
 * Matrix product over the last two axes, batched (with broadcasting) over the rest:
 * a [..., m, k] · b [..., k, n] → [..., m, n], or b [..., n, k] with `transposeB`.
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const transB = options.transposeB ?? false;
  if (a.rank < 2 || b.rank < 2) throw new ShapeError(`matmul needs matrices, got ${a} and ${b}`);
  const [m, k] = a.shape.slice(-2);
  const [bRows, bCols] = b.shape.slice(-2);
  const n = transB ? bRows : bCols;
  const kb = transB ? bCols : bRows;
  if (k !== kb) {
    throw new ShapeError(`matmul: inner dimensions differ, ${a} · ${b}${transB ? 'ᵀ' : ''} (${k} vs ${kb})`);
  }
  const aData = a.f32();
  const bData = b.f32();
  const kernel = matmulKernel();
  // A weight shared by every batch: fold the batch into m and do one large product.
  if (b.rank === 2) {
    const rows = a.size / k;
    const out = new Float32Array(rows * n);
    if (rows > 0 && n > 0) kernel.gemm(aData, 0, bData, 0, out, 0, rows, n, k, transB);
    const result = new Tensor('f32', [...a.shape.slice(0, -1), n], out);
    if (!needsGrad(a, b)) return result;
    return record(result, 'matmul', [a, b], (g) => {
      const gradA = a.requiresGrad ? new Float32Array(a.size) : undefined;
      const gradB = b.requiresGrad ? new Float32Array(b.size) : undefined;
      matmulBackward(g, aData, 0, bData, 0, 0, gradA, gradB, rows, n, k, transB, false);
      return [gradA, gradB];
    });
  }
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const outBatch = broadcastBatch(aBatch, bBatch, 'matmul');
  const batches = sizeOf(outBatch);
  const out = new Float32Array(batches * m * n);
  for (let i = 0; i < batches; i++) {
    const aOffset = batchOffset(i, outBatch, aBatch, m * k);
    const bOffset = batchOffset(i, outBatch, bBatch, k * n);
    kernel.gemm(aData, aOffset, bData, bOffset, out, i * m * n, m, n, k, transB);
  }
  const result = new Tensor('f32', [...outBatch, m, n], out);
  if (!needsGrad(a, b)) return result;
  // A batch that broadcasts (size 1 against many) sums the gradients of every product it took part in.
  return record(result, 'matmul', [a, b], (g) => {
    const gradA = a.requiresGrad ? new Float32Array(a.size) : undefined;
    const gradB = b.requiresGrad ? new Float32Array(b.size) : undefined;
    const broadcast = sizeOf(aBatch) !== batches || sizeOf(bBatch) !== batches;
    for (let i = 0; i < batches; i++) {
      const aOffset = batchOffset(i, outBatch, aBatch, m * k);
      const bOffset = batchOffset(i, outBatch, bBatch, k * n);
      matmulBackward(g, aData, aOffset, bData, bOffset, i * m * n, gradA, gradB, m, n, k, transB, broadcast);
    }
    return [gradA, gradB];
  });
}

/**
 * matmul(a, b) written into `out` [..., m, n] for a weight b [k, n] (or [n, k]
 * with `transposeB`) shared by every batch (inference only: a decoding
 * session's workspace; see ops/out.ts).
 */
export function matmulInto(a: Tensor, b: Tensor, out: Tensor, options: MatmulOptions = {}): Tensor {
  const transB = options.transposeB ?? false;
  if (b.rank !== 2 || a.rank < 1) throw new ShapeError(`matmulInto needs a matrix b, got ${a} and ${b}`);
  const k = a.shape[a.rank - 1];
  const n = transB ? b.shape[0] : b.shape[1];
  if ((transB ? b.shape[1] : b.shape[0]) !== k) throw new ShapeError(`matmul: inner dimensions differ, ${a} · ${b}${transB ? 'ᵀ' : ''}`);
  const rows = k === 0 ? 0 : a.size / k;
  if (needsGrad(a, b)) throw new UnsupportedError('matmulInto: out is for inference, but an input requires gradients');
  if (out.dtype !== 'f32' || out.size !== rows * n || out.shape[out.rank - 1] !== n) throw new ShapeError(`matmulInto: out ${out} must hold ${rows} rows of ${n}`);
  if (rows > 0 && n > 0) matmulKernel().gemm(a.f32(), 0, b.f32(), 0, out.data as Float32Array, 0, rows, n, k, transB);
  return out;
}

/** The [rows, cols] block at `offset` of `x`, transposed to [cols, rows]. */
function transposed(x: Float32Array, offset: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[offset + r * cols + c];
  return out;
}

/**
 * Gradients of one product C = A·op(B) (A [m, k], C [m, n]), added into gradA
 * and gradB at the operands' offsets: dA = dC·op(B)ᵀ, and dB = Aᵀ·dC, or
 * dCᵀ·A when B is stored [n, k]. Uses the active kernel, so training is as
 * fast as inference. Without `accumulate` the gradients are written, not added
 * (each operand block takes part in this one product only).
 */
function matmulBackward(
  g: Float32Array,
  aData: Float32Array,
  aOffset: number,
  bData: Float32Array,
  bOffset: number,
  gOffset: number,
  gradA: Float32Array | undefined,
  gradB: Float32Array | undefined,
  m: number,
  n: number,
  k: number,
  transB: boolean,
  accumulate: boolean,
): void {
  if (m === 0 || n === 0 || k === 0) return;
  const kernel = matmulKernel();
  if (gradA) {
    // op(B)ᵀ is B itself when B is stored [n, k]; otherwise B [k, n] read as [n', k'] = transposed.
    const da = accumulate ? new Float32Array(m * k) : gradA;
    kernel.gemm(g, gOffset, bData, bOffset, da, accumulate ? 0 : aOffset, m, k, n, !transB);
    if (accumulate) for (let i = 0; i < da.length; i++) gradA[aOffset + i] += da[i];
  }
  if (gradB) {
    const db = accumulate ? new Float32Array(k * n) : gradB;
    const at = accumulate ? 0 : bOffset;
    if (transB) kernel.gemm(transposed(g, gOffset, m, n), 0, aData, aOffset, db, at, n, k, m, false); // [n, k]
    else kernel.gemm(transposed(aData, aOffset, m, k), 0, g, gOffset, db, at, k, n, m, false); // [k, n]
    if (accumulate) for (let i = 0; i < db.length; i++) gradB[bOffset + i] += db[i];
  }
}

/** y = x·Wᵀ + b with W stored [out, in], as torch.nn.Linear. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  const y = matmul(x, weight, { transposeB: true });
  return bias ? add(y, bias) : y;
}
