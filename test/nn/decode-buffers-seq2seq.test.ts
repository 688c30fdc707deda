import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { generate } from '../../src/generation/generate.js';
import type { GenerateOptions } from '../../src/generation/options.js';
import type { DecodingSession, GenerativeModel, SessionInputs } from '../../src/generation/types.js';
import { fusedAttentionKernel } from '../../src/kernels/attention.js';
import { elementwiseKernel } from '../../src/kernels/elementwise.js';
import { kernelInfo, useFastestKernel } from '../../src/kernels/index.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { BartModel, parseBartConfig } from '../../src/models/bart.js';
import { parseT5Config, T5Model } from '../../src/models/t5.js';
import { EncoderDecoderSession, expandedRows, idsTensor, sessionTensors, type EncoderDecoderCache, type EncoderDecoderModel } from '../../src/nn/encoder-decoder-cache.js';
import { Hooks, noHooks, type HookPoints } from '../../src/nn/hooks.js';
import { CachedKV, KVCache } from '../../src/nn/kv-cache.js';
import { relativePositionBias, relativePositionBiasRow } from '../../src/nn/relative-position.js';
import { Weights, type LinearDtype } from '../../src/nn/weights.js';
import { gather, Tensor } from '../../src/tensor/tensor.js';
import { randomArray } from '../helpers/random.js';
import { HF_TINY } from '../helpers/shared.js';
import { countTypedArrays, firstDifference, onTypeScriptOps, outsideWasmKernel } from '../helpers/typed-arrays.js';

type Family = 'bart' | 'marian' | 't5' | 't5/gated-gelu';
type Model = EncoderDecoderModel & GenerativeModel;

async function fixtureModel(family: Family, linearDtype: LinearDtype = 'f32'): Promise<Model> {
  const dir = join(HF_TINY, family);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const weights = Weights.from(new Map(await readSafetensors(nodeFileSystem, join(dir, 'model.safetensors'))), dir, { linearDtype });
  return family.startsWith('t5') ? new T5Model(parseT5Config(config), weights) : new BartModel(parseBartConfig(config), weights);
}

/** The session's cache as `startEncoderDecoderSession` builds it: the encoder once, each row repeated `expandBy` times. */
function startCache(model: Model, inputs: SessionInputs, hooks: HookPoints = noHooks): EncoderDecoderCache {
  const { ids, mask } = sessionTensors(inputs);
  const rows = expandedRows(ids.shape[0], inputs.expandBy);
  return model.startCache(gather(model.encode(ids, mask, hooks).output, 0, rows), gather(mask, 0, rows), hooks, rows);
}

/**
 * The session as it was before it had buffers of its own: every step a plain
 * decoder pass that allocates its intermediates, patterns and logits. The
 * yardstick the buffered session must match bit for bit.
 */
class AllocatingSession implements DecodingSession {
  private cache: EncoderDecoderCache;

  constructor(
    private readonly model: Model,
    inputs: SessionInputs,
  ) {
    this.cache = startCache(model, inputs);
  }

  step(ids: readonly (readonly number[])[]): Tensor {
    const { logits } = this.model.decode(idsTensor(ids), this.cache);
    const [rows, n, vocab] = logits.shape;
    return logits.slice(1, n - 1, n).reshape([rows, vocab]);
  }

  reorder(indices: readonly number[]): void {
    this.cache = this.cache.reorder(indices);
  }
}

/** The buffered session of `model` (what `startSession` returns), typed to reach its allocation count. */
function bufferedSession(model: Model, inputs: SessionInputs, hooks?: HookPoints): EncoderDecoderSession {
  return new EncoderDecoderSession(startCache(model, inputs, hooks), model, hooks);
}

/** The same model generating through allocating sessions. */
function allocating(model: Model): GenerativeModel {
  return { isEncoderDecoder: true, vocabSize: model.vocabSize, startSession: (inputs) => new AllocatingSession(model, inputs) };
}

function argmaxRows(logits: Tensor): number[][] {
  const [rows, vocab] = logits.shape;
  const data = logits.f32();
  return Array.from({ length: rows }, (_, r) => {
    let best = 0;
    for (let v = 1; v < vocab; v++) if (data[r * vocab + v] > data[r * vocab + best]) best = v;
    return [best];
  });
}

// Right-padded inputs of three lengths (as a tokenizer pads a seq2seq batch), each row twice (two beams).
const INPUTS: SessionInputs = {
  inputIds: [
    [5, 17, 33, 9, 41, 2],
    [3, 8, 21, 40, 2, 1],
    [60, 7, 2, 1, 1, 1],
  ],
  attentionMask: [
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 0],
    [1, 1, 1, 0, 0, 0],
  ],
  expandBy: 2,
};

