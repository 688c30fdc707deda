import { Tensor } from '../src/tensor/tensor.js';

/**
 * Deterministic uniform(−a, a) weights from a small LCG, for benchmarks: the
 * numbers do not matter, only the work, and every run does the same work.
 */
export function randomTensor(shape: number[], amplitude: number, seed: number): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(size);
  let state = seed >>> 0;
  for (let i = 0; i < size; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = (state / 2 ** 32 - 0.5) * 2 * amplitude;
  }
  return new Tensor('f32', shape, data);
}
