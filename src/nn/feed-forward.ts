import { activateGatedInPlace, activateInPlace, activation, mul, type Workspace } from '../ops/index.js';
import type { Tensor } from '../tensor/tensor.js';
import { noHooks, type HookPoints } from './hooks.js';
import type { Linear } from './linear.js';

/** A learned map of the last axis: a `Linear`, or a family's own (GPT-2's Conv1D). */
export interface Projection {
  /** `into`: a tensor of the result's shape it may be written into at inference. */
  forward(x: Tensor, into?: Tensor): Tensor;
  readonly outFeatures: number;
}

/**
 * The position-wise feed-forward network (Vaswani et al. 2017 §3.3): expand,
 * apply a non-linearity, project back: down(act(up(x))). With a `gate` it is the
 * gated form of Shazeer 2020 (SwiGLU, gated GELU): down(act(gate(x)) ⊙ up(x)).
 * Hook names: pre (before the activation), post (after it, and after gating), out.
 */
export class FeedForward<P extends Projection = Linear> {
  /** The activation as a function of a tensor. */
  readonly act: (x: Tensor) => Tensor;

  /** `act`: an activation name (config.json's `hidden_act` and kin) or a function. */
  constructor(
    readonly up: P,
    readonly down: P,
    act: string | ((x: Tensor) => Tensor),
    readonly gate?: P,
  ) {
    this.act = typeof act === 'string' ? activation(act) : act;
  }

  /**
   * With `buffers` (a decoding session's workspace, no hook attached) the
   * projections write into its tensors.
   */
  forward(x: Tensor, hooks: HookPoints = noHooks, buffers?: Workspace): Tensor {
    // Without hooks nothing else holds the fresh projection `pre`: the
    // activation (times the up-projection, when gated) is written over it, in
    // one native pass at inference (ops/elementwise.ts).
    const rows = x.shape.slice(0, -1);
    const out = (p: P) => buffers?.f32([...rows, p.outFeatures]);
    let hidden: Tensor;
    if (this.gate) {
      const pre = hooks.run('pre', this.gate.forward(x, out(this.gate))); // [batch, seq, dFF]
      const up = this.up.forward(x, out(this.up));
      hidden = hooks.run('post', hooks.active ? mul(this.act(pre), up) : activateGatedInPlace(this.act, pre, up));
    } else {
      const pre = hooks.run('pre', this.up.forward(x, out(this.up))); // [batch, seq, dFF]
      hidden = hooks.run('post', hooks.active ? this.act(pre) : activateInPlace(this.act, pre));
    }
    return hooks.run('out', this.down.forward(hidden, out(this.down))); // [batch, seq, d]
  }
}
