import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { generationOptionsFromJson } from '../../src/generation/options.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { loadTraceable } from '../../src/trace/adapters/index.js';
import { traceGeneration, type GenerationEvent } from '../../src/trace/generate.js';
import { ablateHead, runWithHooks } from '../../src/trace/run.js';
import type { TraceableModel } from '../../src/trace/types.js';
import { Hooks } from '../../src/nn/hooks.js';
import { HF_TINY } from '../helpers/shared.js';
import { maxDiff } from '../helpers/compare.js';

type Ids = number[][];

async function fixture(folder: string) {
  const dir = join(HF_TINY, folder);
  const read = async (name: string) => JSON.parse(await nodeFileSystem.readText(join(dir, name))) as Record<string, unknown>;
  return {
    model: await loadTraceable(nodeFileSystem, dir),
    inputs: (await read('inputs.json')) as Record<string, Ids>,
    expectedJson: (await read('expected.json')) as { generate: Record<string, { sequences: Ids }> },
    expected: await readSafetensors(nodeFileSystem, join(dir, 'expected.safetensors')),
    defaults: generationOptionsFromJson(await read('generation_config.json')),
  };
}

async function collect(model: TraceableModel, input: { inputIds: number[]; attentionMask?: number[] }, options: Parameters<typeof traceGeneration>[2]): Promise<GenerationEvent[]> {
  const events: GenerationEvent[] = [];
  for await (const e of traceGeneration(model, input, options)) events.push(e);
  return events;
}

/** Element [step, row, :] of a recorded [steps, rows, vocab] tensor. */
function recordedRow(t: Tensor, step: number, row: number): Float32Array {
  const [, rows, vocab] = t.shape;
  return t.f32().subarray((step * rows + row) * vocab, (step * rows + row + 1) * vocab);
}

test('gpt2: a traced greedy run gives HF\'s ids, logits and each new token\'s attention over the KV cache', async () => {
  const f = await fixture('gpt2');
  const events = await collect(f.model, { inputIds: f.inputs.input_ids[0], attentionMask: f.inputs.attention_mask[0] }, { options: { maxNewTokens: 16 }, defaults: f.defaults });
  const steps = events.filter((e) => e.type === 'step');
  const end = events[events.length - 1];
  assert.equal(events[0].type, 'start');
  assert.ok(end.type === 'end');
  assert.deepEqual(end.ids, f.expectedJson.generate.greedy.sequences[0]);
  assert.equal(steps.length, 16);
  const logits = f.expected.get('generate.greedy.logits') as Tensor;
  steps.forEach((s, k) => {
    assert.ok(maxDiff(s.stages[0].scores, recordedRow(logits, k, 0)) < 1e-4, `step ${k} logits`);
    assert.equal(s.position, 7 + k);
    // Greedy: the chosen token is the argmax and its log-probability is that of the softmax.
    assert.ok(s.logprob <= 0 && Math.abs(s.logprob - s.rawLogprob) < 1e-5);
    const pattern = s.attention.get('blocks.1.attn.pattern') as Tensor;
    assert.deepEqual(pattern.shape, [4, 8 + k]);
    for (let h = 0; h < 4; h++) assert.ok(Math.abs(pattern.at(h).f32().reduce((a, v) => a + v, 0) - 1) < 1e-5);
  });
  // Step 0's rows are the last prompt position's rows of HF's output_attentions.
  const recorded = f.expected.get('attentions.0') as Tensor; // [2, 4, 8, 8]
  const row = recorded.at(0).slice(1, 7, 8).reshape([4, 8]);
  assert.ok(maxDiff((steps[0].attention.get('blocks.0.attn.pattern') as Tensor).f32(), row.f32()) < 1e-5);
});

test('gpt2: the repetition-penalty stage is traced and equals HF\'s processed scores', async () => {
  const f = await fixture('gpt2');
  const events = await collect(f.model, { inputIds: f.inputs.input_ids[0] }, { options: { maxNewTokens: 16, repetitionPenalty: 1.3 }, defaults: f.defaults });
  const start = events[0];
  assert.ok(start.type === 'start');
  assert.deepEqual(start.stages, ['repetition_penalty']);
  const scores = f.expected.get('generate.greedy_repetition_penalty.scores') as Tensor;
  const steps = events.filter((e) => e.type === 'step');
  steps.forEach((s, k) => {
    assert.deepEqual(s.stages.map((x) => x.name), ['logits', 'repetition_penalty']);
    assert.ok(maxDiff(s.stages[1].scores, recordedRow(scores, k, 0)) < 1e-4, `step ${k}`);
  });
  const end = events[events.length - 1];
  assert.ok(end.type === 'end');
  assert.deepEqual(end.ids, f.expectedJson.generate.greedy_repetition_penalty.sequences[0]);
});

