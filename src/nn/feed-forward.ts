import { mul } from '../ops/index.js';
import type { Tensor } from '../tensor/tensor.js';
import { noHooks, type HookPoints } from './hooks.js';
import type { Linear } from './linear.js';

/**
 * The position-wise feed-forward network (Vaswani et al. 2017 §3.3): expand,
 * apply a non-linearity, project back: down(act(up(x))). With a `gate` it is the
 * gated form of Shazeer 2020 (SwiGLU, gated GELU): down(act(gate(x)) ⊙ up(x)).
 * Hook names: pre (before the activation), post (after it, and after gating), out.
 */
export class FeedForward {
  constructor(
    readonly up: Linear,
    readonly down: Linear,
    readonly act: (x: Tensor) => Tensor,
    readonly gate?: Linear,
  ) {}

  forward(x: Tensor, hooks: HookPoints = noHooks): Tensor {
    let hidden: Tensor;
    if (this.gate) {
      const pre = hooks.run('pre', this.gate.forward(x)); // [batch, seq, dFF]
      hidden = hooks.run('post', mul(this.act(pre), this.up.forward(x)));
    } else {
      const pre = hooks.run('pre', this.up.forward(x)); // [batch, seq, dFF]
      hidden = hooks.run('post', this.act(pre));
    }
    return hooks.run('out', this.down.forward(hidden)); // [batch, seq, d]
  }
}
