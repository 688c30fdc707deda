import { ConfigError, WeightError } from '../errors.js';
import { BLOCK_ELEMENTS } from '../io/load-memory.js';
import type { TensorReader } from '../io/safetensors.js';
import { f32ToBf16 } from '../tensor/dtype.js';
import { Tensor, shapeString, type Shape } from '../tensor/tensor.js';
import { Int8Matrix } from './int8.js';

/** How linear-layer weights can be held in memory (see WeightsOptions.linearDtype). */
export const LINEAR_DTYPES = ['f32', 'bf16', 'int8'] as const;
export type LinearDtype = (typeof LINEAR_DTYPES)[number];

/** A linear layer's weight as held: a Tensor (f32 or bf16) or an int8 matrix with per-row scales. */
export type LinearWeight = Tensor | Int8Matrix;

export interface WeightsOptions {
  /**
   * 'bf16' keeps the weight matrices of linear layers (and GPT-2's Conv1D and
   * untied vocabulary heads) as bf16, 2 bytes a weight: a bf16 checkpoint as
   * stored, an f32 or f16 one rounded to nearest even as `tensor.to(torch.bfloat16)`.
   * Decoding reads every weight once per token, so it reads half the bytes.
   * 'int8' quantizes those matrices per output channel (see nn/int8.ts): a
   * quarter of the bytes, at a measured accuracy cost (docs/performance.md).
   * Inference only. Default 'f32': every tensor widened to f32.
   */
  linearDtype?: LinearDtype;
}

/**
 * Where `Weights` finds tensors, and how each comes out in the form a layer
 * keeps: shapes are known before any data is read.
 */
interface TensorStore {
  names(): Iterable<string>;
  shape(key: string): Shape | undefined;
  f32(key: string): Tensor;
  bf16(key: string): Tensor;
  int8(key: string): Int8Matrix;
  /** A matrix stored [in, out] (GPT-2's Conv1D) as [out, in] in `dtype`. */
  transposed(key: string, dtype: LinearDtype): LinearWeight;
  /** Whether the stored tensor records gradients (a parameter being trained; only tensors already in memory can). */
  requiresGrad(key: string): boolean;
}

function convert(t: Tensor, dtype: LinearDtype): LinearWeight {
  if (dtype === 'int8') return Int8Matrix.quantize(t);
  return t.dtype === dtype ? t : t.to(dtype);
}

/** Tensors already in memory: converted whole, as they are. */
function mapStore(map: ReadonlyMap<string, Tensor>): TensorStore {
  const at = (key: string): Tensor => map.get(key) as Tensor;
  return {
    names: () => map.keys(),
    shape: (key) => map.get(key)?.shape,
    f32: (key) => convert(at(key), 'f32') as Tensor,
    bf16: (key) => convert(at(key), 'bf16') as Tensor,
    int8: (key) => convert(at(key), 'int8') as Int8Matrix,
    transposed: (key, dtype) => convert(at(key).transpose(0, 1), dtype),
    requiresGrad: (key) => at(key).requiresGrad,
  };
}

/** Reads a float tensor a block at a time as f32, into one buffer reused for every block of every tensor. */
class BlockReader {
  private buffer = new Float32Array(0);

  constructor(private readonly reader: TensorReader) {}

  private take(length: number): Float32Array {
    if (this.buffer.length < length) this.buffer = new Float32Array(length);
    return this.buffer.subarray(0, length);
  }

  /** The flat elements: visit(block, firstElement). */
  each(key: string, size: number, visit: (block: Float32Array, begin: number) => void): void {
    for (let begin = 0; begin < size; begin += BLOCK_ELEMENTS) {
      const block = this.take(Math.min(BLOCK_ELEMENTS, size - begin));
      this.reader.readF32Sync(key, begin, begin + block.length, block);
      visit(block, begin);
    }
  }

  /** The rows of a [rows, cols] tensor, whole rows per block (one row when a row is longer than a block): visit(block, firstRow, endRow). */
  eachRows(key: string, rows: number, cols: number, visit: (block: Float32Array, r0: number, r1: number) => void): void {
    const per = Math.max(1, Math.floor(BLOCK_ELEMENTS / Math.max(1, cols)));
    for (let r0 = 0; r0 < rows; r0 += per) {
      const r1 = Math.min(rows, r0 + per);
      const block = this.take((r1 - r0) * cols);
      this.reader.readF32Sync(key, r0 * cols, r1 * cols, block);
      visit(block, r0, r1);
    }
  }
}

