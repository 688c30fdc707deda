import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BINARY_OPS, UNARY_KINDS, binaryLayout, elementwiseKernel, permuteLayout, setElementwiseKernel, type ElementwiseKernel } from '../../src/kernels/elementwise.js';
import { useFastestKernel } from '../../src/kernels/index.js';
import { loadNativeKernel } from '../../src/kernels/native.js';
import { ShapeError, UnsupportedError } from '../../src/errors.js';
import {
  F32_MIN,
  activateGatedInPlace,
  activateInPlace,
  activation,
  activationInto,
  add,
  addInto,
  div,
  gelu,
  geluTanh,
  layerNorm,
  layerNormInto,
  mul,
  mulInto,
  relu,
  rmsNorm,
  rmsNormInto,
  scale,
  scaleInto,
  silu,
  softmax,
  softmaxInto,
  sub,
} from '../../src/ops/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { forEachIsa } from '../helpers/native.js';

/** Deterministic values in [-amplitude, amplitude) (an LCG), so a failure reproduces. */
function random(shape: number[], seed: number, amplitude = 1): Tensor {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  let state = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = (state / 2 ** 31 - 1) * amplitude;
  }
  return new Tensor('f32', shape, data);
}

/** The native kernel once the addon is loaded, or undefined (the tests then check nothing native). */
async function native(): Promise<ElementwiseKernel | undefined> {
  await useFastestKernel();
  return elementwiseKernel();
}

/** `fn` with the fused kernel switched off: the TypeScript ops, the reference. */
function reference<T>(fn: () => T): T {
  const previous = setElementwiseKernel(undefined);
  try {
    return fn();
  } finally {
    setElementwiseKernel(previous);
  }
}

/** |actual − expected| ≤ relative·|expected| + absolute at every index (NaN only against NaN). */
function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, relative: number, absolute = 0): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i];
    const a = actual[i];
    if (Number.isNaN(e)) {
      assert.ok(Number.isNaN(a), `${what}[${i}]: ${a} vs NaN`);
      continue;
    }
    assert.ok(Math.abs(a - e) <= relative * Math.abs(e) + absolute || a === e, `${what}[${i}]: ${a} vs ${e}`);
  }
}

/** erfc(z) to about 1e-13 relative in f64: the Maclaurin series of erf below 2.5, a continued fraction above. */
function exactErfc(z: number): number {
  if (z < 0) return 2 - exactErfc(-z);
  if (z < 2.5) {
    let term = z;
    let sum = z;
    for (let n = 1; n < 80; n++) {
      term *= (-z * z) / n;
      sum += term / (2 * n + 1);
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc z = e^(−z²)/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …)))), evaluated from the bottom.
  let fraction = z;
  for (let k = 200; k >= 1; k--) fraction = z + k / 2 / fraction;
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / fraction;
}

/**
 * The TypeScript GELU's erf (Abramowitz & Stegun 7.1.26) is within 1.5e-7
 * absolute, so Φ within 0.75e-7: its values agree with the accurate ones to
 * 0.75e-7·|x| (which dominates in the negative tail) plus f32 rounding.
 */
function assertGeluClose(fused: Float32Array, typescript: Float32Array, x: Float32Array, what: string): void {
  for (let i = 0; i < x.length; i++) {
    assert.ok(Math.abs(fused[i] - typescript[i]) <= 0.8e-7 * Math.abs(x[i]) + 2.4e-7 * Math.abs(typescript[i]), `gelu(${x[i]}) on ${what}: ${fused[i]} vs ${typescript[i]}`);
  }
}

/** Values across GELU's range, both tails included, and the awkward points. */
function activationInputs(): Tensor {
  const values = Array.from(random([4099], 11, 9).f32());
  values.push(0, -0, 1e-30, -1e-30, 1e-8, -1e-8, -12, -13.5, 12, 20, -20, 88, -88);
  return new Tensor('f32', [values.length], Float32Array.from(values));
}

