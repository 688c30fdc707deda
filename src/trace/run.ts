/**
 * Running a model with hooks: record intermediates (`runWithCache`), or read
 * and replace them (`runWithHooks`) to ablate a head or patch in another
 * run's activation (TransformerLens's `run_with_hooks`, activation patching
 * as in Meng et al. 2022 "Locating and Editing Factual Associations").
 */
import { ShapeError } from '../errors.js';
import { Hooks, type HookFn, type HookPoints } from '../nn/hooks.js';
import { Tensor } from '../tensor/tensor.js';
import { ActivationCache, nameMatcher, type NameFilter } from './cache.js';
import type { TraceableModel, TraceInputs } from './types.js';

/** A hook attached to the names a matcher selects; `fn` may return a replacement tensor. */
export interface HookSpec {
  name: string | RegExp | ((name: string) => boolean);
  fn: HookFn;
}

export interface RunWithCacheOptions {
  /** Which names to keep (all by default). */
  names?: NameFilter;
  /** More hooks to run while recording; a replacement they return is what the cache records. */
  hooks?: readonly HookSpec[];
}

function hooksOf(specs: readonly HookSpec[]): Hooks {
  const hooks = new Hooks();
  for (const spec of specs) hooks.add(spec.name, spec.fn);
  return hooks;
}

/** One forward pass, keeping every intermediate the filter selects. Returns the model's output and the cache. */
export function runWithCache(model: TraceableModel, inputs: TraceInputs, options: RunWithCacheOptions = {}): { output: Tensor; cache: ActivationCache } {
  const cache = new ActivationCache();
  const keep = nameMatcher(options.names);
  const hooks = hooksOf(options.hooks ?? []);
  // Added last, so it records what the other hooks left.
  hooks.add(keep, (t, name) => void cache.set(name, t));
  const output = model.run(inputs, hooks);
  return { output, cache };
}

/** One forward pass with hooks that may read or replace intermediates. */
export function runWithHooks(model: TraceableModel, inputs: TraceInputs, hooks: readonly HookSpec[] | HookPoints): Tensor {
  return model.run(inputs, Array.isArray(hooks) ? hooksOf(hooks as readonly HookSpec[]) : (hooks as HookPoints));
}

export interface HeadOptions {
  /** The stack: '' (single-stack models), 'encoder.' or 'decoder.'. */
  prefix?: string;
  /** The decoder's cross-attention instead of its self-attention. */
  cross?: boolean;
}

/** Zero head `head` of a [batch, heads, seq, dHead] tensor (a copy). */
export function zeroHead(t: Tensor, head: number, name = 'tensor'): Tensor {
  if (t.rank !== 4) throw new ShapeError(`ablateHead: ${name} is ${t}, expected [batch, heads, seq, dHead]`);
  const [batch, heads, seq, dh] = t.shape;
  if (!Number.isInteger(head) || head < 0 || head >= heads) throw new ShapeError(`ablateHead: head ${head} is out of range; ${name} has ${heads} heads`);
  const out = t.to('f32').clone();
  const block = seq * dh;
  for (let b = 0; b < batch; b++) out.data.fill(0, (b * heads + head) * block, (b * heads + head + 1) * block);
  return out;
}

/** Zero-ablate one head: its z (pattern · v) becomes 0, so it writes nothing into the residual stream. */
export function ablateHead(layer: number, head: number, options: HeadOptions = {}): HookSpec {
  const name = `${options.prefix ?? ''}blocks.${layer}.${options.cross ? 'cross_attn' : 'attn'}.z`;
  return { name, fn: (t) => zeroHead(t, head, name) };
}

/** The sequence axis of a hooked tensor: 1 for [batch, seq, …], 2 (queries) for per-head [batch, heads, seq, …]. */
export function sequenceAxis(t: Tensor): number {
  return t.rank >= 4 ? 2 : 1;
}

/** `target` with the slices at `positions` of its sequence axis taken from `source` (same shape). */
export function patchPositions(target: Tensor, source: Tensor, positions: readonly number[], name = 'tensor'): Tensor {
  const axis = sequenceAxis(target);
  const dim = target.shape[axis];
  const outer = target.shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = target.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const out = target.to('f32').clone();
  const src = source.f32();
  for (const p of positions) {
    if (!Number.isInteger(p) || p < 0 || p >= dim) throw new ShapeError(`patchActivation: position ${p} is out of range for ${name} ${target} (axis ${axis} has ${dim})`);
    for (let o = 0; o < outer; o++) {
      const at = (o * dim + p) * inner;
      out.data.set(src.subarray(at, at + inner), at);
    }
  }
  return out;
}

/**
 * Activation patching: replace `name` with what another run recorded (all
 * positions, or only `positions` along the sequence axis). The two runs must
 * have the same shapes there.
 */
export function patchActivation(name: string, fromCache: ActivationCache, positions?: readonly number[]): HookSpec {
  const source = fromCache.get(name);
  return {
    name,
    fn: (t) => {
      if (t.shape.join() !== source.shape.join()) {
        throw new ShapeError(`patchActivation: "${name}" is ${t} in this run but ${source} in the cached run; patch runs of equal length`);
      }
      if (!positions) return new Tensor('f32', t.shape, source.f32().slice());
      return patchPositions(t, source, positions, name);
    },
  };
}