test('marian: a traced encoder-decoder run gives HF\'s ids and scores, with cross-attention rows over the source', async () => {
  const f = await fixture('marian');
  const events = await collect(f.model, { inputIds: f.inputs.input_ids[0], attentionMask: f.inputs.attention_mask[0] }, { options: { maxNewTokens: 16 }, defaults: f.defaults });
  const end = events[events.length - 1];
  assert.ok(end.type === 'end');
  assert.deepEqual(end.ids, f.expectedJson.generate.greedy.sequences[0]);
  assert.equal(end.reason, 'eos');
  const steps = events.filter((e) => e.type === 'step');
  const scores = f.expected.get('generate.greedy.scores') as Tensor;
  steps.forEach((s, k) => {
    const final = s.stages[s.stages.length - 1].scores;
    assert.ok(maxDiff(final, recordedRow(scores, k, 0)) < 1e-4, `step ${k}`);
    const cross = s.attention.get('decoder.blocks.0.cross_attn.pattern') as Tensor;
    assert.deepEqual(cross.shape, [4, 12]);
    assert.deepEqual((s.attention.get('decoder.blocks.1.attn.pattern') as Tensor).shape, [4, k + 1]);
  });
  assert.deepEqual(steps[0].stages.map((x) => x.name), ['logits', 'no_bad_words', 'forced_eos']);
  // The first decoder position's cross-attention is HF's decoder.cross_attentions at query 0.
  const recorded = (f.expected.get('decoder.cross_attentions.1') as Tensor).at(0).slice(1, 0, 1).reshape([4, 12]);
  assert.ok(maxDiff((steps[0].attention.get('decoder.blocks.1.cross_attn.pattern') as Tensor).f32(), recorded.f32()) < 1e-5);
});

test('encoders are refused with a reason', async () => {
  const bert = await loadTraceable(nodeFileSystem, join(HF_TINY, 'bert'));
  await assert.rejects(collect(bert, { inputIds: [2, 5, 3] }, {}), /encoder .* no decoder to generate with/);
});

test('the 2017 Transformer (no decoding session) is traced by re-running the pass: each step\'s logits are the teacher-forced ones', async () => {
  const model = await loadTraceable(nodeFileSystem, join(HF_TINY, 'vanilla'));
  const source = [5, 6, 7, 8, 9, 2];
  const events = await collect(model, { inputIds: source }, { options: { maxNewTokens: 5 } });
  const end = events[events.length - 1];
  assert.ok(end.type === 'end');
  assert.equal(end.ids[0], 1, 'decoding starts from bos');
  const forward = model.run({ inputIds: [source], decoderInputIds: [end.ids] }, new Hooks());
  const steps = events.filter((e) => e.type === 'step');
  assert.equal(steps.length, end.generated.length);
  steps.forEach((s, k) => {
    const row = forward.f32().subarray(k * 112, (k + 1) * 112);
    assert.ok(maxDiff(s.stages[0].scores, row) < 1e-5, `step ${k}`);
    assert.equal(s.token, row.indexOf(Math.max(...row)));
    assert.deepEqual((s.attention.get('decoder.blocks.0.cross_attn.pattern') as Tensor).shape, [4, 6]);
  });
});

test('hooks given to a generation trace act at every step: an ablated head changes the logits exactly as in a forward pass', async () => {
  const f = await fixture('gpt2');
  const prompt = f.inputs.input_ids[0];
  const ablation = [ablateHead(1, 0), ablateHead(1, 2)];
  const events = await collect(f.model, { inputIds: prompt }, { options: { maxNewTokens: 3 }, defaults: f.defaults, hooks: ablation });
  const baseline = await collect(f.model, { inputIds: prompt }, { options: { maxNewTokens: 3 }, defaults: f.defaults });
  const end = events[events.length - 1];
  assert.ok(end.type === 'end');
  const steps = events.filter((e) => e.type === 'step');
  const base = baseline.filter((e) => e.type === 'step');
  // The same ablation in one uncached pass over the final sequence gives each step's logits.
  const forward = runWithHooks(f.model, { inputIds: [end.ids] }, ablation);
  steps.forEach((s, k) => {
    const row = forward.f32().subarray((prompt.length - 1 + k) * 128, (prompt.length + k) * 128);
    assert.ok(maxDiff(s.stages[0].scores, row) < 1e-4, `step ${k}`);
    assert.ok(maxDiff(s.stages[0].scores, base[k].stages[0].scores) > 1e-3, `step ${k} must differ from the unablated run`);
  });
});

