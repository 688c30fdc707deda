import { ShapeError } from '../errors.js';
import { matmulKernel } from '../kernels/index.js';
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
    return new Tensor('f32', [...a.shape.slice(0, -1), n], out);
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
  return new Tensor('f32', [...outBatch, m, n], out);
}

/** y = x·Wᵀ + b with W stored [out, in], as torch.nn.Linear. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  const y = matmul(x, weight, { transposeB: true });
  return bias ? add(y, bias) : y;
}