const FAMILIES: Family[] = ['bart', 'marian', 't5', 't5/gated-gelu'];
const CASES: { family: Family; dtype: LinearDtype }[] = FAMILIES.flatMap((family) => (['f32', 'bf16', 'int8'] as const).map((dtype) => ({ family, dtype })));

// BART and Marian learn or compute 64 positions; the first step feeds the decoder start token.
const STEPS = 60;

for (const { family, dtype } of CASES) {
  test(`${family} (${dtype} weights): ${STEPS} decode steps on the session's buffers give the allocating pass's logits bit for bit, through reorders within and across inputs`, async () => {
    await useFastestKernel();
    const model = await fixtureModel(family, dtype);
    const buffered = bufferedSession(model, INPUTS);
    const plain = new AllocatingSession(model, INPUTS);
    const start = INPUTS.inputIds.flatMap(() => [[0], [0]]);
    let expected = plain.step(start);
    let logits = buffered.step(start);
    assert.equal(firstDifference(logits, expected), -1, 'first step logits differ');
    for (let step = 1; step < STEPS; step++) {
      // Beams trading places within their input, then rows taking another input's cache (gathered).
      const order = step === 10 ? [1, 0, 3, 3, 4, 5] : step === 30 ? [4, 5, 0, 1, 2, 2] : undefined;
      if (order) {
        buffered.reorder(order);
        plain.reorder(order);
      }
      // Greedy on the allocating pass's logits, so both sessions are fed the same ids.
      const ids = argmaxRows(expected);
      expected = plain.step(ids);
      logits = buffered.step(ids);
      const at = firstDifference(logits, expected);
      assert.equal(at, -1, `step ${step}: logit ${at} is ${logits.f32()[at]}, the allocating pass gives ${expected.f32()[at]}`);
    }
    assert.equal(buffered.length, STEPS);
  });
}

for (const family of ['bart', 't5'] as const) {
  test(`${family} on the TypeScript attention and elementwise ops: decode steps on the session's buffers give the allocating pass's logits bit for bit, through a reorder`, async () => {
    await useFastestKernel();
    const model = await fixtureModel(family);
    onTypeScriptOps(() => {
      const buffered = bufferedSession(model, INPUTS);
      const plain = new AllocatingSession(model, INPUTS);
      const start = INPUTS.inputIds.flatMap(() => [[0], [0]]);
      let expected = plain.step(start);
      assert.equal(firstDifference(buffered.step(start), expected), -1, 'first step logits differ');
      for (let step = 1; step < 30; step++) {
        if (step === 10) {
          buffered.reorder([1, 0, 3, 3, 4, 5]);
          plain.reorder([1, 0, 3, 3, 4, 5]);
        }
        const ids = argmaxRows(expected);
        expected = plain.step(ids);
        const logits = buffered.step(ids);
        const at = firstDifference(logits, expected);
        assert.equal(at, -1, `step ${step}: logit ${at} is ${logits.f32()[at]}, the allocating pass gives ${expected.f32()[at]}`);
      }
    });
  });
}

const RUNS: GenerateOptions[] = [
  { maxNewTokens: 20, outputScores: true, outputLogits: true },
  { numBeams: 3, numReturnSequences: 2, maxNewTokens: 20, outputScores: true, outputLogits: true, lengthPenalty: 0.8 },
  { doSample: true, seed: 7, numReturnSequences: 2, maxNewTokens: 20, outputScores: true, outputLogits: true, temperature: 0.9 },
];

for (const family of FAMILIES) {
  test(`${family}: greedy, beam search and sampling through the buffered session return the allocating session's sequences, scores and logits`, async () => {
    await useFastestKernel();
    const model = await fixtureModel(family);
    const inputs = { inputIds: INPUTS.inputIds, attentionMask: INPUTS.attentionMask };
    const defaults = family.startsWith('t5') ? { decoderStartTokenId: 0, eosTokenId: 1, padTokenId: 0 } : { decoderStartTokenId: 2, eosTokenId: 2, padTokenId: 1 };
    for (const options of RUNS) {
      const got = generate(model, inputs, options, defaults);
      const want = generate(allocating(model), inputs, options, defaults);
      assert.deepEqual(got.sequences, want.sequences);
      assert.deepEqual(got.sequencesScores, want.sequencesScores);
      assert.equal(firstDifference(got.logits as Tensor, want.logits as Tensor), -1, 'raw logits of some step differ');
      assert.equal(firstDifference(got.scores as Tensor, want.scores as Tensor), -1, 'processed scores of some step differ');
    }
  });
}

