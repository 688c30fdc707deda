/**
 * safetensors, the Hugging Face weight format (github.com/huggingface/safetensors):
 *
 *   8 bytes   N, little-endian u64
 *   N bytes   UTF-8 JSON: {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {str: str}}
 *             (the writer pads it with spaces to a multiple of 8 bytes)
 *   rest      the byte buffer; offsets are relative to its start, and the
 *             tensors tile it exactly: sorted by offset, each begins where the
 *             previous ended, the first at 0 and the last at the buffer's end.
 *
 * Tensors are read lazily: `open` reads only the header, and `get` reads one
 * tensor's bytes straight into the typed array that becomes its data, so a
 * model is never held twice in memory.
 */
import { FormatError, UnsupportedError, WeightError } from '../errors.js';
import { allocate, f16ToF32, type DType } from '../tensor/dtype.js';
import { shapeString, sizeOf, Tensor, type Shape } from '../tensor/tensor.js';
import { bytesSource, type ByteSource, type FileSystem } from './source.js';

/** The element types of the safetensors spec that glassformer reads. */
export type SafetensorsDType =
  | 'F64'
  | 'F32'
  | 'F16'
  | 'BF16'
  | 'I64'
  | 'I32'
  | 'I16'
  | 'I8'
  | 'U64'
  | 'U32'
  | 'U16'
  | 'U8'
  | 'BOOL'
  | 'F8_E4M3'
  | 'F8_E5M2';

export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<SafetensorsDType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

/** The glassformer dtype each file dtype is read into (integers widen to i32, floats narrow to f32). */
export const SAFETENSORS_TO_DTYPE: Readonly<Record<SafetensorsDType, DType>> = {
  F64: 'f32',
  F32: 'f32',
  F16: 'f16',
  BF16: 'bf16',
  I64: 'i32',
  I32: 'i32',
  I16: 'i32',
  I8: 'i32',
  U64: 'i32',
  U32: 'i32',
  U16: 'i32',
  U8: 'i32',
  BOOL: 'i32',
  F8_E4M3: 'f32',
  F8_E5M2: 'f32',
};

const DTYPE_TO_SAFETENSORS: Readonly<Record<DType, SafetensorsDType>> = { f32: 'F32', f16: 'F16', bf16: 'BF16', i32: 'I32' };

/**
 * The order of the `Dtype` enum in the reference Rust crate. Its writer lays
 * tensors out by this order descending, then by name, so wider elements come
 * first and every tensor stays aligned to its element size.
 */
const RUST_DTYPE_ORDER: readonly SafetensorsDType[] = [
  'BOOL',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'F64',
  'I64',
  'U64',
];

/** The reference implementation refuses headers above 100 MB; so do we, before allocating. */
const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: Shape;
  /** [begin, end) in bytes, relative to the start of the byte buffer. */
  readonly dataOffsets: readonly [number, number];
}

export interface SafetensorsHeader {
  /** Tensors in file order (by offset). */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  /** N, the JSON header's length in bytes (padding included). */
  readonly headerLength: number;
  /** Where the byte buffer starts in the file: 8 + N. */
  readonly dataStart: number;
}

function isLittleEndianHost(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'string' ? JSON.stringify(value) : typeof value === 'object' ? 'an object' : String(value);
}

