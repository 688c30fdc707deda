import { ShapeError } from '../errors.js';
import { needsGrad } from '../tensor/autograd.js';
import { concat, gather, Tensor } from '../tensor/tensor.js';

/** Keys and values of one attention layer: [batch, kvHeads, seq, dHead] each. */
export interface LayerKV {
  key: Tensor;
  value: Tensor;
}

/**
 * Rows of dHead contiguous floats at the element strides of three outer axes
 * [batch, heads, position]: keys or values (or queries) where they lie, in a
 * cache's buffers or in a fused q|k|v projection, without a copy to pack them.
 */
export interface HeadRows {
  data: Float32Array;
  strides: readonly [number, number, number];
  /** The element where the first row starts (0 when absent): k and v in a fused q|k|v projection. */
  start?: number;
}

/** A packed [batch, heads, n, dHead] buffer as HeadRows. */
export function packedRows(data: Float32Array, heads: number, n: number, dHead: number): HeadRows {
  return { data, strides: [heads * n * dHead, n * dHead, dHead] };
}

/** Positions a layer's buffers hold before the first growth. */
const INITIAL_CAPACITY = 64;

/**
 * One layer's cached keys and values, written in place: two buffers
 * [batch, kvHeads, capacity, dHead] whose first `length` positions are filled.
 * A step appends its rows after them (growing the buffers by doubling when
 * full), so a decoded token copies only its own keys and values, and the fused
 * attention reads the history where it lies (rows `capacity` apart).
 */
export class CachedKV implements LayerKV {
  private compact?: LayerKV;
  /** The buffers with room for the rows a reorder saves (see `reorder`), once the layer has been reordered. */
  private scratch?: { keys: ReorderBuffer; values: ReorderBuffer };

  constructor(
    public keys: Float32Array,
    public values: Float32Array,
    readonly batch: number,
    readonly heads: number,
    readonly dHead: number,
    public capacity: number,
    public length: number,
  ) {}

  static empty(batch: number, heads: number, dHead: number, capacity: number): CachedKV {
    const size = batch * heads * capacity * dHead;
    return new CachedKV(new Float32Array(size), new Float32Array(size), batch, heads, dHead, capacity, 0);
  }

  /** The filled keys as a tensor [batch, kvHeads, length, dHead] (a copy, kept until the cache changes). */
  get key(): Tensor {
    return this.packed().key;
  }

  /** The filled values as a tensor [batch, kvHeads, length, dHead] (a copy, kept until the cache changes). */
  get value(): Tensor {
    return this.packed().value;
  }

  /** The filled keys and values where they lie: rows `capacity` apart per head. */
  get rows(): { key: HeadRows; value: HeadRows } {
    return { key: packedRows(this.keys, this.heads, this.capacity, this.dHead), value: packedRows(this.values, this.heads, this.capacity, this.dHead) };
  }

  /** Write key and value [batch, kvHeads, n, dHead] after the filled positions. */
  append(key: Tensor, value: Tensor): void {
    const [batch, heads, n, dHead] = key.shape;
    if (batch !== this.batch || heads !== this.heads || dHead !== this.dHead || value.shape.some((d, i) => d !== key.shape[i])) {
      throw new ShapeError(`KVCache.append: keys ${key} and values ${value} do not match the cache's [${this.batch}, ${this.heads}, ·, ${this.dHead}]`);
    }
    this.appendRows(packedRows(key.f32(), heads, n, dHead), packedRows(value.f32(), heads, n, dHead), n);
  }

  /** Write n positions of keys and values, read through their strides, after the filled positions. */
  appendRows(key: HeadRows, value: HeadRows, n: number): void {
    this.checkRows('keys', key, n);
    this.checkRows('values', value, n);
    if (this.length + n > this.capacity) this.grow(Math.max(this.length + n, 2 * this.capacity));
    for (let b = 0; b < this.batch; b++) {
      for (let h = 0; h < this.heads; h++) {
        const at = ((b * this.heads + h) * this.capacity + this.length) * this.dHead;
        copyPositions(key, b, h, n, this.dHead, this.keys, at);
        copyPositions(value, b, h, n, this.dHead, this.values, at);
      }
    }
    this.length += n;
    this.compact = undefined;
  }

  /** Throws unless n positions of every (batch, head) lie inside `rows`' array. */
  private checkRows(name: string, rows: HeadRows, n: number): void {
    const [sb, sh, sp] = rows.strides;
    const end = n === 0 ? 0 : (rows.start ?? 0) + (this.batch - 1) * sb + (this.heads - 1) * sh + (n - 1) * sp + this.dHead;
    if (end > rows.data.length) throw new ShapeError(`KVCache.appendRows: ${n} positions of ${name} need ${end} floats through strides [${rows.strides.join(', ')}], the array holds ${rows.data.length}`);
  }

  /** Keep the first `length` positions. */
  truncate(length: number): void {
    this.length = length;
    this.compact = undefined;
  }

  /** Batch rows `indices` of this cache, as a new cache (the rows copied). */
  gather(indices: readonly number[]): CachedKV {
    const out = CachedKV.empty(indices.length, this.heads, this.dHead, this.capacity);
    gatherRows(this, indices, out);
    out.length = this.length;
    return out;
  }

