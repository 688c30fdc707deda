import { WeightError } from '../errors.js';
import { Tensor, shapeString, type Shape } from '../tensor/tensor.js';

/**
 * Checkpoint tensors by their Hugging Face names, scoped by prefix so a layer
 * reads its own weights where it is defined (`w.scope('self_attn').get('q_proj.weight')`),
 * as candle's VarBuilder does.
 */
export class Weights {
  private constructor(
    private readonly tensors: ReadonlyMap<string, Tensor>,
    private readonly source: string,
    private readonly prefix: string,
    private readonly used: Set<string>,
  ) {}

  static from(tensors: ReadonlyMap<string, Tensor> | Record<string, Tensor>, source = 'checkpoint'): Weights {
    const map = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
    return new Weights(map, source, '', new Set());
  }

  scope(name: string): Weights {
    return new Weights(this.tensors, this.source, this.key(name) + '.', this.used);
  }

  private key(name: string): string {
    return this.prefix + name;
  }

  has(name: string): boolean {
    return this.tensors.has(this.key(name));
  }

  /** The tensor `prefix + name` as f32, checked against `shape` when given. */
  get(name: string, shape?: Shape): Tensor {
    const key = this.key(name);
    const t = this.tensors.get(key);
    if (!t) {
      const near = [...this.tensors.keys()].filter((k) => k.startsWith(this.prefix)).slice(0, 5);
      throw new WeightError(
        `${this.source}: tensor "${key}" is missing` + (near.length ? ` (tensors under "${this.prefix}": ${near.join(', ')}, …)` : ''),
      );
    }
    if (shape && (shape.length !== t.rank || shape.some((d, i) => d !== t.shape[i]))) {
      throw new WeightError(`${this.source}: tensor "${key}" has shape ${shapeString(t.shape)}, expected ${shapeString(shape)}`);
    }
    this.used.add(key);
    return t.dtype === 'f32' ? t : t.to('f32');
  }

  /** `get` when present, else undefined (for optional biases). */
  maybe(name: string, shape?: Shape): Tensor | undefined {
    return this.has(name) ? this.get(name, shape) : undefined;
  }

  /** Names in the checkpoint that no layer read: usually a sign of a wrong architecture. */
  unused(): string[] {
    return [...this.tensors.keys()].filter((k) => !this.used.has(k));
  }
}
