import assert from 'node:assert/strict';
import { test } from 'node:test';
import { elementwiseKernel } from '../../src/kernels/elementwise.js';
import { useFastestKernel } from '../../src/kernels/index.js';
import { FeedForward } from '../../src/nn/feed-forward.js';
import { Hooks } from '../../src/nn/hooks.js';
import { Linear } from '../../src/nn/linear.js';
import { Tensor } from '../../src/tensor/tensor.js';

function random(shape: number[], seed: number, amplitude = 1): Tensor {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  let state = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = amplitude * (state / 2 ** 31 - 1);
  }
  return new Tensor('f32', shape, data);
}

/** A hook on a name no feed-forward uses: the hooks are active, so every op runs unfused and allocates. */
const watching = new Hooks().add('nothing.here', () => undefined);

test('the native elementwise kernel that runs the in-place path is loaded (unless GLASSFORMER_NATIVE=0)', async () => {
  await useFastestKernel();
  if (process.env.GLASSFORMER_NATIVE !== '0') assert.ok(elementwiseKernel(), 'the native addon did not load: npm install builds it (node scripts/build-native.mjs)');
});

for (const name of ['silu', 'gelu_new', 'gelu', 'relu', 'tanh']) {
  for (const gated of [true, false]) {
    test(`${gated ? 'gated ' : ''}${name}: the in-place inference path equals the separate ops`, async () => {
      await useFastestKernel();
      const [d, f] = [12, 37];
      const linear = (seed: number, rows: number, cols: number) => new Linear(random([rows, cols], seed, 0.5), random([rows], seed + 1, 0.2));
      const ff = new FeedForward(linear(1, f, d), linear(3, d, f), name, gated ? linear(5, f, d) : undefined);
      const x = random([2, 3, d], 7);
      const fast = ff.forward(x).f32();
      const reference = ff.forward(x, watching).f32();
      assert.equal(fast.length, 2 * 3 * d);
      for (let i = 0; i < fast.length; i++) assert.ok(Math.abs(fast[i] - reference[i]) <= 1e-6, `${i}: ${fast[i]} vs ${reference[i]}`);
    });
  }
}

test('an unknown activation name is refused when the layer is built', () => {
  const l = new Linear(random([2, 2], 1));
  assert.throws(() => new FeedForward(l, l, 'swishy'), /unknown activation "swishy"/);
});