  /**
   * Reorder the batch rows in place (beam search): only the rows that change
   * are written, each head's filled positions, and a row that another reads
   * but that is itself overwritten is saved first. Each buffer is the first
   * half of an array twice its size (made at the first reorder, and again
   * after the buffers grow) whose second half takes the saved rows, so rows
   * move by `copyWithin`, at memcpy's speed, and a reorder per step allocates
   * nothing.
   */
  reorder(indices: readonly number[]): void {
    if (indices.length !== this.batch) throw new ShapeError(`KVCache.reorder: ${indices.length} rows given, the cache holds ${this.batch}`);
    for (const r of indices) if (!Number.isInteger(r) || r < 0 || r >= this.batch) throw new ShapeError(`KVCache: row ${r} does not exist (the cache holds ${this.batch} rows)`);
    if (indices.every((r, i) => r === i)) return;
    if (this.scratch?.keys.live !== this.keys || this.scratch.values.live !== this.values) {
      this.scratch = { keys: reorderBuffer(this.keys), values: reorderBuffer(this.values) };
      this.keys = this.scratch.keys.live;
      this.values = this.scratch.values.live;
    }
    const rows = { heads: this.heads, capacity: this.capacity, dHead: this.dHead, length: this.length };
    reorderInPlace(this.scratch.keys.whole, indices, rows);
    reorderInPlace(this.scratch.values.whole, indices, rows);
    this.compact = undefined;
  }

  private grow(capacity: number): void {
    const rows = this.batch * this.heads;
    const keys = new Float32Array(rows * capacity * this.dHead);
    const values = new Float32Array(keys.length);
    copyRows(this.keys, this.capacity, keys, capacity, 0, rows, this.dHead, this.length);
    copyRows(this.values, this.capacity, values, capacity, 0, rows, this.dHead, this.length);
    this.keys = keys;
    this.values = values;
    this.capacity = capacity;
  }

  private packed(): LayerKV {
    if (!this.compact) {
      const shape = [this.batch, this.heads, this.length, this.dHead];
      const rows = this.batch * this.heads;
      const key = new Float32Array(rows * this.length * this.dHead);
      const value = new Float32Array(key.length);
      copyRows(this.keys, this.capacity, key, this.length, 0, rows, this.dHead, this.length);
      copyRows(this.values, this.capacity, value, this.length, 0, rows, this.dHead, this.length);
      this.compact = { key: new Tensor('f32', shape, key), value: new Tensor('f32', shape, value) };
    }
    return this.compact;
  }
}

/**
 * Positions 0…n−1 of (batch b, head h) from strided rows into `to` from `at`,
 * contiguous. A loop rather than set(subarray): a decoded token copies one
 * short row per head and layer, and a subarray per row was most of the cost.
 */
function copyPositions(from: HeadRows, b: number, h: number, n: number, dHead: number, to: Float32Array, at: number): void {
  const [sb, sh, sp] = from.strides;
  const data = from.data;
  for (let p = 0; p < n; p++) {
    const start = (from.start ?? 0) + b * sb + h * sh + p * sp;
    const out = at + p * dHead;
    for (let j = 0; j < dHead; j++) to[out + j] = data[start + j];
  }
}

/**
 * For each of `rows` (batch, head) pairs, copy `count` positions of dHead
 * floats from `from` (positions `fromCapacity` apart per pair) into `to`
 * (positions `toCapacity` apart) starting at position `at`.
 */
function copyRows(from: Float32Array, fromCapacity: number, to: Float32Array, toCapacity: number, at: number, rows: number, dHead: number, count = fromCapacity): void {
  for (let r = 0; r < rows; r++) {
    const start = r * fromCapacity * dHead;
    to.set(from.subarray(start, start + count * dHead), (r * toCapacity + at) * dHead);
  }
}

/** A cache buffer (`live`, the first half of `whole`) with room behind it for the rows a reorder saves. */
interface ReorderBuffer {
  whole: Float32Array;
  live: Float32Array;
}

/** `buffer`'s values as the live half of a new ReorderBuffer. */
function reorderBuffer(buffer: Float32Array): ReorderBuffer {
  const whole = new Float32Array(2 * buffer.length);
  whole.set(buffer);
  return { whole, live: whole.subarray(0, buffer.length) };
}

/**
 * Batch row i ← row indices[i] in the first half of `whole`, rows of
 * [heads, capacity, dHead] of which the first `length` positions are filled.
 * Rows that keep their place are not touched; a row read by another row but
 * overwritten itself is saved into the second half first and read from there.
 */
