import { elementwiseKernel, UNARY_KINDS, type UnaryKind } from '../kernels/elementwise.js';
import { activation, activationInto, mul } from '../ops/index.js';
import { needsGrad } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';
import { noHooks, type HookPoints } from './hooks.js';
import type { Linear } from './linear.js';

/** The native `unary` kind of each activation name it computes (tanh has none). */
const FUSED_KINDS: Record<string, UnaryKind | undefined> = {
  relu: 'relu',
  gelu: 'gelu',
  gelu_new: 'geluTanh',
  gelu_pytorch_tanh: 'geluTanh',
  silu: 'silu',
  swish: 'silu',
};

/**
 * The position-wise feed-forward network (Vaswani et al. 2017 §3.3): expand,
 * apply a non-linearity, project back: down(act(up(x))). With a `gate` it is the
 * gated form of Shazeer 2020 (SwiGLU, gated GELU): down(act(gate(x)) ⊙ up(x)).
 * Hook names: pre (before the activation), post (after it, and after gating), out.
 */
export class FeedForward {
  /** The activation as a function of a tensor. */
  readonly act: (x: Tensor) => Tensor;
  /** The activation's config name, when it was given by name (which lets inference run it in place). */
  private readonly activationName?: string;

  /** `act`: an activation name (config.json's `hidden_act` and kin) or a function. */
  constructor(
    readonly up: Linear,
    readonly down: Linear,
    act: string | ((x: Tensor) => Tensor),
    readonly gate?: Linear,
  ) {
    if (typeof act === 'string') {
      this.act = activation(act);
      this.activationName = act;
    } else {
      this.act = act;
    }
  }

  forward(x: Tensor, hooks: HookPoints = noHooks): Tensor {
    let hidden: Tensor;
    if (this.gate) {
      const pre = hooks.run('pre', this.gate.forward(x)); // [batch, seq, dFF]
      hidden = hooks.run('post', this.gated(pre, this.up.forward(x), hooks));
    } else {
      const pre = hooks.run('pre', this.up.forward(x)); // [batch, seq, dFF]
      const inPlace = this.activationName !== undefined && !hooks.active && !needsGrad(pre);
      // Nothing else holds the fresh up-projection: the activation overwrites it.
      hidden = hooks.run('post', inPlace ? activationInto(this.activationName as string)(pre, pre) : this.act(pre));
    }
    return hooks.run('out', this.down.forward(hidden)); // [batch, seq, d]
  }

  /**
   * act(pre) ⊙ up. At inference with no hook attached and the native kernel
   * loaded, one pass writes it over the fresh `pre` (the activation and the
   * product in f32, as the two ops do).
   */
  private gated(pre: Tensor, up: Tensor, hooks: HookPoints): Tensor {
    const kernel = elementwiseKernel();
    const kind = this.activationName === undefined ? undefined : FUSED_KINDS[this.activationName];
    if (!kernel || kind === undefined || hooks.active || needsGrad(pre, up)) return mul(this.act(pre), up);
    const data = pre.f32();
    kernel.unary(UNARY_KINDS[kind], data, up.f32(), data, data.length, 0);
    return pre;
  }
}
