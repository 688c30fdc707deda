/**
 * Buffers reused from one pass to the next, so that decoding a token
 * allocates nothing once the shapes have settled. A decoding step asks for its
 * outputs in the same order every time (the same ops on the same shapes), so
 * the i-th request of a pass is served by the buffer of the i-th request of
 * the pass before: `reset()` starts a pass. A tensor handed out is overwritten
 * by the next pass; whoever keeps one longer copies it.
 */
import { Tensor, sizeOf, type Shape } from '../tensor/tensor.js';

function sameShape(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class Workspace {
  private readonly slots: Tensor[] = [];
  private next = 0;
  private readonly grown = new Map<string, Float32Array>();
  /** Buffers allocated since the workspace was made: a pass in steady state adds none (the tests count them). */
  allocations = 0;

  /** Start a pass: its requests are served again from the first buffer. */
  reset(): void {
    this.next = 0;
  }

  /** The next f32 tensor of `shape` (its contents are whatever the last pass left: the op that takes it overwrites it). */
  f32(shape: Shape): Tensor {
    return this.take('f32', shape);
  }

  /** The next i32 tensor of `shape` (contents as `f32`). */
  i32(shape: Shape): Tensor {
    return this.take('i32', shape);
  }

  /**
   * A buffer of at least `length` floats kept across passes under `key`
   * (not reset), grown by doubling: for data read through strides that grows
   * by a little every step, such as the attention mask of a decoding session.
   */
  growing(key: string, length: number): Float32Array {
    const held = this.grown.get(key);
    if (held && held.length >= length) return held;
    this.allocations++;
    const buffer = new Float32Array(Math.max(length, 2 * (held?.length ?? 0)));
    this.grown.set(key, buffer);
    return buffer;
  }

  private take(dtype: 'f32' | 'i32', shape: Shape): Tensor {
    const i = this.next++;
    const slot = this.slots[i] as Tensor | undefined;
    if (slot && slot.dtype === dtype && sameShape(slot.shape, shape)) return slot;
    let data = slot?.dtype === dtype && slot.size === sizeOf(shape) ? slot.data : undefined;
    if (!data) {
      this.allocations++;
      data = dtype === 'f32' ? new Float32Array(sizeOf(shape)) : new Int32Array(sizeOf(shape));
    }
    const tensor = new Tensor(dtype, shape, data);
    this.slots[i] = tensor;
    return tensor;
  }
}
