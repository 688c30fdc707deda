/**
 * The activation cache: every intermediate of one forward pass, by hook name
 * (TransformerLens's `run_with_cache`). Names follow docs/trace.md; a `*` in a
 * pattern stands for one dotted part, usually the layer index.
 */
import { ShapeError } from '../errors.js';
import { closestNames, serializeSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { FileSystem } from '../io/source.js';
import { stack, type Tensor } from '../tensor/tensor.js';

/** Which hook names to keep: a list, a glob (`blocks.*.attn.pattern`, `**` crosses dots), a RegExp or a predicate. */
export type NameFilter = readonly string[] | string | RegExp | ((name: string) => boolean);

function escapeRegExp(s: string): string {
  return s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}

/** A glob over dotted names: `*` is one part (no dot), `**` any run of characters. */
export function globToRegExp(glob: string): RegExp {
  const parts = glob.split('**').map((p) => p.split('*').map(escapeRegExp).join('([^.]*)'));
  return new RegExp(`^${parts.join('(.*)')}$`);
}

/** A predicate for a NameFilter; undefined keeps everything. */
export function nameMatcher(filter?: NameFilter): (name: string) => boolean {
  if (filter === undefined) return () => true;
  if (typeof filter === 'function') return filter;
  if (filter instanceof RegExp) return (name) => filter.test(name);
  if (typeof filter === 'string') {
    const re = globToRegExp(filter);
    return (name) => re.test(name);
  }
  const set = new Set(filter);
  return (name) => set.has(name);
}

export class ActivationCache {
  private readonly tensors = new Map<string, Tensor>();

  /** Keep a tensor under its hook name (a later call with the same name replaces it). */
  set(name: string, tensor: Tensor): void {
    this.tensors.set(name, tensor);
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** The tensor recorded under `name`; a typed error names the closest recorded names when it is absent. */
  get(name: string): Tensor {
    const t = this.tensors.get(name);
    if (!t) {
      const near = closestNames(name, this.tensors.keys());
      throw new ShapeError(
        `activation cache has no "${name}"` +
          (near.length ? `; closest recorded names: ${near.join(', ')}` : '; the cache is empty (was the name filtered out?)'),
      );
    }
    return t;
  }

  /** Recorded names in the order the forward pass produced them. */
  names(filter?: NameFilter): string[] {
    const keep = nameMatcher(filter);
    return [...this.tensors.keys()].filter(keep);
  }

  get size(): number {
    return this.tensors.size;
  }

  entries(): IterableIterator<[string, Tensor]> {
    return this.tensors.entries();
  }

  /**
   * The tensors whose names match `pattern` (one `*`, e.g. `blocks.*.resid_post`),
   * ordered by the number the `*` stands for, stacked on a new leading axis:
   * [layers, ...shape].
   */
  stack(pattern: string): Tensor {
    const { names } = this.matchLayers(pattern);
    const tensors = names.map((n) => this.tensors.get(n) as Tensor);
    const first = tensors[0];
    for (let i = 1; i < tensors.length; i++) {
      if (tensors[i].shape.join() !== first.shape.join() || tensors[i].dtype !== first.dtype) {
        throw new ShapeError(`cache.stack("${pattern}"): ${names[i]} is ${tensors[i]} but ${names[0]} is ${first}`);
      }
    }
    return stack(tensors);
  }

  /** The names `pattern` matches, ordered by the number its single `*` stands for. */
  matchLayers(pattern: string): { names: string[]; indices: number[] } {
    if (pattern.split('*').length !== 2) throw new ShapeError(`cache.stack("${pattern}"): the pattern must hold exactly one "*" (the layer index)`);
    const re = globToRegExp(pattern);
    const found: { name: string; index: number }[] = [];
    for (const name of this.tensors.keys()) {
      const m = re.exec(name);
      if (m && /^\d+$/.test(m[1])) found.push({ name, index: Number(m[1]) });
    }
    if (found.length === 0) {
      throw new ShapeError(`cache.stack("${pattern}"): no recorded name matches; recorded: ${this.names().slice(0, 8).join(', ')}${this.size > 8 ? ', …' : ''}`);
    }
    found.sort((a, b) => a.index - b.index);
    return { names: found.map((f) => f.name), indices: found.map((f) => f.index) };
  }

  /** Every tensor as one safetensors file (names as recorded; metadata says what made it). */
  toSafetensors(metadata: Record<string, string> = {}): Uint8Array {
    return serializeSafetensors(Object.fromEntries(this.tensors), { format: 'glassformer-activations', ...metadata });
  }

  async save(fs: FileSystem, path: string, metadata: Record<string, string> = {}): Promise<void> {
    await writeSafetensors(fs, path, Object.fromEntries(this.tensors), { format: 'glassformer-activations', ...metadata });
  }
}
