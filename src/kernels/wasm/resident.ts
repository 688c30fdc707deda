/**
 * Weights kept in the WebAssembly kernel's memory between products, so a
 * product skips copying its weight in (and, with more than a few rows,
 * packing it). A weight has up to two forms, each made on first use and
 * evicted on its own:
 *
 *   rows:   the weight as it is stored, rows padded with zeros to whole
 *           vectors and groups: what the few-row products (decode) stream;
 *   panels: op(B) packed in the micro-panels the GEMM's microkernel reads.
 *
 * Every form counts against a budget; when a new one would exceed it, or the
 * memory cannot grow to hold it, the least recently used forms are evicted.
 * A form that cannot fit at all is not made, and the product copies its
 * weight as it would without residency.
 *
 * All of this runs on the calling thread, between products: a product's job
 * is finished by every thread before `gemm` returns, and finalizers run from
 * the event loop, so no worker can be reading a region while it is evicted,
 * freed or handed out again.
 */
import type { Heap } from './heap.js';

/** The layouts a weight can be resident in. */
export type FormKind = 'rows' | 'panels';

interface Form {
  readonly owner: ResidentWeight;
  readonly kind: FormKind;
  readonly at: number;
  readonly bytes: number;
}

/**
 * The resident forms of one weight. It holds no reference to the weight's
 * array, so a resident copy never keeps its weight alive.
 */
export class ResidentWeight {
  readonly forms = new Map<FormKind, Form>();
}

export class ResidentStore {
  /** Every resident form, least recently used first (a Set keeps insertion order). */
  private readonly lru = new Set<Form>();
  private usedBytes = 0;
  private evictions = 0;

  constructor(
    private readonly heap: Heap,
    private budgetBytes: number,
  ) {}

  /** Bytes held by resident forms. */
  get used(): number {
    return this.usedBytes;
  }

  get budget(): number {
    return this.budgetBytes;
  }

  /** Forms evicted so far (to make room, or by a smaller budget). */
  get evicted(): number {
    return this.evictions;
  }

  /** Sets the budget in bytes, evicting the least recently used forms until the rest fit; returns the previous budget. */
  setBudget(bytes: number): number {
    const previous = this.budgetBytes;
    this.budgetBytes = bytes;
    while (this.usedBytes > bytes && this.evictOldest());
    return previous;
  }

  /** Whether the weight has this form resident now. */
  has(weight: ResidentWeight, kind: FormKind): boolean {
    return weight.forms.has(kind);
  }

  /**
   * The address of the weight's form, now the most recently used; made by
   * `fill(address)` when it is not resident. Undefined when it cannot be:
   * larger than the budget, or the memory cannot hold it even with every
   * other form evicted.
   */
  acquire(weight: ResidentWeight, kind: FormKind, bytes: number, fill: (at: number) => void): number | undefined {
    const resident = weight.forms.get(kind);
    if (resident !== undefined) {
      this.lru.delete(resident);
      this.lru.add(resident);
      return resident.at;
    }
    if (bytes > this.budgetBytes) return undefined;
    while (this.usedBytes + bytes > this.budgetBytes && this.evictOldest());
    let at = this.heap.alloc(bytes);
    while (at === undefined && this.evictOldest()) at = this.heap.alloc(bytes);
    if (at === undefined) return undefined;
    fill(at);
    const form: Form = { owner: weight, kind, at, bytes };
    weight.forms.set(kind, form);
    this.lru.add(form);
    this.usedBytes += bytes;
    return at;
  }

  /** Frees every form of the weight (its array was collected, or the caller is done with it). */
  drop(weight: ResidentWeight): void {
    for (const form of weight.forms.values()) this.free(form);
  }

  /** Evicts the least recently used form; false when none is resident. */
  evictOldest(): boolean {
    const [oldest] = this.lru;
    if (oldest === undefined) return false;
    this.free(oldest);
    this.evictions++;
    return true;
  }

  private free(form: Form): void {
    this.lru.delete(form);
    form.owner.forms.delete(form.kind);
    this.heap.release(form.at);
    this.usedBytes -= form.bytes;
  }
}