function parseTensorEntry(file: string, name: string, entry: unknown): TensorInfo {
  const where = `tensor "${name}"`;
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw new FormatError(file, `${where}: header entry must be an object with dtype, shape and data_offsets, found ${describe(entry)}`);
  }
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  for (const [key, value] of [
    ['dtype', dtype],
    ['shape', shape],
    ['data_offsets', offsets],
  ] as const) {
    if (value === undefined) throw new FormatError(file, `${where}: header entry has no "${key}"`);
  }
  if (typeof dtype !== 'string') throw new FormatError(file, `${where}: dtype must be a string, found ${describe(dtype)}`);
  if (!Object.hasOwn(SAFETENSORS_DTYPE_BYTES, dtype)) {
    throw new FormatError(
      file,
      `${where}: unknown dtype "${dtype}"; glassformer reads ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')}`,
    );
  }
  const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw new FormatError(file, `${where}: shape must be an array of non-negative integers, found ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw new FormatError(file, `${where}: data_offsets must be [begin, end] byte offsets, found ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw new FormatError(file, `${where}: data_offsets [${begin}, ${end}] end before they begin`);
  const st = dtype as SafetensorsDType;
  const expected = sizeOf(shape) * SAFETENSORS_DTYPE_BYTES[st];
  if (expected !== end - begin) {
    throw new FormatError(
      file,
      `${where}: shape ${shapeString(shape)} of ${st} needs ${expected} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`,
    );
  }
  return { name, dtype: st, shape: Object.freeze([...shape]), dataOffsets: [begin, end] };
}

/**
 * Parse and validate the JSON header. `bufferLength` is the size of the byte
 * buffer (file size − 8 − N), which the tensors must cover exactly.
 */