/**
 * Tensors read from a checkpoint when a layer asks for them, converted as
 * they are read: a tensor stored as it will be kept is read straight into its
 * storage; one that is converted (widened to f32, rounded to bf16, quantized
 * to int8, or GPT-2's Conv1D transposed) is read a block at a time into the
 * converted storage. So loading holds the model as it will be kept plus one
 * block, never the checkpoint twice (io/load-memory.ts predicts the peak).
 * Nothing is cached: the model holds the only copy of what it keeps.
 */
function readerStore(reader: TensorReader): TensorStore {
  const info = (key: string) => reader.tensorInfo(key);
  const blockwise = (key: string): boolean => ['F32', 'F16', 'BF16'].includes(info(key).dtype);
  const blocks = new BlockReader(reader);
  // GPT-2's Conv1D matrices are transposed through one f32 buffer, kept for the next of them.
  let transposeBuffer = new Float32Array(0);
  const f32 = (key: string): Tensor => {
    const { dtype, shape } = info(key);
    if (dtype === 'F32' || !blockwise(key)) return convert(reader.getSync(key), 'f32') as Tensor;
    const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
    return new Tensor('f32', shape, reader.readF32Sync(key, 0, out.length, out));
  };
  const bf16 = (key: string): Tensor => {
    const { dtype, shape } = info(key);
    if (dtype === 'BF16' || !blockwise(key)) return convert(reader.getSync(key), 'bf16') as Tensor;
    const size = shape.reduce((a, b) => a * b, 1);
    const out = new Uint16Array(size);
    blocks.each(key, size, (block, begin) => {
      for (let i = 0; i < block.length; i++) out[begin + i] = f32ToBf16(block[i]);
    });
    return new Tensor('bf16', shape, out);
  };
  const int8 = (key: string): Int8Matrix => {
    const { shape } = info(key);
    if (shape.length !== 2 || !blockwise(key)) return convert(f32(key), 'int8') as Int8Matrix;
    const [rows, cols] = shape;
    const q = new Int8Array(rows * cols);
    const scales = new Float32Array(rows);
    // Each row's scale depends on that row only, so quantizing block by block is quantizing the whole.
    blocks.eachRows(key, rows, cols, (block, r0, r1) => {
      const part = Int8Matrix.quantize(new Tensor('f32', [r1 - r0, cols], block));
      q.set(part.q, r0 * cols);
      scales.set(part.scales, r0);
    });
    return new Int8Matrix(q, scales, [rows, cols]);
  };
  const transposed = (key: string, dtype: LinearDtype): LinearWeight => {
    const { shape } = info(key);
    if (shape.length !== 2 || !blockwise(key)) return convert(f32(key).transpose(0, 1), dtype);
    const [inF, outF] = shape;
    const size = inF * outF;
    if (dtype !== 'f32' && transposeBuffer.length < size) transposeBuffer = new Float32Array(size);
    const t = dtype === 'f32' ? new Float32Array(size) : transposeBuffer.subarray(0, size); // [out, in]
    blocks.eachRows(key, inF, outF, (block, p0, p1) => {
      for (let p = p0; p < p1; p++) for (let j = 0; j < outF; j++) t[j * inF + p] = block[(p - p0) * outF + j];
    });
    return convert(new Tensor('f32', [outF, inF], t), dtype);
  };
  return {
    names: () => reader.names(),
    shape: (key) => (reader.has(key) ? info(key).shape : undefined),
    f32,
    bf16,
    int8,
    transposed,
    requiresGrad: () => false,
  };
}

function isReader(tensors: object): tensors is TensorReader {
  return typeof (tensors as Partial<TensorReader>).getSync === 'function';
}

/**
 * Checkpoint tensors by their Hugging Face names, scoped by prefix so a layer
 * reads its own weights where it is defined (`w.scope('self_attn').get('q_proj.weight')`),
 * as candle's VarBuilder does.
 */
export class Weights {
  private constructor(
    private readonly tensors: TensorStore,
    private readonly source: string,
    private readonly prefix: string,
    private readonly used: Set<string>,
    readonly linearDtype: LinearDtype,
  ) {}