function reorderInPlace(whole: Float32Array, indices: readonly number[], rows: { heads: number; capacity: number; dHead: number; length: number }): void {
  const { heads, capacity, dHead, length } = rows;
  const saved = whole.length / 2;
  const head = capacity * dHead;
  const block = heads * head; // one batch row
  const copyRow = (from: number, to: number) => {
    for (let h = 0; h < heads; h++) whole.copyWithin(to + h * head, from + h * head, from + h * head + length * dHead);
  };
  for (let i = 0; i < indices.length; i++) {
    const r = indices[i];
    // Saved once, by the first row that reads it.
    if (r !== i && indices[r] !== r && indices.indexOf(r) === i) copyRow(r * block, saved + r * block);
  }
  for (let i = 0; i < indices.length; i++) {
    const r = indices[i];
    if (r !== i) copyRow((indices[r] !== r ? saved : 0) + r * block, i * block);
  }
}

/** out's batch row i ← kv's batch row indices[i], the filled positions of every head. */
function gatherRows(kv: CachedKV, indices: readonly number[], out: CachedKV): void {
  const block = kv.heads * kv.capacity * kv.dHead; // one batch row of a buffer
  const filled = (kv.heads - 1) * kv.capacity * kv.dHead + kv.length * kv.dHead;
  indices.forEach((r, i) => {
    if (!Number.isInteger(r) || r < 0 || r >= kv.batch) throw new ShapeError(`KVCache: row ${r} does not exist (the cache holds ${kv.batch} rows)`);
    out.keys.set(kv.keys.subarray(r * block, r * block + filled), i * block);
    out.values.set(kv.values.subarray(r * block, r * block + filled), i * block);
  });
}

/** Positions held by a layer's keys and values. */
function lengthOf(kv: LayerKV): number {
  return kv instanceof CachedKV ? kv.length : kv.key.shape[2];
}

/**
 * The KV cache of a decoder: each layer's keys and values for every position
 * seen so far, so a new token attends to the past without recomputing it.
 * At inference each layer is a `CachedKV` written in place; keys that require
 * gradients (teacher-forced training through the decoder) are kept as tensors
 * joined by `concat` instead, so the gradients flow back through them.
 */
export class KVCache {
  readonly layers: (LayerKV | undefined)[];

  constructor(numLayers: number) {
    this.layers = new Array<LayerKV | undefined>(numLayers).fill(undefined);
  }

  /** Positions cached so far. */
  get length(): number {
    const first = this.layers[0];
    return first ? lengthOf(first) : 0;
  }

  /**
   * Append n positions of keys and values [batch, kvHeads, n, dHead], read
   * through their strides, to layer `i` (inference: written in place); returns
   * the layer's whole history.
   */
  appendRows(i: number, key: HeadRows, value: HeadRows, shape: readonly [number, number, number, number]): CachedKV {
    const [batch, heads, n, dHead] = shape;
    let layer = this.layers[i];
    if (!layer) {
      layer = CachedKV.empty(batch, heads, dHead, Math.max(INITIAL_CAPACITY, n));
      this.layers[i] = layer;
    }
    if (!(layer instanceof CachedKV) || layer.batch !== batch || layer.heads !== heads || layer.dHead !== dHead) {
      throw new ShapeError(`KVCache.appendRows: [${shape.join(', ')}] does not match layer ${i}'s cache`);
    }
    layer.appendRows(key, value, n);
    return layer;
  }

  /** Append this step's keys and values [batch, kvHeads, n, dHead] to layer `i`; returns the whole history. */
  append(i: number, key: Tensor, value: Tensor): LayerKV {
    const past = this.layers[i];
    if (needsGrad(key, value) || (past && !(past instanceof CachedKV))) {
      const next = past ? { key: concat([past.key, key], 2), value: concat([past.value, value], 2) } : { key, value };
      this.layers[i] = next;
      return next;
    }
    let layer = past;
    if (!layer) {
      const [batch, heads, n, dHead] = key.shape;
      layer = CachedKV.empty(batch, heads, dHead, Math.max(INITIAL_CAPACITY, n));
      this.layers[i] = layer;
    }
    layer.append(key, value);
    return layer;
  }

  /** Keep only the batch rows `indices`, as a new cache (this one is unchanged). */
  select(indices: readonly number[]): KVCache {
    const out = new KVCache(this.layers.length);
    this.layers.forEach((kv, i) => {
      if (kv) out.layers[i] = kv instanceof CachedKV ? kv.gather(indices) : { key: gather(kv.key, 0, indices), value: gather(kv.value, 0, indices) };
    });
    return out;
  }

  /** Keep only the batch rows `indices`, in place: the same number of rows (beam search) reuses the buffers. */
  reorder(indices: readonly number[]): void {
    this.layers.forEach((kv, i) => {
      if (kv instanceof CachedKV && indices.length === kv.batch) kv.reorder(indices);
      else if (kv instanceof CachedKV) this.layers[i] = kv.gather(indices);
      else if (kv) this.layers[i] = { key: gather(kv.key, 0, indices), value: gather(kv.value, 0, indices) };
    });
  }

  /** Forget every position from `length` on. */
  truncate(length: number): void {
    if (length > this.length) throw new ShapeError(`KVCache.truncate: ${length} positions asked, ${this.length} cached`);
    this.layers.forEach((kv, i) => {
      if (kv instanceof CachedKV) kv.truncate(length);
      else if (kv) this.layers[i] = { key: kv.key.slice(2, 0, length), value: kv.value.slice(2, 0, length) };
    });
  }
}
