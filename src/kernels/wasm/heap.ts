/**
 * The allocator of the WebAssembly kernel's linear memory above its fixed
 * regions (control block and per-thread scratch): first fit over a free list
 * sorted by address, neighbours merged when freed, and the end of the used
 * range (`top`) moved up (growing the memory) when nothing fits. Addresses
 * and sizes are bytes, multiples of 64 (a cache line, and the alignment every
 * operand of the module wants).
 *
 * It only does bookkeeping: `grow` is asked to make the memory reach an end
 * address, and says whether it could.
 */
import { GlassformerError } from '../../errors.js';

export const HEAP_ALIGN = 64;

const alignUp = (bytes: number): number => Math.ceil(bytes / HEAP_ALIGN) * HEAP_ALIGN;

/** A free range of the heap. */
interface Range {
  at: number;
  size: number;
}

export class Heap {
  /** Free ranges below `top`, sorted by address, never adjacent (merged when freed). */
  private readonly free: Range[] = [];
  /** Sizes of the live allocations, by address. */
  private readonly live = new Map<number, number>();
  private end: number;

  /** `start`: the first address the heap may hand out (64-byte aligned); `grow(end)`: makes the memory at least `end` bytes, false if it cannot. */
  constructor(
    readonly start: number,
    private readonly grow: (end: number) => boolean,
  ) {
    if (start % HEAP_ALIGN !== 0) throw new GlassformerError(`Heap: start ${start} is not ${HEAP_ALIGN}-byte aligned`);
    this.end = start;
  }

  /** One past the highest byte ever handed out and not returned at the top. */
  get top(): number {
    return this.end;
  }

  /** Bytes in live allocations. */
  get used(): number {
    let sum = 0;
    for (const size of this.live.values()) sum += size;
    return sum;
  }

  /** Free ranges below the top, for tests: [address, bytes]. */
  holes(): [number, number][] {
    return this.free.map(({ at, size }) => [at, size]);
  }

  /** The address of `bytes` (rounded up to 64) new bytes, or undefined when the memory cannot grow to hold them. */
  alloc(bytes: number): number | undefined {
    const size = alignUp(Math.max(bytes, 1));
    const index = this.free.findIndex((range) => range.size >= size);
    if (index >= 0) {
      const range = this.free[index];
      const at = range.at;
      if (range.size === size) this.free.splice(index, 1);
      else Object.assign(range, { at: at + size, size: range.size - size });
      this.live.set(at, size);
      return at;
    }
    // No hole ends at the top (release lowers the top instead), so a block that fits none goes above it.
    const at = this.end;
    if (!this.grow(at + size)) return undefined;
    this.end = at + size;
    this.live.set(at, size);
    return at;
  }

  /** Returns an allocation; its bytes may be handed out again at once. */
  release(at: number): void {
    const size = this.live.get(at);
    if (size === undefined) throw new GlassformerError(`Heap: ${at} is not a live allocation`);
    this.live.delete(at);
    if (at + size === this.end) {
      this.end = at;
      // A free range now at the top goes back above it.
      const last = this.free.at(-1);
      if (last !== undefined && last.at + last.size === this.end) {
        this.free.pop();
        this.end = last.at;
      }
      return;
    }
    let index = this.free.findIndex((range) => range.at > at);
    if (index < 0) index = this.free.length;
    const before = this.free[index - 1];
    const after = this.free[index];
    if (before !== undefined && before.at + before.size === at) {
      before.size += size;
      if (after !== undefined && at + size === after.at) {
        before.size += after.size;
        this.free.splice(index, 1);
      }
    } else if (after !== undefined && at + size === after.at) {
      Object.assign(after, { at, size: size + after.size });
    } else {
      this.free.splice(index, 0, { at, size });
    }
  }
}