describe('fused elementwise kernels', () => {
  test('the native addon provides them once the fastest kernel is chosen (unless GLASSFORMER_NATIVE=0)', async () => {
    await useFastestKernel();
    if (process.env.GLASSFORMER_NATIVE === '0') {
      assert.equal(elementwiseKernel(), undefined);
      return;
    }
    assert.ok(loadNativeKernel().kernel, 'the native addon did not load: npm install builds it (node scripts/build-native.mjs)');
    assert.ok(elementwiseKernel());
  });

  test('GELU is within 2 f32 ulps of x·Φ(x) with the exact erfc, on every ISA, and agrees with the TypeScript op', async () => {
    if (!(await native())) return;
    const x = activationInputs();
    const exact = Float64Array.from(x.f32(), (v) => 0.5 * v * exactErfc(-v * Math.SQRT1_2));
      const typescript = reference(() => gelu(x)).f32();
    forEachIsa((isa) => {
      const fused = gelu(x).f32();
      // 1.2e-7 from erfc (Numerical Recipes' erfcc), 6e-8 from rounding to f32.
      assertClose(fused, exact, `gelu on ${isa} vs exact`, 2.4e-7, 1e-44);
      assertGeluClose(fused, typescript, x.f32(), isa);
    });
  });

  test('GELU-tanh, SiLU, ReLU and scale equal the TypeScript ops to f32 rounding on every ISA', async () => {
    if (!(await native())) return;
    const x = activationInputs();
    const cases: [string, (t: Tensor) => Tensor, number, number][] = [
      // The TypeScript tanh form loses its last digits where 1 + tanh(u) cancels (x below about −5).
      ['geluTanh', geluTanh, 1.2e-7, 1e-15],
      ['silu', silu, 1.2e-7, 0],
      ['relu', relu, 0, 0],
      ['scale 0.125', (t) => scale(t, 0.125), 0, 0],
      ['scale 1/√3', (t) => scale(t, 1 / Math.sqrt(3)), 0, 0],
    ];
    forEachIsa((isa) => {
      for (const [name, op, relative, absolute] of cases) {
        assertClose(op(x).f32(), reference(() => op(x)).f32(), `${name} on ${isa}`, relative, absolute);
      }
    });
  });

  test('activations keep the shape, take empty tensors and are split across threads without changing a value', async () => {
    const kernel = await native();
    if (!kernel) return;
    const big = random([3, 127, 769], 3, 6); // 292 869 values: several chunks
    const expected = reference(() => gelu(big));
    const out = gelu(big);
    assert.deepEqual(out.shape, [3, 127, 769]);
    assertGeluClose(out.f32(), expected.f32(), big.f32(), 'gelu [3, 127, 769]');
    const addon = loadNativeKernel().kernel!;
    const threads = addon.threads();
    try {
      addon.setThreads(1);
      assert.deepEqual(gelu(big).f32(), out.f32());
    } finally {
      addon.setThreads(threads);
    }
    assert.deepEqual(gelu(Tensor.zeros([2, 0])).shape, [2, 0]);
  });

  test('the gate of SiLU·gate multiplies the activation rounded to f32, as mul(silu(x), up) does', async () => {
    const kernel = await native();
    if (!kernel) return;
    const x = random([5, 301], 5, 6);
    const up = random([5, 301], 6, 2);
    const expected = reference(() => mul(silu(x), up)).f32();
    forEachIsa((isa) => {
      for (const [kind, op] of [
        ['silu', silu],
        ['gelu', gelu],
      ] as const) {
        const out = new Float32Array(x.size);
        kernel.unary(UNARY_KINDS[kind], x.f32(), up.f32(), out, x.size, 0);
        const unfused = kind === 'silu' ? expected : mul(op(x), up).f32();
        assertClose(out, unfused, `${kind}·gate on ${isa}`, kind === 'silu' ? 2.4e-7 : 0, 0);
      }
    });
  });

  for (const shape of [
    [4, 768],
    [2, 3, 37],
    [97, 768], // 74 496 values: split across threads
    [5, 1],
    [0, 16],
  ]) {
    test(`layerNorm and rmsNorm equal the TypeScript ops on every ISA: [${shape.join(', ')}]`, async () => {
      if (!(await native())) return;
      const d = shape[shape.length - 1];
      const x = random(shape, 21, 4);
      // An offset mean, the case a one-pass variance gets wrong.
      const shifted = new Tensor('f32', shape, x.f32().map((v) => v + 300));
      const gamma = random([d], 22, 2);
      const beta = random([d], 23);
      forEachIsa((isa) => {
        for (const [name, input] of [
          ['x', x],
          ['x + 300', shifted],
        ] as const) {
          assertClose(layerNorm(input, gamma, beta, 1e-12).f32(), reference(() => layerNorm(input, gamma, beta, 1e-12)).f32(), `layerNorm(${name}) on ${isa}`, 1e-6, 1e-6);
          assertClose(layerNorm(input, gamma, undefined, 1e-5).f32(), reference(() => layerNorm(input, gamma, undefined, 1e-5)).f32(), `layerNorm(${name}) without bias on ${isa}`, 1e-6, 1e-6);
          assertClose(rmsNorm(input, gamma, 1e-6).f32(), reference(() => rmsNorm(input, gamma, 1e-6)).f32(), `rmsNorm(${name}) on ${isa}`, 1e-6, 1e-7);
        }
      });
    });
  }

  test('layerNorm with a fused residual writes x + residual and normalises it, as add() then layerNorm()', async () => {
    const kernel = await native();
    if (!kernel) return;
    const [rows, d] = [33, 770];
    const x = random([rows, d], 31, 3);
    const residual = random([rows, d], 32, 3);
    const gamma = random([d], 33);
    const beta = random([d], 34);
    const sum = reference(() => add(x, residual));
    const expected = reference(() => layerNorm(sum, gamma, beta, 1e-12)).f32();
    forEachIsa((isa) => {
      const out = new Float32Array(rows * d);
      const written = new Float32Array(rows * d);
      kernel.layerNorm(x.f32(), residual.f32(), written, gamma.f32(), beta.f32(), out, rows, d, 1e-12);
      assert.deepEqual(written, sum.f32(), `sum on ${isa}`);
      assertClose(out, expected, `layerNorm(x + residual) on ${isa}`, 1e-6, 1e-6);
      const inPlace = x.f32().slice();
      kernel.layerNorm(inPlace, residual.f32(), null, gamma.f32(), beta.f32(), inPlace, rows, d, 1e-12);
      assertClose(inPlace, expected, `in place on ${isa}`, 1e-6, 1e-6);
    });
  });

  test('softmax equals the TypeScript op on every ISA, masked rows and all −∞ rows included', async () => {
    if (!(await native())) return;
    const x = random([6, 5, 131], 41, 12);
    const data = x.f32();
    for (let j = 0; j < 131; j++) data[j] = -Infinity; // row 0: nothing visible → all 0
    for (let j = 0; j < 131; j += 2) data[131 + j] = F32_MIN; // row 1: half masked
    data[262] = 80; // row 2: one dominant score
    const expected = reference(() => softmax(x)).f32();
    assert.deepEqual(Array.from(expected.subarray(0, 131)), new Array<number>(131).fill(0));
    forEachIsa((isa) => {
      assertClose(softmax(x).f32(), expected, `softmax on ${isa}`, 2e-7, 1e-45);
      assertClose(softmax(random([1, 3], 42)).f32(), reference(() => softmax(random([1, 3], 42))).f32(), `softmax [1, 3] on ${isa}`, 2e-7, 0);
    });
  });

  test('softmax with the scale and a broadcast mask fused equals scale(), add(mask) then softmax()', async () => {
    const kernel = await native();
    if (!kernel) return;
    const [batch, heads, queries, keys] = [3, 4, 9, 67];
    const scores = random([batch, heads, queries, keys], 51, 5);
    const masks: [string, Tensor, number[]][] = [];
    const padding = new Float32Array(batch * keys);
    for (let b = 0; b < batch; b++) for (let j = keys - 7 * b; j < keys; j++) padding[b * keys + j] = F32_MIN;
    masks.push(['padding [B, 1, 1, K]', new Tensor('f32', [batch, 1, 1, keys], padding), [keys, 0, 0]]);
    masks.push(['causal [1, 1, Q, K]', random([1, 1, queries, keys], 52, 3), [0, 0, keys]]);
    masks.push(['full [B, H, Q, K]', random([batch, heads, queries, keys], 53, 3), [heads * queries * keys, queries * keys, keys]]);
    const dims = Float64Array.from([heads, queries]);
    forEachIsa((isa) => {
      for (const [name, mask, strides] of masks) {
        const expected = reference(() => softmax(add(scale(scores, 0.125), mask))).f32();
        const out = new Float32Array(scores.size);
        kernel.softmax(scores.f32(), out, batch * heads * queries, keys, 0.125, mask.f32(), Float64Array.from(strides), dims);
        assertClose(out, expected, `${name} on ${isa}`, 2e-7, 1e-45);
      }
    });
  });

  const broadcasts: [string, number[], number[]][] = [
    ['same shape', [4, 5, 33], [4, 5, 33]],
    ['bias over rows', [7, 3, 768], [768]],
    ['attention mask', [3, 4, 9, 67], [3, 1, 1, 67]],
    ['causal mask', [2, 4, 9, 9], [1, 1, 9, 9]],
    ['column', [5, 17], [5, 1]],
    ['outer', [6, 1], [1, 13]],
    ['scalar', [4, 33], []],
    ['middle axis', [2, 3, 4], [1, 3, 1]],
    ['five axes, not merged', [2, 3, 2, 3, 5], [2, 1, 2, 1, 5]],
    ['large, split across threads', [130, 768], [768]],
    ['empty', [0, 8], [8]],
  ];
  for (const [name, aShape, bShape] of broadcasts) {
    test(`add, sub, mul and div equal the TypeScript ops bit for bit: ${name}`, async () => {
      if (!(await native())) return;
      const a = random(aShape, 61, 4);
      const b = random(bShape, 62, 4);
      for (const [opName, op] of [
        ['add', add],
        ['sub', sub],
        ['mul', mul],
        ['div', div],
      ] as const) {
        const expected = reference(() => op(a, b));
        assert.deepEqual(op(a, b).shape, expected.shape, `${opName} ${name}`);
        assert.deepEqual(op(a, b).f32(), expected.f32(), `${opName} ${name}`);
        assert.deepEqual(op(b, a).f32(), reference(() => op(b, a)).f32(), `${opName} ${name}, operands swapped`);
      }
    });
  }

  test('binary updates its first operand in place when out is a', async () => {
    const kernel = await native();
    if (!kernel) return;
    const a = random([9, 100], 71, 3);
    const bias = random([100], 72);
    const expected = reference(() => add(a, bias)).f32();
    const y = a.f32().slice();
    kernel.binary(BINARY_OPS.add, y, bias.f32(), y, binaryLayout([9, 100], [100], [9, 100])!);
    assert.deepEqual(y, expected);
  });

  test('binaryLayout merges the axes both operands walk as one and pads to four', () => {
    assert.deepEqual(Array.from(binaryLayout([2, 3, 4], [2, 3, 4], [2, 3, 4])!), [1, 1, 1, 24, 0, 0, 0, 1, 0, 0, 0, 1]);
    assert.deepEqual(Array.from(binaryLayout([4, 6, 8], [8], [4, 6, 8])!), [1, 1, 24, 8, 0, 0, 8, 1, 0, 0, 0, 1]);
    // Attention scores [B, H, Q, K] and a padding mask [B, 1, 1, K]: H and Q merge.
    assert.deepEqual(Array.from(binaryLayout([3, 4, 9, 67], [3, 1, 1, 67], [3, 4, 9, 67])!), [1, 3, 36, 67, 0, 2412, 67, 1, 0, 67, 0, 1]);
    assert.equal(binaryLayout([2, 3, 2, 3, 5], [2, 1, 2, 1, 5], [2, 3, 2, 3, 5]), undefined);
    assert.equal(binaryLayout([4, 5, 6], [4, 5, 1], [4, 5, 6])?.[11], 0);
  });

  test('ops that record gradients keep the TypeScript path and its tape', async () => {
    if (!(await native())) return;
    const x = random([3, 8], 81).requireGrad();
    const gamma = random([8], 82);
    for (const op of [gelu, geluTanh, silu, relu, softmax, (t: Tensor) => layerNorm(t, gamma, undefined, 1e-5), (t: Tensor) => add(t, gamma)]) {
      const y = op(x);
      assert.ok(y.gradNode, `${y.gradNode?.op ?? 'an op'} records its backward rule`);
      assert.deepEqual(y.f32(), reference(() => op(x)).f32());
    }
  });

  test('the native functions name the argument when an array is too short or a value is wrong', async () => {
    const kernel = await native();
    if (!kernel) return;
    const x = new Float32Array(12);
    const out = new Float32Array(12);
    assert.throws(() => kernel.layerNorm(x, null, null, new Float32Array(3), null, out, 3, 4, 1e-5), /layerNorm: gamma needs 1x4 elements but has 3/);
    assert.throws(() => kernel.layerNorm(x, null, null, new Float32Array(4), null, new Float32Array(11), 3, 4, 1e-5), /layerNorm: out needs 3x4/);
    assert.throws(() => kernel.layerNorm(x, null, out, new Float32Array(4), null, out, 3, 4, 1e-5), /layerNorm: sum needs a residual/);
    assert.throws(() => kernel.rmsNorm(x, new Float32Array(4), out, 4, 4, 1e-5), /rmsNorm: x needs 4x4 elements but has 12/);
    assert.throws(() => kernel.unary(9, x, null, out, 12, 0), /unary: kind must be/);
    assert.throws(() => kernel.unary(1, x, new Float32Array(2), out, 12, 0), /unary: gate needs 1x12/);
    assert.throws(() => kernel.unary(1, x as unknown as Float32Array, null, new Float64Array(12) as unknown as Float32Array, 12, 0), /unary: out must be a Float32Array/);
    assert.throws(() => kernel.unary(1, x, null, out, -1, 0), /unary: n must be a non-negative integer/);
    assert.throws(() => kernel.softmax(x, out, 3, 4, 1, new Float32Array(4), Float64Array.from([4, 0, 0]), Float64Array.from([1, 1])), /softmax: the mask's strides reach past its end/);
    assert.throws(() => kernel.binary(BINARY_OPS.add, x, new Float32Array(3), out, Float64Array.from([1, 1, 3, 4, 0, 0, 4, 1, 0, 0, 1, 1])), /binary: the strides of b reach past its end/);
    assert.throws(() => kernel.binary(BINARY_OPS.add, x, x, out, Float64Array.from([1, 1, 1, 12, 0, 0, 0, 2, 0, 0, 0, 1])), /binary: the last axis must have stride 0 or 1/);
    assert.throws(() => kernel.binary(7, x, x, out, new Float64Array(12)), /binary: op must be/);
  });

  test('layouts and strides that are not integers below 2^53, or whose extent wraps int64, are refused before any read', async () => {
    const kernel = await native();
    if (!kernel) return;
    const x = new Float32Array(12);
    const out = new Float32Array(12);
    // (3 − 1) · 2^62 wraps int64 to a negative "last element", which passed a
    // `last < length` check and read far outside a.
    const wrapping = Float64Array.from([3, 1, 1, 4, 2 ** 62, 0, 0, 1, 0, 0, 4, 1]);
    assert.throws(() => kernel.binary(BINARY_OPS.add, x, x, out, wrapping), /binary: layout entries must be non-negative integers below 2\^53/);
    for (const bad of [Number.NaN, Infinity, 1e300, 0.5, -1]) {
      const layout = Float64Array.from([1, 1, 3, 4, 0, 0, 4, 1, 0, 0, 4, 1]);
      layout[5] = bad;
      assert.throws(() => kernel.binary(BINARY_OPS.add, x, x, out, layout), /binary: layout entries must be non-negative integers/, `stride ${bad}`);
      assert.throws(() => kernel.permute(x, out, Float64Array.from([1, 1, 3, bad, 0, 0, 4, 1])), /permute: layout entries must be non-negative integers/, `extent ${bad}`);
      assert.throws(() => kernel.softmax(x, out, 3, 4, 1, x, Float64Array.from([4, bad, 0]), Float64Array.from([1, 3])), /softmax: layout entries must be non-negative integers/, `mask stride ${bad}`);
    }
    // Strides just below 2^53 sum past the mask's end in doubles, not modulo 2^64.
    assert.throws(() => kernel.binary(BINARY_OPS.add, x, x, out, Float64Array.from([3, 1, 1, 4, 2 ** 52, 0, 0, 1, 0, 0, 4, 1])), /binary: the strides of a reach past its end/);
    assert.throws(() => kernel.softmax(x, out, 3, 4, 1, x, Float64Array.from([2 ** 52, 0, 0]), Float64Array.from([1, 1])), /softmax: the mask's strides reach past its end/);
    assert.throws(() => kernel.softmax(x, out, 3, 4, 1, x, Float64Array.from([0, 0, 4]), Float64Array.from([2 ** 30, 2 ** 30])), /softmax: maskStrides needs 3 entries and dims 2 positive ones with a product below 2\^53/);
    // In range, the same layout is accepted and adds.
    const y = Float32Array.from({ length: 12 }, (_, i) => i);
    kernel.binary(BINARY_OPS.add, y, y, out, Float64Array.from([1, 1, 3, 4, 0, 0, 4, 1, 0, 0, 4, 1]));
    assert.deepEqual(Array.from(out), Array.from(y, (v) => 2 * v));
  });

  test('the *Into ops write into the given tensor, in place when it is the input, natively and in TypeScript', async () => {
    await native();
    const x = random([6, 130], 91, 3);
    const gamma = random([130], 92);
    const beta = random([130], 93);
    const cases: [string, () => Tensor, (out: Tensor) => Tensor, Tensor][] = [
      ['addInto', () => add(x, beta), (out) => addInto(out, beta, out), x],
      ['addInto, second operand', () => add(beta, x), (out) => addInto(beta, out, out), x],
      ['mulInto, both operands', () => mul(x, x), (out) => mulInto(out, out, out), x],
      ['mulInto', () => mul(x, gamma), (out) => mulInto(out, gamma, out), x],
      ['scaleInto', () => scale(x, 0.3), (out) => scaleInto(out, 0.3, out), x],
      ['activationInto gelu', () => gelu(x), (out) => activationInto('gelu')(out, out), x],
      ['activationInto silu', () => silu(x), (out) => activationInto('silu')(out, out), x],
      ['activationInto gelu_new', () => geluTanh(x), (out) => activationInto('gelu_new')(out, out), x],
      ['activationInto tanh', () => activationInto('tanh')(x, Tensor.zeros([6, 130])), (out) => activationInto('tanh')(out, out), x],
      ['layerNormInto', () => layerNorm(x, gamma, beta, 1e-5), (out) => layerNormInto(out, gamma, beta, 1e-5, out), x],
      ['rmsNormInto', () => rmsNorm(x, gamma, 1e-6), (out) => rmsNormInto(out, gamma, 1e-6, out), x],
      ['softmaxInto', () => softmax(x), (out) => softmaxInto(out, out), x],
    ];
    for (const path of ['native', 'TypeScript']) {
      const run = <T>(fn: () => T): T => (path === 'native' ? fn() : reference(fn));
      for (const [name, fresh, into, input] of cases) {
        const expected = run(fresh);
        const copy = new Tensor('f32', input.shape, input.f32().slice());
        const result = run(() => into(copy));
        assert.equal(result, copy, `${name} (${path}) returns the tensor it wrote`);
        assert.deepEqual(copy.f32(), expected.f32(), `${name} (${path})`);
      }
    }
  });

  test('the *Into ops refuse an out of the wrong shape, one that overlaps an input it is not, and inputs that need gradients', async () => {
    await native();
    const x = random([4, 8], 95);
    const bias = random([8], 96);
    assert.throws(() => addInto(x, bias, Tensor.zeros([4, 9])), (e: unknown) => e instanceof ShapeError && /addInto|add: out/.test(e.message));
    assert.throws(() => activationInto('gelu')(x, Tensor.zeros([32])), ShapeError);
    assert.throws(() => layerNormInto(x, bias, bias, 1e-5, new Tensor('i32', [4, 8], new Int32Array(32))), /must be f32 \[4, 8\]/);
    // A view of the same memory one element on: each write would land on a value still to be read.
    const shifted = new Float32Array(64);
    const a = new Tensor('f32', [4, 8], shifted.subarray(0, 32));
    assert.throws(() => addInto(a, bias, new Tensor('f32', [4, 8], shifted.subarray(4, 36))), /shares memory with the input/);
    assert.throws(() => scaleInto(random([3], 97).requireGrad(), 2, Tensor.zeros([3])), UnsupportedError);
    assert.throws(() => reference(() => scaleInto(random([3], 97).requireGrad(), 2, Tensor.zeros([3]))), UnsupportedError);
  });

  for (const [shape, axes] of [
    [[2, 5, 3, 8], [0, 2, 1, 3]], // split heads: [B, T, H, D] → [B, H, T, D]
    [[2, 3, 5, 8], [0, 2, 1, 3]], // merge heads
    [[4, 130, 12, 64], [0, 2, 1, 3]], // BERT-shaped, split across threads
    [[3, 7], [1, 0]], // a transpose: stride-7 runs
    [[2, 1, 3, 1, 4], [4, 3, 2, 1, 0]], // size-1 axes drop out
    [[0, 4, 2], [1, 0, 2]],
  ] as [number[], number[]][]) {
    test(`permute copies as Tensor.permute does: [${shape.join(', ')}] by [${axes.join(', ')}]`, async () => {
      const kernel = await native();
      if (!kernel) return;
      const x = random(shape, 101);
      const expected = x.permute(axes);
      const out = new Float32Array(x.size);
      kernel.permute(x.f32(), out, permuteLayout(shape, axes)!);
      assert.deepEqual(out, expected.f32());
    });
  }

  test('permuteLayout merges the output axes the input walks as one', () => {
    // Split heads of [B, T, H, D]: rows of D contiguous floats.
    assert.deepEqual(Array.from(permuteLayout([32, 128, 12, 64], [0, 2, 1, 3])!), [32, 12, 128, 64, 98304, 64, 768, 1]);
    assert.equal(permuteLayout([2, 3, 2, 3, 2], [4, 2, 0, 3, 1]), undefined); // five axes that do not merge
    assert.deepEqual(Array.from(permuteLayout([2, 3, 4], [0, 1, 2])!), [1, 1, 1, 24, 0, 0, 0, 1]);
  });

  test('permute names the argument when the layout reaches past x', async () => {
    const kernel = await native();
    if (!kernel) return;
    assert.throws(() => kernel.permute(new Float32Array(6), new Float32Array(6), Float64Array.from([1, 1, 3, 2, 0, 0, 2, 3])), /permute: the strides of x reach past its end/);
    assert.throws(() => kernel.permute(new Float32Array(6), new Float32Array(5), Float64Array.from([1, 1, 3, 2, 0, 0, 1, 3])), /permute: out needs 1x6/);
  });

  test('activateInPlace writes the activation over a temporary, but calls other functions and taped inputs as they are', async () => {
    await native();
    const x = random([5, 70], 111, 4);
    for (const path of ['native', 'TypeScript']) {
      const run = <T>(fn: () => T): T => (path === 'native' ? fn() : reference(fn));
      for (const [name, act] of [
        ['gelu', gelu],
        ['activation("gelu_new")', activation('gelu_new')],
        ['activation("silu")', activation('silu')],
      ] as const) {
        const temporary = new Tensor('f32', x.shape, x.f32().slice());
        const result = run(() => activateInPlace(act, temporary));
        assert.equal(result, temporary, `${name} (${path}) wrote in place`);
        assert.deepEqual(result.f32(), run(() => act(x)).f32(), `${name} (${path})`);
      }
      const kept = new Tensor('f32', x.shape, x.f32().slice());
      const doubled = run(() => activateInPlace((t) => scale(t, 2), kept));
      assert.notEqual(doubled, kept);
      assert.deepEqual(kept.f32(), x.f32(), `an arbitrary function leaves its input alone (${path})`);
      const taped = new Tensor('f32', x.shape, x.f32().slice()).requireGrad();
      const y = run(() => activateInPlace(gelu, taped));
      assert.ok(y !== taped && y.gradNode, `a taped input is not overwritten (${path})`);
      assert.deepEqual(taped.f32(), x.f32());
    }
  });

  test('activateGatedInPlace writes act(t) ⊙ gate over t as mul(act(t), gate) does, in one native pass', async () => {
    await native();
    const x = random([3, 257], 121, 5);
    const up = random([3, 257], 122, 2);
    for (const path of ['native', 'TypeScript']) {
      const run = <T>(fn: () => T): T => (path === 'native' ? fn() : reference(fn));
      forEachIsa((isa) => {
        for (const [name, act] of [
          ['silu', silu],
          ['activation("gelu")', activation('gelu')],
          ['activation("gelu_pytorch_tanh")', activation('gelu_pytorch_tanh')],
          ['relu', relu],
          ['tanh', activation('tanh')],
        ] as const) {
          const temporary = new Tensor('f32', x.shape, x.f32().slice());
          const result = run(() => activateGatedInPlace(act, temporary, up));
          assert.equal(result, temporary, `${name} (${path}, ${isa}) wrote in place`);
          assert.deepEqual(result.f32(), run(() => mul(act(x), up)).f32(), `${name} (${path}, ${isa})`);
        }
      });
      const other = new Tensor('f32', x.shape, x.f32().slice());
      const doubled = run(() => activateGatedInPlace((t) => scale(t, 2), other, up));
      assert.equal(doubled, other, `any function's gated result is written over t (${path})`);
      assert.deepEqual(doubled.f32(), run(() => mul(scale(x, 2), up)).f32());
      const taped = new Tensor('f32', x.shape, x.f32().slice()).requireGrad();
      const y = run(() => activateGatedInPlace(silu, taped, up));
      assert.ok(y !== taped && y.gradNode?.op === 'mul', `a taped input goes through mul on the tape (${path})`);
      assert.deepEqual(taped.f32(), x.f32());
    }
  });
});