  /**
   * Over tensors in memory (a Map or a record), or over a `TensorReader` (an
   * opened safetensors file or sharded checkpoint that reads synchronously),
   * whose tensors are read as layers ask for them.
   */
  static from(
    tensors: ReadonlyMap<string, Tensor> | Record<string, Tensor> | TensorReader,
    source = 'checkpoint',
    options: WeightsOptions = {},
  ): Weights {
    let store: TensorStore;
    if (tensors instanceof Map) store = mapStore(tensors);
    else if (isReader(tensors)) {
      if (!tensors.canReadSync) throw new ConfigError(`${source}: the checkpoint is not local (it reads asynchronously only); load its tensors with loadAll() first`);
      store = readerStore(tensors);
    } else store = mapStore(new Map(Object.entries(tensors)));
    const linearDtype = options.linearDtype ?? 'f32';
    if (!(LINEAR_DTYPES as readonly string[]).includes(linearDtype)) {
      throw new ConfigError(`${source}: linearDtype must be one of ${LINEAR_DTYPES.map((d) => `'${d}'`).join(', ')}, got ${JSON.stringify(linearDtype)}`);
    }
    return new Weights(store, source, '', new Set(), linearDtype);
  }

  /**
   * Over an opened checkpoint (a safetensors file or a sharded set): read
   * tensor by tensor as layers ask when its bytes are local, else (weights
   * read over the network) loaded whole first.
   */
  static async fromCheckpoint(
    checkpoint: TensorReader & { loadAll(): Promise<Map<string, Tensor>> },
    source: string = checkpoint.name,
    options: WeightsOptions = {},
  ): Promise<Weights> {
    return Weights.from(checkpoint.canReadSync ? checkpoint : await checkpoint.loadAll(), source, options);
  }

  scope(name: string): Weights {
    return new Weights(this.tensors, this.source, this.key(name) + '.', this.used, this.linearDtype);
  }

  private key(name: string): string {
    return this.prefix + name;
  }

  has(name: string): boolean {
    return this.tensors.shape(this.key(name)) !== undefined;
  }

  /** The tensor `prefix + name` as f32, checked against `shape` when given. */
  get(name: string, shape?: Shape): Tensor {
    return this.tensors.f32(this.checked(name, shape));
  }

  /**
   * A linear layer's weight matrix [out, in] as `linearDtype` asks: f32, bf16
   * kept 16-bit, or int8 with per-row scales.
   */
  matrix(name: string, shape: Shape): LinearWeight {
    const key = this.checked(name, shape);
    if (this.linearDtype === 'int8') return this.tensors.int8(key);
    return this.linearDtype === 'bf16' ? this.tensors.bf16(key) : this.tensors.f32(key);
  }

  /**
   * A weight matrix stored [in, out] (GPT-2's Conv1D), shape-checked as
   * stored, returned [out, in] as `linearDtype` asks (as nn.Linear holds it).
   */
  transposedMatrix(name: string, shape: Shape): LinearWeight {
    return this.tensors.transposed(this.checked(name, shape), this.linearDtype);
  }

  /** Whether `name` is a parameter being trained (its layer must then use it as stored, so gradients reach it). */
  isTrained(name: string): boolean {
    return this.tensors.requiresGrad(this.checked(name));
  }

  /** The key of `name`, checked present and of `shape` against the header (no data read yet), marked used. */
  private checked(name: string, shape?: Shape): string {
    const key = this.key(name);
    const stored = this.tensors.shape(key);
    if (!stored) {
      const near = [...this.tensors.names()].filter((k) => k.startsWith(this.prefix)).slice(0, 5);
      throw new WeightError(
        `${this.source}: tensor "${key}" is missing` + (near.length ? ` (tensors under "${this.prefix}": ${near.join(', ')}, …)` : ''),
      );
    }
    // Checked against the header before any byte is read.
    if (shape && (shape.length !== stored.length || shape.some((d, i) => d !== stored[i]))) {
      throw new WeightError(`${this.source}: tensor "${key}" has shape ${shapeString(stored)}, expected ${shapeString(shape)}`);
    }
    this.used.add(key);
    return key;
  }

  /** `get` when present, else undefined (for optional biases). */
  maybe(name: string, shape?: Shape): Tensor | undefined {
    return this.has(name) ? this.get(name, shape) : undefined;
  }

  /** Names in the checkpoint that no layer read: usually a sign of a wrong architecture. */
  unused(): string[] {
    return [...this.tensors.names()].filter((k) => !this.used.has(k));
  }
}
