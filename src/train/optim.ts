/**
 * Optimizers, learning-rate schedules and gradient clipping with PyTorch's
 * semantics, over named parameters (the Hugging Face weight names), so their
 * state saves beside the model under the same names.
 */
import { ShapeError } from '../errors.js';
import { forgetPackedWeights } from '../nn/linear.js';
import { Tensor } from '../tensor/tensor.js';

export type Parameters = ReadonlyMap<string, Tensor>;

/** What an optimizer keeps between steps, by parameter name and slot (`exp_avg`, `momentum_buffer`, …). */
export interface OptimizerState {
  step: number;
  slots: Map<string, Float32Array>;
}

export interface Optimizer {
  readonly state: OptimizerState;
  /** Update every parameter that has a gradient, at learning rate `lr`. */
  step(lr: number): void;
  /** Clear the gradients (before the next accumulation). */
  zeroGrad(): void;
}

function slot(state: OptimizerState, name: string, kind: string, size: number): Float32Array {
  const key = `${name}.${kind}`;
  let s = state.slots.get(key);
  if (!s) {
    s = new Float32Array(size);
    state.slots.set(key, s);
  }
  if (s.length !== size) throw new ShapeError(`optimizer state "${key}" holds ${s.length} values, parameter has ${size}`);
  return s;
}

function zeroGrads(params: Parameters): void {
  for (const p of params.values()) p.grad = undefined;
}

export interface AdamWOptions {
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** Parameters that get no weight decay (HF's Trainer exempts biases and norm gains). */
  noDecay?: (name: string) => boolean;
}

/** Biases and LayerNorm/RMSNorm gains, which Hugging Face's Trainer leaves out of weight decay. */
export function isNoDecayParameter(name: string): boolean {
  return name.endsWith('.bias') || /(norm|layernorm|ln_[0-9a-z]+|LayerNorm)[^.]*\.weight$/i.test(name);
}

/**
 * AdamW (Loshchilov & Hutter 2019) exactly as torch.optim.AdamW: decoupled
 * weight decay p ← p − lr·λ·p first, then Adam with bias correction and ε
 * added outside the square root: p ← p − lr/(1 − β₁ᵗ) · m / (√v/√(1 − β₂ᵗ) + ε).
 */
export class AdamW implements Optimizer {
  readonly state: OptimizerState = { step: 0, slots: new Map() };
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;
  private readonly noDecay: (name: string) => boolean;

  constructor(
    readonly params: Parameters,
    options: AdamWOptions = {},
  ) {
    [this.beta1, this.beta2] = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
    this.noDecay = options.noDecay ?? (() => false);
  }

  step(lr: number): void {
    const t = ++this.state.step;
    const bc1 = 1 - this.beta1 ** t;
    const bc2Sqrt = Math.sqrt(1 - this.beta2 ** t);
    const stepSize = lr / bc1;
    for (const [name, p] of this.params) {
      if (!p.grad) continue;
      const w = p.data as Float32Array;
      const g = p.grad.data as Float32Array;
      const m = slot(this.state, name, 'exp_avg', w.length);
      const v = slot(this.state, name, 'exp_avg_sq', w.length);
      const decay = this.noDecay(name) ? 1 : 1 - lr * this.weightDecay;
      for (let i = 0; i < w.length; i++) {
        m[i] = this.beta1 * m[i] + (1 - this.beta1) * g[i];
        v[i] = this.beta2 * v[i] + (1 - this.beta2) * g[i] * g[i];
        w[i] = w[i] * decay - (stepSize * m[i]) / (Math.sqrt(v[i]) / bc2Sqrt + this.eps);
      }
    }
    // The weights changed in place: no linear layer may use a copy packed before.
    forgetPackedWeights();
  }

  zeroGrad(): void {
    zeroGrads(this.params);
  }
}

export interface SGDOptions {
  momentum?: number;
  weightDecay?: number;
}

/** Stochastic gradient descent as torch.optim.SGD: g ← g + λ·p; b ← μ·b + g (b = g at first); p ← p − lr·b. */
export class SGD implements Optimizer {
  readonly state: OptimizerState = { step: 0, slots: new Map() };

  constructor(
    readonly params: Parameters,
    private readonly options: SGDOptions = {},
  ) {}

  step(lr: number): void {
    const momentum = this.options.momentum ?? 0;
    const weightDecay = this.options.weightDecay ?? 0;
    const first = this.state.step === 0;
    this.state.step++;
    for (const [name, p] of this.params) {
      if (!p.grad) continue;
      const w = p.data as Float32Array;
      const g = p.grad.data as Float32Array;
      const buffer = momentum !== 0 ? slot(this.state, name, 'momentum_buffer', w.length) : undefined;
      for (let i = 0; i < w.length; i++) {
        let d = g[i] + weightDecay * w[i];
        if (buffer) {
          buffer[i] = first ? d : momentum * buffer[i] + d;
          d = buffer[i];
        }
        w[i] -= lr * d;
      }
    }
    forgetPackedWeights();
  }

  zeroGrad(): void {
    zeroGrads(this.params);
  }
}

export interface ScheduleOptions {
  peakLr: number;
  warmupSteps: number;
  totalSteps: number;
  /** 'cosine' (HF get_cosine_schedule_with_warmup), 'linear' (get_linear_schedule_with_warmup) or 'constant' after warm-up. */
  kind: 'cosine' | 'linear' | 'constant';
  /** The floor the decay ends at (0 in HF's schedules). */
  minLr?: number;
}

/** The learning rate for optimizer step `step` (0-based): linear warm-up, then the chosen decay. */
export function learningRate(step: number, s: ScheduleOptions): number {
  const floor = s.minLr ?? 0;
  if (step < s.warmupSteps) return (s.peakLr * step) / Math.max(1, s.warmupSteps);
  if (s.kind === 'constant') return s.peakLr;
  const progress = Math.min(1, (step - s.warmupSteps) / Math.max(1, s.totalSteps - s.warmupSteps));
  const factor = s.kind === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return floor + (s.peakLr - floor) * Math.max(0, factor);
}

/**
 * Scale all gradients together so their global L2 norm is at most `maxNorm`
 * (torch.nn.utils.clip_grad_norm_, coefficient maxNorm/(norm + 1e-6) capped at 1).
 * Returns the norm before clipping.
 */
export function clipGradNorm(params: Parameters, maxNorm: number): number {
  let sumSquares = 0;
  for (const p of params.values()) {
    const g = p.grad?.data as Float32Array | undefined;
    if (g) for (let i = 0; i < g.length; i++) sumSquares += g[i] * g[i];
  }
  const norm = Math.sqrt(sumSquares);
  const coefficient = maxNorm / (norm + 1e-6);
  if (coefficient < 1) {
    for (const p of params.values()) {
      const g = p.grad?.data as Float32Array | undefined;
      if (g) for (let i = 0; i < g.length; i++) g[i] *= coefficient;
    }
  }
  return norm;
}

/**
 * Freeze the parameters `frozen` selects (e.g. the embeddings and lower layers
 * of a pretrained encoder being fine-tuned): they stop requiring gradients, so
 * the tape does not reach them, and the returned map of the rest is what an
 * optimizer should update.
 */
export function trainableParameters(params: ReadonlyMap<string, Tensor>, frozen: (name: string) => boolean): Map<string, Tensor> {
  const trainable = new Map<string, Tensor>();
  for (const [name, p] of params) {
    p.requireGrad(!frozen(name));
    if (p.requiresGrad) trainable.set(name, p);
  }
  return trainable;
}