// Each case on the fastest kernels (the addon's; without it the WebAssembly
// matmul, the TypeScript fused attention and elementwise loops) and on the
// TypeScript attention and elementwise ops over whatever matmul is loaded.
for (const { family, dtype } of CASES) {
  for (const typescriptOps of [false, true]) {
    const path = typescriptOps ? 'the TypeScript attention and elementwise ops' : 'the fastest kernels';
    test(`${family} (${dtype} weights) on ${path}: a decoded token allocates no typed array once the shapes have settled, beam reorders included, and the allocating pass does`, async (t) => {
      await useFastestKernel();
      const run = typescriptOps ? onTypeScriptOps : <T>(fn: () => T) => fn();
      // BART's post-norm residual (models/bart.ts addNorm) adds through add(), which allocates, when no native kernel fuses it.
      if ((family === 'bart' || family === 'marian') && (typescriptOps || !elementwiseKernel())) t.todo('models/bart.ts addNorm allocates its sum without the native elementwise kernel');
      const model = await fixtureModel(family, dtype);
      run(() => {
        const buffered = bufferedSession(model, INPUTS);
        const plain = new AllocatingSession(model, INPUTS);
        const feed = (step: number) => expandedRows(3, 2).map((_, r) => [(step * 7 + r * 13 + 1) % model.vocabSize]);
        // The first steps size the workspace and the reorder's spare buffers; the positions stay under the KV cache's first 64.
        buffered.step(feed(0));
        buffered.reorder([1, 0, 2, 3, 5, 4]);
        buffered.step(feed(1));
        plain.step(feed(0));
        const before = buffered.allocations;
        const { count, where } = countTypedArrays(() => {
          for (let step = 2; step < 40; step++) {
            if (step % 3 === 0) buffered.reorder([0, 0, 3, 2, 4, 4]);
            buffered.step(feed(step));
          }
        });
        // The WebAssembly matmul kernel (GLASSFORMER_NATIVE=0) makes views of its memory per product; nothing else may allocate.
        const counted = kernelInfo().name.startsWith('wasm') ? outsideWasmKernel(where) : where;
        assert.equal(counted.length, 0, `typed arrays made in 38 steps: ${count}, first at ${counted.slice(0, 5).join('; ')}`);
        assert.equal(buffered.allocations, before);
        // The counter sees what the allocating pass makes: about a dozen arrays a layer.
        assert.ok(countTypedArrays(() => plain.step(feed(0))).count >= 20);
      });
    });
  }
}

test('T5: the session grows its KV cache and position-bias rows past their first capacity and keeps decoding bit for bit', async () => {
  await useFastestKernel();
  const model = await fixtureModel('t5');
  const inputs = { ...INPUTS, expandBy: 1 };
  const buffered = bufferedSession(model, inputs);
  const plain = new AllocatingSession(model, inputs);
  let ids = [[0], [0], [0]];
  // 150 positions: the KV cache doubles twice (64 → 256), and distances pass max_distance (128), where buckets saturate.
  for (let step = 0; step < 150; step++) {
    const expected = plain.step(ids);
    const logits = buffered.step(ids);
    assert.equal(firstDifference(logits, expected), -1, `step ${step}`);
    ids = argmaxRows(expected);
  }
});

test("T5's position-bias row of one decoder step holds relativePositionBias's values, head after head", async () => {
  const model = (await fixtureModel('t5')) as T5Model;
  const table = model.decoderRelativeBias;
  const heads = table.shape[1];
  const options = { bidirectional: false, numBuckets: 32, maxDistance: 128 };
  for (const keys of [1, 2, 17, 40, 200]) {
    const row = new Float32Array(heads * keys + 3).fill(Number.NaN);
    relativePositionBiasRow(table, keys, options, row);
    const want = relativePositionBias(table, 1, keys, options, keys - 1).f32(); // [1, heads, 1, keys]
    assert.deepEqual(row.subarray(0, heads * keys), want);
    assert.ok(row.subarray(heads * keys).every(Number.isNaN), 'nothing written past the row');
  }
  assert.throws(() => relativePositionBiasRow(table, 5, options, new Float32Array(heads * 5 - 1)), /holds 19 floats/);
});

for (const family of FAMILIES) {
  test(`${family}: a hooked session sees every step's self- and cross-attention patterns, returns fresh logits, and agrees with the buffered session`, async () => {
    await useFastestKernel();
    const model = await fixtureModel(family);
    const inputs = { ...INPUTS, expandBy: 1 };
    const patterns: string[] = [];
    const hooks = new Hooks().add(/^decoder\.blocks\.1\.(attn|cross_attn)\.pattern$/, (p, name) => void patterns.push(`${name} [${p.shape.join(', ')}]`));
    const hooked = bufferedSession(model, inputs, hooks);
    const buffered = bufferedSession(model, inputs);
    let ids = [[0], [0], [0]];
    const kept: Tensor[] = [];
    for (let step = 0; step < 6; step++) {
      const seen = hooked.step(ids);
      const logits = buffered.step(ids);
      kept.push(seen);
      const want = seen.f32();
      const got = logits.f32();
      let largest = 0;
      let diff = 0;
      for (let i = 0; i < want.length; i++) {
        largest = Math.max(largest, Math.abs(want[i]));
        diff = Math.max(diff, Math.abs(got[i] - want[i]));
      }
      // The hooked steps run the unfused ops (separate scores, softmax, weighted sum): the same values to f32 rounding.
      assert.ok(diff <= 1e-5 * largest, `step ${step}: logits differ by ${diff} (largest ${largest})`);
      ids = argmaxRows(logits);
    }
    assert.deepEqual(patterns.slice(-2), ['decoder.blocks.1.attn.pattern [3, 4, 1, 6]', 'decoder.blocks.1.cross_attn.pattern [3, 4, 1, 6]']);
    assert.equal(patterns.length, 12);
    assert.equal(new Set(kept.map((t) => t.data)).size, kept.length, 'every hooked step returns its own logits');
  });
}

