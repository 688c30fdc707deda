import { ConfigError, WeightError } from '../errors.js';
import type { TensorReader } from '../io/safetensors.js';
import { Tensor, shapeString, type Shape } from '../tensor/tensor.js';
import { Int8Matrix } from './int8.js';

/** How linear-layer weights are held in memory. */
export type LinearDtype = 'f32' | 'bf16' | 'int8';

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

/** Where `Weights` finds tensors: shapes known up front, data on request. */
interface TensorStore {
  names(): Iterable<string>;
  shape(key: string): Shape | undefined;
  read(key: string): Tensor;
}

function mapStore(map: ReadonlyMap<string, Tensor>): TensorStore {
  return { names: () => map.keys(), shape: (key) => map.get(key)?.shape, read: (key) => map.get(key) as Tensor };
}

/**
 * Each tensor is read from the file when a layer asks for it and converted
 * there (widened to f32, rounded to bf16, quantized to int8), so loading holds
 * the model as kept plus the one tensor being converted, never the whole
 * checkpoint twice. Nothing is cached: a model that keeps a tensor keeps the
 * only copy, and one that converts it drops the read.
 */
function readerStore(reader: TensorReader): TensorStore {
  return {
    names: () => reader.names(),
    shape: (key) => (reader.has(key) ? reader.tensorInfo(key).shape : undefined),
    read: (key) => reader.getSync(key),
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
    if (linearDtype !== 'f32' && linearDtype !== 'bf16' && linearDtype !== 'int8') {
      throw new ConfigError(`${source}: linearDtype must be 'f32', 'bf16' or 'int8', got ${JSON.stringify(linearDtype)}`);
    }
    return new Weights(store, source, '', new Set(), linearDtype);
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
    const t = this.stored(name, shape);
    return t.dtype === 'f32' ? t : t.to('f32');
  }

  /**
   * A linear layer's weight matrix [out, in] as `linearDtype` asks: f32, bf16
   * kept 16-bit, or int8 with per-row scales.
   */
  matrix(name: string, shape: Shape): LinearWeight {
    const t = this.stored(name, shape);
    if (this.linearDtype === 'int8') return Int8Matrix.quantize(t);
    return t.dtype === this.linearDtype ? t : t.to(this.linearDtype);
  }

  /** The tensor as the checkpoint holds it, shape-checked and marked used. */
  private stored(name: string, shape?: Shape): Tensor {
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
    return this.tensors.read(key);
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
