import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { generate } from '../../src/generation/generate.js';
import type { DecodingSession, GenerativeModel, SessionInputs } from '../../src/generation/types.js';
import { kernelInfo, useFastestKernel } from '../../src/kernels/index.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { Gpt2Model, parseGpt2Config } from '../../src/models/gpt2.js';
import { LlamaModel, parseLlamaConfig } from '../../src/models/llama.js';
import { CausalLMSession, idsTensor, positionIdsFromMask, type CausalLM } from '../../src/nn/causal-lm.js';
import { Hooks } from '../../src/nn/hooks.js';
import { KVCache } from '../../src/nn/kv-cache.js';
import { Weights, type LinearDtype } from '../../src/nn/weights.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { randomArray } from '../helpers/random.js';
import { HF_TINY } from '../helpers/shared.js';
import { countTypedArrays, firstDifference, onTypeScriptOps, outsideWasmKernel } from '../helpers/typed-arrays.js';

const fixtures = HF_TINY;

type Model = CausalLM & GenerativeModel;

async function fixtureModel(family: 'gpt2' | 'llama', linearDtype: LinearDtype = 'f32'): Promise<Model> {
  const dir = join(fixtures, family);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const weights = Weights.from(new Map(await readSafetensors(nodeFileSystem, join(dir, 'model.safetensors'))), dir, { linearDtype });
  return family === 'gpt2' ? new Gpt2Model(parseGpt2Config(config), weights) : new LlamaModel(parseLlamaConfig(config), weights);
}

/**
 * The session as it was before it had buffers of its own: every step a plain
 * forward pass that allocates its mask, positions, intermediates and logits.
 * The yardstick the buffered session must match bit for bit.
 */
class AllocatingSession implements DecodingSession {
  private readonly cache: KVCache;
  private mask: number[][] = [];
  private started = false;

  constructor(
    private readonly model: CausalLM,
    inputs: SessionInputs,
  ) {
    this.cache = new KVCache(model.numLayers);
    for (const row of inputs.attentionMask) for (let i = 0; i < inputs.expandBy; i++) this.mask.push([...row]);
  }

  step(ids: readonly (readonly number[])[]): Tensor {
    const n = ids[0].length;
    if (this.started) for (const row of this.mask) for (let i = 0; i < n; i++) row.push(1);
    this.started = true;
    const { logits } = this.model.forward(idsTensor(ids), {
      attentionMask: idsTensor(this.mask),
      positionIds: positionIdsFromMask(this.mask, n),
      cache: this.cache,
      lastOnly: true,
      outputAttentions: false,
    });
    return logits.reshape([ids.length, logits.shape[2]]);
  }

  reorder(indices: readonly number[]): void {
    this.cache.reorder(indices);
    this.mask = indices.map((i) => [...this.mask[i]]);
  }

  truncate(length: number): void {
    this.cache.truncate(length);
    this.mask = this.mask.map((row) => row.slice(0, length));
  }
}