/** A recorded beam sequence of a batch, cut to the length of one input's own run: beyond it only the pad generate() fills up to the batch's longest. */
function unpadded(ids: number[], got: number[], pad: number): number[] {
  assert.ok(ids.slice(got.length).every((t) => t === pad), `${ids} has more than padding after ${got.length} tokens`);
  return ids.slice(0, got.length);
}

for (const folder of ['gpt2', 't5']) {
  test(`${folder}: a traced beam search returns HF's recorded beam ids and sequence scores for each input`, async () => {
    const f = await fixture(folder);
    const expected = f.expectedJson.generate as Record<string, { sequences: Ids; sequences_scores: number[] }>;
    for (const run of ['beam', 'beam_eos_probe']) {
      const eosTokenId = run === 'beam_eos_probe' ? (folder === 'gpt2' ? 52 : 95) : undefined;
      for (let b = 0; b < 2; b++) {
        const options = { maxNewTokens: 16, numBeams: 4, lengthPenalty: 1, earlyStopping: true as const, ...(eosTokenId === undefined ? {} : { eosTokenId }) };
        const events = await collect(f.model, { inputIds: f.inputs.input_ids[b], attentionMask: f.inputs.attention_mask[b] }, { options, defaults: f.defaults });
        const start = events[0];
        assert.ok(start.type === 'start' && start.mode === 'beam');
        assert.deepEqual(start.beam, { numBeams: 4, lengthPenalty: 1, earlyStopping: true, numReturnSequences: 1 });
        const end = events[events.length - 1];
        assert.ok(end.type === 'beam-end');
        assert.deepEqual(end.sequences[0], unpadded(expected[run].sequences[b], end.sequences[0], f.defaults.padTokenId ?? 0), `${run} input ${b}`);
        assert.ok(Math.abs(end.sequencesScores[0] - expected[run].sequences_scores[b]) < 1e-4, `${run} input ${b}`);
        assert.equal(end.hypotheses.filter((h) => h.returned).length, 1);
        assert.equal(end.sequencesScores[0], Math.fround(end.hypotheses[0].score));
        const last = events[events.length - 2];
        assert.ok(last.type === 'beam-step');
        assert.equal(end.reason, last.done ? 'done' : 'length');
      }
    }
  });
}

test('gpt2: each beam\'s attention rows are those of a forward pass over that beam\'s own tokens', async () => {
  const f = await fixture('gpt2');
  const prompt = f.inputs.input_ids[0];
  const events = await collect(f.model, { inputIds: prompt }, { options: { maxNewTokens: 5, numBeams: 3 }, defaults: f.defaults });
  const steps = events.filter((e) => e.type === 'beam-step');
  assert.equal(steps.length, 5);
  let checked = 0;
  for (const s of steps) {
    assert.equal(s.beams.length, 3);
    for (const beam of s.beams) {
      if (beam.copy) continue;
      assert.equal(beam.position, beam.tokens.length - 1);
      const captured = new Map<string, Tensor>();
      const hooks = [{ name: 'blocks.1.attn.pattern', fn: (t: Tensor) => void captured.set('p', t) }];
      runWithHooks(f.model, { inputIds: [beam.tokens] }, hooks);
      const pattern = captured.get('p') as Tensor; // [1, 4, seq, seq]
      const seq = beam.tokens.length;
      const last = pattern.at(0).slice(1, seq - 1, seq).reshape([4, seq]);
      assert.ok(maxDiff((beam.attention.get('blocks.1.attn.pattern') as Tensor).f32(), last.f32()) < 1e-5, `step ${s.step} beam ${beam.beam}`);
      // The stages: raw logits, log_softmax of them, and no processor for this fixture.
      assert.deepEqual(beam.stages.map((x) => x.name), ['logits', 'log_softmax']);
      checked++;
    }
    // Dropped beams are those no kept candidate extends; the next beams are the continuing candidates in rank order.
    const extended = new Set(s.candidates.filter((c) => c.fate === 'continues').map((c) => c.beam));
    assert.deepEqual(s.dropped, s.beams.filter((b) => !b.copy && !extended.has(b.beam)).map((b) => b.beam));
    assert.deepEqual(s.next.map((n) => n.token), s.candidates.filter((c) => c.fate === 'continues').map((c) => c.token));
  }
  assert.equal(checked, 1 + 4 * 3);
  // Each live beam's running score is the sum of the log-probabilities its path took.
  for (let i = 1; i < steps.length; i++) {
    const prev = steps[i - 1];
    for (const n of prev.next) {
      const parent = prev.beams[n.parent];
      const logprob = parent.stages[1].scores[n.token];
      assert.ok(Math.abs(n.score - (parent.score + logprob)) < 1e-5);
    }
  }
});
