import { softmax } from '../ops/softmax.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * A hook sees one named intermediate and may return a replacement (to ablate a
 * head or patch in another run's activation); returning nothing keeps it.
 */
export type HookFn = (tensor: Tensor, name: string) => Tensor | void;

/**
 * Named hook points, called by every model at every intermediate (names in
 * docs/trace.md). With no hook attached `run` returns its input at once.
 */
export interface HookPoints {
  readonly active: boolean;
  run(name: string, tensor: Tensor): Tensor;
  /** The same hooks seen under a prefix, e.g. `encoder.` for an encoder stack. */
  scope(prefix: string): HookPoints;
  /**
   * Whether a hook reads `name`: lets a model skip an intermediate that is
   * computed only to be shown (`probs`). Absent: any hook might (`active`).
   */
  wants?(name: string): boolean;
}

export const noHooks: HookPoints = {
  active: false,
  run: (_name, tensor) => tensor,
  scope: () => noHooks,
};

type Matcher = string | RegExp | ((name: string) => boolean);

function matches(matcher: Matcher, name: string): boolean {
  if (typeof matcher === 'string') return matcher === name;
  if (matcher instanceof RegExp) return matcher.test(name);
  return matcher(name);
}

/** A set of hooks, each attached to the names a matcher selects. */
export class Hooks implements HookPoints {
  private readonly entries: { matcher: Matcher; fn: HookFn }[] = [];

  constructor(private readonly prefix = '', private readonly parent?: Hooks) {}

  get active(): boolean {
    return (this.parent ?? this).entries.length > 0;
  }

  add(matcher: Matcher, fn: HookFn): this {
    (this.parent ?? this).entries.push({ matcher, fn });
    return this;
  }

  run(name: string, tensor: Tensor): Tensor {
    const full = this.prefix + name;
    let current = tensor;
    for (const { matcher, fn } of (this.parent ?? this).entries) {
      if (matches(matcher, full)) current = fn(current, full) ?? current;
    }
    return current;
  }

  scope(prefix: string): HookPoints {
    return new Hooks(this.prefix + prefix, this.parent ?? this);
  }

  wants(name: string): boolean {
    const full = this.prefix + name;
    return (this.parent ?? this).entries.some(({ matcher }) => matches(matcher, full));
  }
}

/**
 * The last two hook points of every model: `logits`, then `probs` (the softmax
 * over the vocabulary), computed only when a hook is attached.
 */
export function hookLogits(hooks: HookPoints, logits: Tensor): Tensor {
  const out = hooks.run('logits', logits);
  if (hooks.wants ? hooks.wants('probs') : hooks.active) hooks.run('probs', softmax(out));
  return out;
}