test('decode steps without hooks return the logits in the session buffer, overwritten by the next step; decode() without buffers gives the patterns', async () => {
  await useFastestKernel();
  const model = await fixtureModel('bart');
  const session = bufferedSession(model, INPUTS);
  const first = session.step(expandedRows(3, 2).map(() => [2]));
  const second = session.step(expandedRows(3, 2).map(() => [7]));
  assert.equal(second.data, first.data);
  const cache = startCache(model, INPUTS);
  const plain = model.decode(idsTensor(expandedRows(3, 2).map(() => [2])), cache);
  assert.equal(plain.attentions.length, 2);
  assert.deepEqual(plain.crossAttentions[1].shape, [6, 4, 1, 6]);
  const quiet = model.decode(idsTensor(expandedRows(3, 2).map(() => [7])), cache, noHooks, { outputAttentions: false });
  // The fused kernel skips the patterns nobody asked for; the unfused ops (no addon) compute them on the way.
  const computed = fusedAttentionKernel() ? 0 : 2;
  assert.deepEqual([quiet.attentions.length, quiet.crossAttentions.length], [computed, computed]);
});

test('KV cache reorders in place (rows saved behind the buffer when a cycle needs them) stay exact across growth, and allocate nothing after the first', () => {
  const [batch, heads, dHead] = [3, 2, 5];
  const cache = new KVCache(1);
  // The reference: every appended position kept per batch row, reordered as plain arrays.
  let rows: number[][][] = Array.from({ length: batch }, () => []);
  let seed = 1;
  const append = (n: number) => {
    const key = new Tensor('f32', [batch, heads, n, dHead], randomArray(batch * heads * n * dHead, seed++));
    cache.append(0, key, key);
    for (let b = 0; b < batch; b++) rows[b].push(Array.from(key.f32().subarray(b * heads * n * dHead, (b + 1) * heads * n * dHead)));
  };
  const reorder = (indices: number[]) => {
    cache.reorder(indices);
    rows = indices.map((r) => rows[r].map((block) => [...block]));
  };
  const check = (what: string) => {
    const layer = cache.layers[0] as CachedKV;
    // Gather the reference [batch, heads, length, dHead] from the appended blocks [heads, n, dHead].
    const want: number[] = [];
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < heads; h++) {
        for (const block of rows[b]) {
          const n = block.length / (heads * dHead);
          want.push(...block.slice(h * n * dHead, (h + 1) * n * dHead));
        }
      }
    }
    assert.deepEqual([...layer.key.f32()], want.map(Math.fround), `${what}: keys`);
    assert.deepEqual([...layer.value.f32()], want.map(Math.fround), `${what}: values`);
  };
  append(40);
  reorder([2, 0, 0]);
  check('first reorder');
  append(1);
  const { count } = countTypedArrays(() => {
    reorder([1, 1, 2]);
    reorder([0, 2, 1]);
  });
  assert.equal(count, 0, 'reorders after the first make no typed array');
  check('reorders in place');
  append(30); // 71 positions: the buffers double past 64, the halves are made again at the next reorder
  reorder([2, 1, 0]);
  check('reorder after growth');
  reorder([0, 0, 0]);
  check('every row from one');
});

for (const family of FAMILIES) {
  test(`${family}: the session's encoder pass skips the patterns nobody reads and gives the same output bits`, async () => {
    await useFastestKernel();
    const model = await fixtureModel(family);
    const { ids, mask } = sessionTensors(INPUTS);
    const full = model.encode(ids, mask);
    const quiet = model.encode(ids, mask, noHooks, { outputAttentions: false });
    assert.equal(firstDifference(quiet.output, full.output), -1);
    assert.equal(full.attentions.length, 2);
    // The fused kernel skips them; the unfused ops (no addon) compute them on the way.
    assert.equal(quiet.attentions.length, fusedAttentionKernel() ? 0 : 2);
  });
}