/** The same model generating through allocating sessions. */
function allocating(model: Model): GenerativeModel {
  return { isEncoderDecoder: false, vocabSize: model.vocabSize, startSession: (inputs) => new AllocatingSession(model, inputs) };
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

// Left-padded prompts of three lengths, as generate() pads a batch.
const PROMPTS: SessionInputs = {
  inputIds: [
    [0, 0, 5, 17, 33, 9],
    [3, 8, 21, 40, 2, 11],
    [0, 0, 0, 0, 60, 7],
  ],
  attentionMask: [
    [0, 0, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1],
    [0, 0, 0, 0, 1, 1],
  ],
  expandBy: 1,
};

const CASES: { family: 'gpt2' | 'llama'; dtype: LinearDtype }[] = [
  { family: 'gpt2', dtype: 'f32' },
  { family: 'gpt2', dtype: 'bf16' },
  { family: 'gpt2', dtype: 'int8' },
  { family: 'llama', dtype: 'f32' },
  { family: 'llama', dtype: 'bf16' },
  { family: 'llama', dtype: 'int8' },
];

for (const { family, dtype } of CASES) {
  test(`${family} (${dtype} weights): 40 decode steps on the session's buffers give the allocating pass's logits bit for bit, through a reorder and a truncate`, async () => {
    await useFastestKernel();
    const model = await fixtureModel(family, dtype);
    const buffered = new CausalLMSession(model, PROMPTS);
    const plain = new AllocatingSession(model, PROMPTS);
    let logits = buffered.step(PROMPTS.inputIds);
    assert.equal(firstDifference(logits, plain.step(PROMPTS.inputIds)), -1, 'prompt logits differ');
    for (let step = 0; step < 40; step++) {
      if (step === 12) {
        buffered.reorder([2, 0, 0]);
        plain.reorder([2, 0, 0]);
      }
      if (step === 25) {
        buffered.truncate(buffered.length - 7);
        plain.truncate(buffered.length);
      }
      // Greedy on the allocating pass's logits, so both sessions are fed the same ids.
      const expected = plain.step(argmaxRows(logits));
      logits = buffered.step(argmaxRows(logits));
      const at = firstDifference(logits, expected);
      assert.equal(at, -1, `step ${step}: logit ${at} is ${logits.f32()[at]}, the allocating pass gives ${expected.f32()[at]}`);
    }
  });
}

for (const family of ['gpt2', 'llama'] as const) {
  test(`${family}: beam search and sampling through the buffered session return the allocating session's sequences, scores and logits`, async () => {
    await useFastestKernel();
    const model = await fixtureModel(family);
    const inputs = { inputIds: PROMPTS.inputIds, attentionMask: PROMPTS.attentionMask };
    const runs = [
      { numBeams: 3, numReturnSequences: 2, maxNewTokens: 14, outputScores: true, outputLogits: true, padTokenId: 0, eosTokenId: 2 },
      { doSample: true, seed: 7, numReturnSequences: 2, maxNewTokens: 14, outputScores: true, outputLogits: true, padTokenId: 0 },
    ];
    for (const options of runs) {
      const got = generate(model, inputs, options);
      const want = generate(allocating(model), inputs, options);
      assert.deepEqual(got.sequences, want.sequences);
      assert.deepEqual(got.sequencesScores, want.sequencesScores);
      assert.deepEqual(got.tokenLogprobs, want.tokenLogprobs);
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
    test(`${family} (${dtype} weights) on ${path}: a decoded token allocates no typed array once the shapes have settled, and the allocating pass does`, async () => {
      await useFastestKernel();
      const run = typescriptOps ? onTypeScriptOps : <T>(fn: () => T) => fn();
      const model = await fixtureModel(family, dtype);
      run(() => {
        const buffered = new CausalLMSession(model, PROMPTS);
        const plain = new AllocatingSession(model, PROMPTS);
        buffered.step(PROMPTS.inputIds);
        plain.step(PROMPTS.inputIds);
        const feed = (step: number) => PROMPTS.inputIds.map((_, r) => [(step * 7 + r * 13 + 1) % model.vocabSize]);
        // The first decode step sizes the workspace; the positions stay under the 64 the mask and the KV cache start with.
        buffered.step(feed(0));
        const before = buffered.allocations;
        const { count, where } = countTypedArrays(() => {
          for (let step = 1; step < 30; step++) buffered.step(feed(step));
        });
        // The WebAssembly matmul kernel (GLASSFORMER_NATIVE=0) makes views of its memory per product; nothing else may allocate.
        const counted = kernelInfo().name.startsWith('wasm') ? outsideWasmKernel(where) : where;
        assert.equal(counted.length, 0, `typed arrays made in 29 steps: ${count}, first at ${counted.slice(0, 5).join('; ')}`);
        assert.equal(buffered.allocations, before);
        // The counter sees what the allocating pass makes: about a dozen arrays a layer.
        assert.ok(countTypedArrays(() => plain.step(feed(0))).count >= 10 * model.numLayers);
      });
    });
  }
}

for (const family of ['gpt2', 'llama'] as const) {
  test(`${family} on the TypeScript attention and elementwise ops: 40 decode steps on the session's buffers give the allocating pass's logits bit for bit, through a reorder and a truncate`, async () => {
    await useFastestKernel();
    const model = await fixtureModel(family);
    onTypeScriptOps(() => {
      const buffered = new CausalLMSession(model, PROMPTS);
      const plain = new AllocatingSession(model, PROMPTS);
      let logits = buffered.step(PROMPTS.inputIds);
      assert.equal(firstDifference(logits, plain.step(PROMPTS.inputIds)), -1, 'prompt logits differ');
      for (let step = 0; step < 40; step++) {
        if (step === 12) {
          buffered.reorder([2, 0, 0]);
          plain.reorder([2, 0, 0]);
        }
        if (step === 25) {
          buffered.truncate(buffered.length - 7);
          plain.truncate(buffered.length);
        }
        const expected = plain.step(argmaxRows(logits));
        logits = buffered.step(argmaxRows(logits));
        const at = firstDifference(logits, expected);
        assert.equal(at, -1, `step ${step}: logit ${at} is ${logits.f32()[at]}, the allocating pass gives ${expected.f32()[at]}`);
      }
    });
  });
}

test('the session grows its mask rows and KV cache past their first capacity and keeps decoding bit for bit', async () => {
  await useFastestKernel();
  const model = await fixtureModel('llama');
  const buffered = new CausalLMSession(model, PROMPTS);
  const plain = new AllocatingSession(model, PROMPTS);
  let logits = buffered.step(PROMPTS.inputIds);
  plain.step(PROMPTS.inputIds);
  // 6 + 100 positions: both the mask rows and the KV cache double once (64 → 128).
  for (let step = 0; step < 100; step++) {
    const ids = argmaxRows(logits);
    const expected = plain.step(ids);
    logits = buffered.step(ids);
    assert.equal(firstDifference(logits, expected), -1, `step ${step}`);
  }
  assert.equal(buffered.length, 106);
});

test('a session with a hook attached runs the allocating pass: what the hook keeps is not overwritten by later steps', async () => {
  await useFastestKernel();
  const model = await fixtureModel('gpt2');
  const kept: Tensor[] = [];
  const hooks = new Hooks().add('blocks.0.ln1', (t) => void kept.push(t));
  const session = new CausalLMSession(model, PROMPTS, hooks);
  session.step(PROMPTS.inputIds);
  const first = session.step([[4], [5], [6]]);
  const firstCopy = first.f32().slice();
  const keptCopy = kept[1].f32().slice();
  const second = session.step([[7], [8], [9]]);
  assert.notEqual(second.data, first.data, 'a hooked step returns fresh logits');
  assert.deepEqual(first.f32(), firstCopy);
  assert.deepEqual(kept[1].f32(), keptCopy);
  assert.equal(kept.length, 3);
});

test('decode steps without hooks return the logits in the session buffer, overwritten by the next step', async () => {
  await useFastestKernel();
  const model = await fixtureModel('gpt2');
  const session = new CausalLMSession(model, PROMPTS);
  session.step(PROMPTS.inputIds);
  const first = session.step([[4], [5], [6]]);
  const second = session.step([[7], [8], [9]]);
  assert.equal(second.data, first.data);
});

/** A Llama relative built from the Llama fixture's weights: Qwen3's q/k norms, Qwen2's q/k/v biases, Mistral's window. */
async function llamaVariant(variant: 'qwen3' | 'qwen2' | 'mistral'): Promise<Model> {
  const dir = join(fixtures, 'llama');
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const weights = new Map(await readSafetensors(nodeFileSystem, join(dir, 'model.safetensors')));
  let seed = 11;
  const random = (n: number, amplitude: number) => new Tensor('f32', [n], randomArray(n, seed++).map((x) => x * amplitude));
  for (let i = 0; i < 2; i++) {
    const at = `model.layers.${i}.self_attn`;
    if (variant === 'qwen3') {
      weights.set(`${at}.q_norm.weight`, random(8, 1.5));
      weights.set(`${at}.k_norm.weight`, random(8, 1.5));
    }
    if (variant === 'qwen2') {
      weights.set(`${at}.q_proj.bias`, random(32, 0.5));
      weights.set(`${at}.k_proj.bias`, random(16, 0.5));
      weights.set(`${at}.v_proj.bias`, random(16, 0.5));
    }
  }
  const json = variant === 'mistral' ? { ...config, model_type: 'mistral', sliding_window: 5 } : { ...config, model_type: variant };
  return new LlamaModel(parseLlamaConfig(json), Weights.from(weights, dir));
}

for (const variant of ['qwen3', 'qwen2', 'mistral'] as const) {
  test(`${variant}: decode steps on the session's buffers (heads normalised and rotated in place) match the unfused ops over the whole sequence`, async () => {
    await useFastestKernel();
    const model = await llamaVariant(variant);
    const session = new CausalLMSession(model, PROMPTS);
    const rows = PROMPTS.inputIds.map((r) => [...r]);
    const masks = PROMPTS.attentionMask.map((r) => [...r]);
    let logits = session.step(PROMPTS.inputIds);
    // A hook that changes nothing turns every fused path off: the unfused ops, no cache.
    const unfused = new Hooks().add('blocks.0.ln1', () => undefined);
    for (let step = 0; step < 12; step++) {
      const next = argmaxRows(logits);
      next.forEach(([id], r) => {
        rows[r].push(id);
        masks[r].push(1);
      });
      logits = session.step(next);
      const { logits: full } = model.forward(idsTensor(rows), { attentionMask: idsTensor(masks), positionIds: positionIdsFromMask(masks, rows[0].length), hooks: unfused, lastOnly: true });
      const want = full.f32();
      const got = logits.f32();
      let largest = 0;
      let diff = 0;
      for (let i = 0; i < want.length; i++) {
        largest = Math.max(largest, Math.abs(want[i]));
        diff = Math.max(diff, Math.abs(got[i] - want[i]));
      }
      assert.ok(diff <= 1e-5 * largest, `step ${step}: logits differ by ${diff} (largest ${largest})`);
    }
  });
}