export function parseSafetensorsHeader(file: string, json: Uint8Array, bufferLength: number): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json);
  } catch {
    throw new FormatError(file, 'header is not valid UTF-8; this is not a safetensors file');
  }
  if (!text.startsWith('{')) {
    throw new FormatError(file, `header must be a JSON object starting with "{", found ${JSON.stringify(text.slice(0, 20))}; this is not a safetensors file`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new FormatError(file, `header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new FormatError(file, `header must be a JSON object, found ${describe(parsed)}`);
  }
  const metadata: Record<string, string> = {};
  const entries: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        throw new FormatError(file, `__metadata__ must be an object of strings, found ${describe(entry)}`);
      }
      for (const [key, value] of Object.entries(entry)) {
        if (typeof value !== 'string') throw new FormatError(file, `__metadata__.${key} must be a string, found ${describe(value)}`);
        metadata[key] = value;
      }
      continue;
    }
    entries.push(parseTensorEntry(file, name, entry));
  }
  entries.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let cursor = 0;
  let previous: TensorInfo | undefined;
  for (const info of entries) {
    const [begin, end] = info.dataOffsets;
    if (begin < cursor) {
      throw new FormatError(file, `tensor "${info.name}" (bytes ${begin}..${end}) overlaps tensor "${previous?.name}" (ending at ${cursor})`);
    }
    if (begin > cursor) {
      const after = previous ? `tensor "${previous.name}" ends at ${cursor}` : 'the byte buffer starts at 0';
      throw new FormatError(file, `gap in the byte buffer: ${after} but tensor "${info.name}" begins at ${begin}`);
    }
    if (end > bufferLength) {
      throw new FormatError(
        file,
        `tensor "${info.name}" data_offsets [${begin}, ${end}] run past the end of the byte buffer (${bufferLength} bytes); the file may be truncated`,
      );
    }
    cursor = end;
    previous = info;
  }
  if (cursor !== bufferLength) {
    throw new FormatError(file, `the tensors cover ${cursor} bytes but the byte buffer after the header holds ${bufferLength}`);
  }
  return {
    tensors: new Map(entries.map((e) => [e.name, e])),
    metadata,
    headerLength: json.length,
    dataStart: 8 + json.length,
  };
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length];
}

/** The few names most like `name`, for "did you mean" hints. */
export function closestNames(name: string, names: Iterable<string>, count = 3): string[] {
  return [...names]
    .map((candidate) => ({ candidate, distance: editDistance(name, candidate) }))
    .sort((a, b) => a.distance - b.distance || a.candidate.localeCompare(b.candidate))
    .slice(0, count)
    .map((c) => c.candidate);
}

export function missingTensorError(file: string, name: string, names: Iterable<string>): WeightError {
  const all = [...names];
  const hint = all.length === 0 ? 'the checkpoint holds no tensors' : `closest names: ${closestNames(name, all).map((n) => `"${n}"`).join(', ')}`;
  return new WeightError(`${file}: no tensor "${name}" (${all.length} tensors; ${hint})`);
}

export function checkShape(file: string, name: string, shape: Shape, expectShape: Shape | undefined): void {
  if (!expectShape) return;
  if (shape.length !== expectShape.length || shape.some((d, i) => d !== expectShape[i])) {
    throw new WeightError(`${file}: tensor "${name}" has shape ${shapeString(shape)} but the model expects ${shapeString(expectShape)}`);
  }
}

/** float8 e4m3 "fn" (no infinities; S.1111.111 is NaN), bias 7: the OCP FP8 format torch.float8_e4m3fn. */
function f8e4m3ToF32(bits: number): number {
  const sign = bits & 0x80 ? -1 : 1;
  const exponent = (bits >> 3) & 0xf;
  const mantissa = bits & 0x7;
  if (exponent === 0xf && mantissa === 0x7) return NaN;
  if (exponent === 0) return sign * mantissa * 2 ** -9;
  return sign * (1 + mantissa / 8) * 2 ** (exponent - 7);
}

/** float8 e5m2 is the top byte of an IEEE binary16. */
function f8e5m2ToF32(bits: number): number {
  return f16ToF32(bits << 8);
}

type FileStorage = Float32Array | Float64Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array | Int16Array | Int8Array | Uint8Array;

/**
 * The typed array a tensor's file bytes are read into. For F32, F16, BF16 and
 * I32 it is the tensor's own storage (the element type is the same in the
 * file and in memory), so those reads copy nothing.
 */
function fileStorage(info: TensorInfo): FileStorage {
  const count = sizeOf(info.shape);
  switch (info.dtype) {
    case 'F32':
    case 'F16':
    case 'BF16':
    case 'I32':
      return allocate(SAFETENSORS_TO_DTYPE[info.dtype], count);
    case 'F64':
      return new Float64Array(count);
    case 'I64':
      return new BigInt64Array(count);
    case 'U64':
      return new BigUint64Array(count);
    case 'U32':
      return new Uint32Array(count);
    case 'I16':
      return new Int16Array(count);
    case 'U16':
      return new Uint16Array(count);
    case 'I8':
      return new Int8Array(count);
    case 'U8':
    case 'BOOL':
    case 'F8_E4M3':
    case 'F8_E5M2':
      return new Uint8Array(count);
  }
}

function bytesOf(data: FileStorage): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function outsideI32(file: string, info: TensorInfo, value: bigint | number, index: number): UnsupportedError {
  return new UnsupportedError(
    `${file}: tensor "${info.name}" (${info.dtype}) holds ${value} at flat index ${index}, outside the i32 range glassformer stores integers in`,
  );
}

/** The Tensor that the file bytes in `raw` (as `fileStorage` allocated it) stand for. */
function decodeTensor(file: string, info: TensorInfo, raw: FileStorage): Tensor {
  const count = raw.length;
  switch (info.dtype) {
    case 'F32':
    case 'F16':
    case 'BF16':
    case 'I32':
      return new Tensor(SAFETENSORS_TO_DTYPE[info.dtype], info.shape, raw as Float32Array | Uint16Array | Int32Array);
    case 'F64':
      return new Tensor('f32', info.shape, Float32Array.from(raw as Float64Array));
    case 'F8_E4M3':
    case 'F8_E5M2': {
      const decode = info.dtype === 'F8_E4M3' ? f8e4m3ToF32 : f8e5m2ToF32;
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = decode((raw as Uint8Array)[i]);
      return new Tensor('f32', info.shape, out);
    }
    case 'I64':
    case 'U64': {
      const wide = raw as BigInt64Array | BigUint64Array;
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const v = wide[i];
        if (v > 2147483647n || v < -2147483648n) throw outsideI32(file, info, v, i);
        out[i] = Number(v);
      }
      return new Tensor('i32', info.shape, out);
    }
    case 'U32': {
      const wide = raw as Uint32Array;
      for (let i = 0; i < count; i++) if (wide[i] > 2147483647) throw outsideI32(file, info, wide[i], i);
      return new Tensor('i32', info.shape, new Int32Array(wide.buffer, wide.byteOffset, count));
    }
    case 'I16':
    case 'U16':
    case 'I8':
    case 'U8':
    case 'BOOL':
      return new Tensor('i32', info.shape, Int32Array.from(raw as Int16Array | Uint16Array | Int8Array | Uint8Array));
  }
}

export interface GetOptions {
  /** Refuse the tensor unless it has exactly this shape (a WeightError naming both shapes). */
  expectShape?: Shape;
}

/**
 * Named tensors known from a header and read one at a time, blocking: what
 * `Weights` needs to read each tensor when a layer asks for it (a file, or a
 * sharded checkpoint). `SafetensorsFile` and `Checkpoint` are both one.
 */
export interface TensorReader {
  /** The file errors name (a .safetensors file or the shard index). */
  readonly name: string;
  readonly canReadSync: boolean;
  names(): string[];
  has(name: string): boolean;
  tensorInfo(name: string): TensorInfo;
  getSync(name: string, options?: GetOptions): Tensor;
  /** Flat elements [begin, end) of an F32, F16 or BF16 tensor as f32, into `into`, blocking. */
  readF32Sync(name: string, begin: number, end: number, into: Float32Array): Float32Array;
}

let f16Values: Float32Array | undefined;

/** Every f16 bit pattern's value (256 KiB): widening by lookup is many times faster than decoding each element. */
function f16Table(): Float32Array {
  f16Values ??= Float32Array.from({ length: 65536 }, (_, bits) => f16ToF32(bits));
  return f16Values;
}

/** 16-bit elements are widened through a buffer of this many, so a partial read needs little memory besides `into`. */
export const WIDEN_CHUNK = 1 << 18;

/** One safetensors file, opened lazily over a ByteSource. */
export class SafetensorsFile implements TensorReader {
  private widenBuffer: Uint16Array | undefined;

  private constructor(
    readonly source: ByteSource,
    readonly header: SafetensorsHeader,
  ) {}

  /** Read and validate the header only. */
  static async open(source: ByteSource): Promise<SafetensorsFile> {
    const file = source.name;
    const size = await source.size();
    if (size < 8) throw new FormatError(file, `file is truncated: ${size} bytes, shorter than the 8-byte header length`);
    const prefix = await source.read(0, 8);
    const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
    if (n > BigInt(size - 8)) {
      throw new FormatError(file, `header length ${n} runs past the end of the file (${size} bytes); the file is truncated or not safetensors`);
    }
    const headerLength = Number(n);
    if (headerLength > MAX_HEADER_BYTES) throw new FormatError(file, `header length ${headerLength} exceeds the 100 MB limit of the format`);
    const json = await source.read(8, headerLength);
    return new SafetensorsFile(source, parseSafetensorsHeader(file, json, size - 8 - headerLength));
  }

  get name(): string {
    return this.source.name;
  }

  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  /** Tensor names in file order. */
  names(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  tensorInfo(name: string): TensorInfo {
    const info = this.header.tensors.get(name);
    if (!info) throw missingTensorError(this.name, name, this.header.tensors.keys());
    return info;
  }

  /** The tensor's bytes exactly as stored (little-endian). */
  async readRaw(name: string): Promise<Uint8Array> {
    const info = this.tensorInfo(name);
    const [begin, end] = info.dataOffsets;
    return this.source.read(this.header.dataStart + begin, end - begin);
  }

  /** Read one tensor into a glassformer Tensor (see SAFETENSORS_TO_DTYPE for the dtype it gets). */
  async get(name: string, options: GetOptions = {}): Promise<Tensor> {
    const { info, offset, length } = this.locate(name, options);
    const raw = fileStorage(info);
    await this.source.read(offset, length, bytesOf(raw));
    return decodeTensor(this.name, info, raw);
  }

  /** Whether `getSync` can read: the bytes are local (a file or memory, not a remote source). */
  get canReadSync(): boolean {
    return this.source.readSync !== undefined;
  }

  /** `get`, blocking: for loaders that build a model synchronously and read each tensor as a layer asks for it. */
  getSync(name: string, options: GetOptions = {}): Tensor {
    const { info, offset, length } = this.locate(name, options);
    if (!this.source.readSync) throw new UnsupportedError(`${this.name}: this source reads asynchronously only; use get()`);
    const raw = fileStorage(info);
    this.source.readSync(offset, length, bytesOf(raw));
    return decodeTensor(this.name, info, raw);
  }

  /**
   * Flat elements [begin, end) of a float tensor as f32, into `into`: F32 is
   * read straight into it, F16 and BF16 through a small buffer and widened.
   * Lets a loader convert a tensor a block at a time (nn/weights.ts).
   */
  readF32Sync(name: string, begin: number, end: number, into: Float32Array): Float32Array {
    const { info, offset } = this.locate(name, {});
    const read = this.source.readSync?.bind(this.source);
    if (!read) throw new UnsupportedError(`${this.name}: this source reads asynchronously only; use get()`);
    const size = sizeOf(info.shape);
    const count = end - begin;
    if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || begin < 0 || end > size || count < 0 || into.length < count) {
      throw new WeightError(`${this.name}: tensor "${name}" has ${size} elements; cannot read elements [${begin}, ${end}) into ${into.length}`);
    }
    if (info.dtype === 'F32') {
      read(offset + 4 * begin, 4 * count, new Uint8Array(into.buffer, into.byteOffset, 4 * count));
      return into;
    }
    if (info.dtype !== 'F16' && info.dtype !== 'BF16') throw new UnsupportedError(`${this.name}: tensor "${name}" is ${info.dtype}; readF32Sync reads F32, F16 and BF16`);
    // bf16 is the top half of an f32, so its bits shift into place; f16 is looked up.
    const bits = new Uint32Array(into.buffer, into.byteOffset, count);
    const table = info.dtype === 'F16' ? f16Table() : null;
    // One buffer for every partial read of this file: a loader makes thousands of them.
    this.widenBuffer ??= new Uint16Array(WIDEN_CHUNK);
    const raw = this.widenBuffer;
    for (let done = 0; done < count; done += raw.length) {
      const n = Math.min(raw.length, count - done);
      read(offset + 2 * (begin + done), 2 * n, new Uint8Array(raw.buffer, 0, 2 * n));
      if (table) for (let i = 0; i < n; i++) into[done + i] = table[raw[i]];
      else for (let i = 0; i < n; i++) bits[done + i] = raw[i] << 16;
    }
    return into;
  }

  /** The tensor's header entry and where its bytes are in the file, after the shape check. */
  private locate(name: string, options: GetOptions): { info: TensorInfo; offset: number; length: number } {
    const info = this.tensorInfo(name);
    checkShape(this.name, name, info.shape, options.expectShape);
    if (!isLittleEndianHost()) throw new UnsupportedError('safetensors data is little-endian and this host is big-endian');
    const [begin, end] = info.dataOffsets;
    return { info, offset: this.header.dataStart + begin, length: end - begin };
  }

  /** Every tensor, in file order. */
  async loadAll(): Promise<Map<string, Tensor>> {
    const out = new Map<string, Tensor>();
    for (const name of this.header.tensors.keys()) out.set(name, await this.get(name));
    return out;
  }
}

/** Open safetensors bytes already in memory. */
export function openSafetensorsBytes(bytes: Uint8Array, name = '<memory>'): Promise<SafetensorsFile> {
  return SafetensorsFile.open(bytesSource(name, bytes));
}

/** Read a whole safetensors file through a FileSystem into a name → Tensor map. */
export async function readSafetensors(fs: FileSystem, path: string): Promise<Map<string, Tensor>> {
  return (await SafetensorsFile.open(fs.source(path))).loadAll();
}

/**
 * A tensor to write in a file dtype glassformer does not compute in (e.g. I64
 * token ids for another library): the dtype, the shape and the little-endian bytes.
 */
export interface RawTensor {
  readonly dtype: SafetensorsDType;
  readonly shape: Shape;
  readonly bytes: Uint8Array;
}

export type Writable = Tensor | RawTensor;

/** Tensors to write, by name: a plain object or a Map (as `loadAll` returns). */
export type WritableSet = Readonly<Record<string, Writable>> | ReadonlyMap<string, Writable>;

function rawOf(name: string, value: Writable): RawTensor {
  if (value instanceof Tensor) {
    const d = value.data;
    return { dtype: DTYPE_TO_SAFETENSORS[value.dtype], shape: value.shape, bytes: new Uint8Array(d.buffer, d.byteOffset, d.byteLength) };
  }
  const expected = sizeOf(value.shape) * SAFETENSORS_DTYPE_BYTES[value.dtype];
  if (value.bytes.length !== expected) {
    throw new WeightError(
      `tensor "${name}": shape ${shapeString(value.shape)} of ${value.dtype} needs ${expected} bytes but ${value.bytes.length} were given`,
    );
  }
  return value;
}

/**
 * The header and the tensors in the order their bytes follow it, exactly as
 * the reference writer lays them out: wider dtypes first, then by name; the
 * JSON has `__metadata__` first and is padded with spaces to 8 bytes so the
 * buffer that follows is 8-aligned.
 */
function layout(
  tensors: WritableSet,
  metadata: Readonly<Record<string, string>> | undefined,
): { header: Uint8Array; order: [string, RawTensor][] } {
  if (!isLittleEndianHost()) throw new UnsupportedError('safetensors data is little-endian and this host is big-endian');
  const rank = (dtype: SafetensorsDType): number => RUST_DTYPE_ORDER.indexOf(dtype);
  const order = (tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors))
    .map(([name, value]): [string, RawTensor] => [name, rawOf(name, value)])
    .sort(([an, a], [bn, b]) => rank(b.dtype) - rank(a.dtype) || (an < bn ? -1 : an > bn ? 1 : 0));
  // Built by hand rather than from an object: JavaScript would move integer-like keys ("0", "1") to the front.
  const fields: string[] = [];
  if (metadata) fields.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let offset = 0;
  for (const [name, raw] of order) {
    if (name === '__metadata__') throw new WeightError('"__metadata__" is reserved by the safetensors format and cannot name a tensor');
    const entry = { dtype: raw.dtype, shape: raw.shape, data_offsets: [offset, offset + raw.bytes.length] };
    fields.push(`${JSON.stringify(name)}:${JSON.stringify(entry)}`);
    offset += raw.bytes.length;
  }
  let text = `{${fields.join(',')}}`;
  const encoded = new TextEncoder().encode(text);
  text += ' '.repeat((8 - (encoded.length % 8)) % 8);
  const body = new TextEncoder().encode(text);
  const header = new Uint8Array(8 + body.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(body.length), true);
  header.set(body, 8);
  return { header, order };
}

/** The file as a list of chunks: the header, then each tensor's own bytes (not copied). */
function chunksOf(tensors: WritableSet, metadata?: Readonly<Record<string, string>>): Uint8Array[] {
  const { header, order } = layout(tensors, metadata);
  return [header, ...order.map(([, raw]) => raw.bytes)];
}

/** A complete safetensors file in memory. */
export function serializeSafetensors(
  tensors: WritableSet,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const chunks = chunksOf(tensors, metadata);
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

/** Write a safetensors file atomically: readers see the old file or the complete new one. */
export async function writeSafetensors(
  fs: FileSystem,
  path: string,
  tensors: WritableSet,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  await fs.writeAtomic(path, chunksOf(tensors, metadata));
}
