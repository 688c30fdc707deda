/**
 * Tensors inside a JSON trace file (docs/trace-format.md): little-endian f16
 * or f32 bytes in base64, or, when the size cap leaves no room, the top-k
 * entries of each row along the last axis, or only the shape.
 */
import { FormatError, ShapeError } from '../errors.js';
import { f16ToF32, f32ToF16 } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';

export type EncodedTensor =
  | { shape: number[]; encoding: 'base64'; dtype: 'f16' | 'f32'; data: string }
  | { shape: number[]; encoding: 'topk'; k: number; indices: number[][]; values: number[][] }
  | { shape: number[]; encoding: 'omitted' };

export type Precision = 'f16' | 'f32';

/** Bytes → base64, without Node's Buffer so that the module also runs in a browser. */
export function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

export function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

const utf8 = new TextEncoder();

/** Bytes of a value's JSON text. */
export function jsonBytes(value: unknown): number {
  return utf8.encode(JSON.stringify(value)).length;
}

function isLittleEndian(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

/** The values as base64 of little-endian f16 or f32 bytes. */
export function encodeDense(t: Tensor, dtype: Precision): EncodedTensor {
  if (!isLittleEndian()) throw new ShapeError('trace files store little-endian bytes and this host is big-endian');
  const src = t.f32();
  const bytes = dtype === 'f32' ? new Uint8Array(src.buffer, src.byteOffset, src.byteLength) : new Uint8Array(Uint16Array.from(src, f32ToF16).buffer);
  return { shape: [...t.shape], encoding: 'base64', dtype, data: toBase64(bytes) };
}

/** The k largest entries of every row along the last axis (indices, values rounded to 6 significant digits). */
export function encodeTopK(t: Tensor, k: number): EncodedTensor {
  const n = t.shape[t.rank - 1];
  const kk = Math.min(k, n);
  const src = t.f32();
  const indices: number[][] = [];
  const values: number[][] = [];
  for (let row = 0; row < src.length; row += n) {
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => src[row + b] - src[row + a] || a - b).slice(0, kk);
    indices.push(order);
    values.push(order.map((i) => Number(src[row + i].toPrecision(6))));
  }
  return { shape: [...t.shape], encoding: 'topk', k: kk, indices, values };
}

export function omitted(t: Tensor): EncodedTensor {
  return { shape: [...t.shape], encoding: 'omitted' };
}

/**
 * Back to a tensor. Dense encodings give the values; top-k gives a tensor
 * that is −∞ outside the kept entries (so a softmax or an argmax still reads
 * right); an omitted tensor is an error naming it.
 */
export function decodeTensor(e: EncodedTensor, name = 'tensor'): Tensor {
  const size = e.shape.reduce((a, b) => a * b, 1);
  if (e.encoding === 'omitted') throw new FormatError(name, 'the tensor was left out of the trace file (size cap); raise --max-bytes to keep it');
  if (e.encoding === 'topk') {
    const n = e.shape[e.shape.length - 1] ?? 1;
    const out = new Float32Array(size).fill(-Infinity);
    e.indices.forEach((idx, r) => idx.forEach((i, j) => (out[r * n + i] = e.values[r][j])));
    return new Tensor('f32', e.shape, out);
  }
  const bytes = fromBase64(e.data);
  const width = e.dtype === 'f16' ? 2 : 4;
  if (bytes.length !== size * width) throw new FormatError(name, `holds ${bytes.length} bytes; shape [${e.shape.join(', ')}] of ${e.dtype} needs ${size * width}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = e.dtype === 'f16' ? f16ToF32(view.getUint16(2 * i, true)) : view.getFloat32(4 * i, true);
  return new Tensor('f32', e.shape, out);
}

/** A tensor waiting for its place in a capped file, most important first. */
export interface PendingTensor {
  key: string;
  tensor: Tensor;
  /** Entries per row kept when the full tensor does not fit. */
  summaryK: number;
}

export interface Budget {
  maxBytes: number;
  precision: Precision;
  /** Keys stored only as top-k summaries. */
  summarised: string[];
  /** Keys left out entirely. */
  omitted: string[];
}

/**
 * Serialise `document` (whose `tensors` field is filled here) within `maxBytes`:
 * tensors go in, in the order given, densely while they fit, then as top-k
 * summaries, then as shapes only. The rest of the document is never cut; if it
 * alone exceeds the cap, that is an error saying by how much.
 */
export function serialiseWithin<T extends { tensors: Record<string, EncodedTensor>; budget: Budget }>(document: T, pending: readonly PendingTensor[]): string {
  const { maxBytes, precision } = document.budget;
  const length = jsonBytes;
  document.tensors = Object.fromEntries(pending.map((p) => [p.key, omitted(p.tensor)]));
  document.budget.omitted = pending.map((p) => p.key);
  document.budget.summarised = [];
  // The list of omitted keys shrinks as tensors go in, so the skeleton's size is an upper bound.
  let used = length(document);
  if (used > maxBytes) {
    throw new ShapeError(`trace file: the ids, top-k tables and summaries alone take ${used} bytes, more than the cap of ${maxBytes}; raise --max-bytes or trace fewer steps`);
  }
  for (const p of pending) {
    const placeholder = length(document.tensors[p.key]);
    // Leaving `omitted` saves at least the quoted key; joining `summarised` costs it and a comma.
    const key = length(p.key);
    for (const candidate of [encodeDense(p.tensor, precision), encodeTopK(p.tensor, p.summaryK)]) {
      const extra = length(candidate) - placeholder - key + (candidate.encoding === 'topk' ? key + 1 : 0);
      if (used + extra <= maxBytes) {
        document.tensors[p.key] = candidate;
        used += extra;
        if (candidate.encoding === 'topk') document.budget.summarised.push(p.key);
        break;
      }
    }
  }
  document.budget.omitted = pending.filter((p) => document.tensors[p.key].encoding === 'omitted').map((p) => p.key);
  const text = JSON.stringify(document);
  const size = utf8.encode(text).length;
  if (size > maxBytes) throw new ShapeError(`trace file: ${size} bytes exceed the cap of ${maxBytes} (a bug in the budget)`);
  return text;
}
