import assert from 'node:assert/strict';
import { backward, noGrad } from '../../src/tensor/autograd.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Random } from '../../src/train/random.js';

/** A tensor of standard-normal values, seeded. */
export function randn(shape: readonly number[], random: Random, scale = 1): Tensor {
  const size = shape.reduce((n, d) => n * d, 1);
  return new Tensor('f32', shape, Float32Array.from({ length: size }, () => random.normal() * scale));
}

/** Σ out ⊙ w in f64: a scalar whose gradient with respect to `out` is w. */
function project(out: Tensor, w: Float32Array): number {
  const o = out.f32();
  let s = 0;
  for (let i = 0; i < o.length; i++) s += o[i] * w[i];
  return s;
}

export interface GradCheckOptions {
  /** Finite-difference step. */
  h?: number;
  /** Allowed |analytic − numeric| ≤ atol + rtol·|numeric|. */
  atol?: number;
  rtol?: number;
  /** Check at most this many elements per input (chosen at random); all when absent. */
  samples?: number;
  seed?: number;
}

/**
 * Compare the tape's gradient of Σ f(inputs) ⊙ w (w random) with central finite
 * differences, element by element, for every input that requires gradients.
 * The values are f32, so the tolerance is that of f32 central differences.
 */
export function gradCheck(f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], options: GradCheckOptions = {}): void {
  const h = options.h ?? 1e-2;
  const atol = options.atol ?? 2e-3;
  const rtol = options.rtol ?? 2e-2;
  const random = new Random(options.seed ?? 7);
  for (const x of inputs) x.grad = undefined;
  const out = f(...inputs);
  const w = Float32Array.from({ length: out.size }, () => random.normal());
  backward(out, new Tensor('f32', out.shape, w));
  inputs.forEach((x, which) => {
    if (!x.requiresGrad) return;
    assert.ok(x.grad, `input ${which} received no gradient`);
    const data = x.data as Float32Array;
    const analytic = x.grad.f32();
    const indices = options.samples && options.samples < data.length ? Array.from({ length: options.samples }, () => random.int(data.length)) : data.keys();
    for (const i of indices) {
      const saved = data[i];
      data[i] = saved + h;
      const plus = noGrad(() => project(f(...inputs), w));
      data[i] = saved - h;
      const minus = noGrad(() => project(f(...inputs), w));
      data[i] = saved;
      const numeric = (plus - minus) / (2 * h);
      assert.ok(
        Math.abs(analytic[i] - numeric) <= atol + rtol * Math.abs(numeric),
        `input ${which} element ${i}: analytic ${analytic[i]} vs finite difference ${numeric}`,
      );
    }
  });
}
