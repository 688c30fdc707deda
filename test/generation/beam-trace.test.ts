import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { beamSteps, type BeamOutcome, type BeamStepEvent } from '../../src/generation/beam-search.js';
import { generate, resolveGeneration, type GenerateInputs } from '../../src/generation/generate.js';
import { generationOptionsFromJson, type GenerateOptions } from '../../src/generation/options.js';
import { logSoftmaxRow } from '../../src/generation/processors.js';
import type { GenerativeModel } from '../../src/generation/types.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { Gpt2Model, parseGpt2Config } from '../../src/models/gpt2.js';
import { parseT5Config, T5Model } from '../../src/models/t5.js';
import { Weights } from '../../src/nn/weights.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { HF_TINY } from '../helpers/shared.js';
import { maxDiff } from '../helpers/compare.js';

type Ids = number[][];
interface Recorded {
  generate: Record<string, { sequences: Ids; sequences_scores?: number[] }>;
}

async function fixture(folder: 'gpt2' | 't5') {
  const dir = join(HF_TINY, folder);
  const read = async (name: string) => JSON.parse(await nodeFileSystem.readText(join(dir, name))) as Record<string, unknown>;
  const config = await read('config.json');
  const weights = Weights.from(await readSafetensors(nodeFileSystem, join(dir, 'model.safetensors')), `${dir}/model.safetensors`);
  const model: GenerativeModel = folder === 'gpt2' ? new Gpt2Model(parseGpt2Config(config, dir), weights) : new T5Model(parseT5Config(config, dir), weights);
  const inputs = (await read('inputs.json')) as { input_ids: Ids; attention_mask: Ids; generate: Record<string, Record<string, unknown>> };
  return {
    model,
    inputs: { inputIds: inputs.input_ids, attentionMask: inputs.attention_mask } as GenerateInputs,
    kwargs: (run: string) => generationOptionsFromJson(inputs.generate[run], run),
    recorded: (await read('expected.json')) as unknown as Recorded,
    expected: await readSafetensors(nodeFileSystem, join(dir, 'expected.safetensors')),
    defaults: generationOptionsFromJson(await read('generation_config.json')),
  };
}

/** Drain beamSteps the way a trace does, keeping every event. */
function runBeams(model: GenerativeModel, inputs: GenerateInputs, options: GenerateOptions, defaults: GenerateOptions): { events: BeamStepEvent[]; outcome: BeamOutcome } {
  const r = resolveGeneration(model, inputs, options, defaults);
  const steps = beamSteps(model, inputs, r, { traceStages: true });
  const events: BeamStepEvent[] = [];
  for (;;) {
    const next = steps.next();
    if (next.done) return { events, outcome: next.value };
    events.push(next.value);
  }
}

for (const folder of ['gpt2', 't5'] as const) {
  test(`${folder}: the stepped beam search returns what generate() returns, and HF's recorded ids and sequence scores`, async () => {
    const f = await fixture(folder);
    const runs = Object.keys(f.recorded.generate).filter((run) => run.startsWith('beam'));
    assert.ok(runs.length >= 2, runs.join(', '));
    for (const run of runs) {
      const options = { ...f.kwargs(run), outputScores: true };
      const { events, outcome } = runBeams(f.model, f.inputs, options, f.defaults);
      const direct = generate(f.model, f.inputs, options, f.defaults);
      assert.deepEqual(outcome.result.sequences, direct.sequences, run);
      assert.deepEqual(outcome.result.sequencesScores, direct.sequencesScores, run);
      assert.deepEqual(outcome.result.sequences, f.recorded.generate[run].sequences, run);
      const want = f.recorded.generate[run].sequences_scores ?? [];
      (outcome.result.sequencesScores ?? []).forEach((s, i) => assert.ok(Math.abs(s - want[i]) < 1e-4, `${run} score ${i}: ${s} vs ${want[i]}`));
      // The events' per-step scores are HF's output_scores for beam search, [steps, batch·beams, vocab].
      const scores = direct.scores as Tensor;
      assert.equal(scores.shape[0], events.length);
      const [, rows, vocab] = scores.shape;
      events.forEach((e, s) => e.scores.forEach((row, i) => assert.deepEqual(row, scores.f32().subarray((s * rows + i) * vocab, (s * rows + i + 1) * vocab))));
      // The returned sequences are the best hypotheses, and their beam_indices retrace them through the steps' parents.
      const promptLength = folder === 'gpt2' ? f.inputs.inputIds[0].length : 1;
      outcome.hypotheses.forEach((ranked, b) => {
        const best = ranked[0];
        const returned = outcome.result.sequences[b * (options.numReturnSequences ?? 1)];
        assert.deepEqual(returned.slice(0, best.tokens.length), best.tokens);
        assert.equal(best.beamIndices.length, best.length);
        // At step s the hypothesis was the row beamIndices[s]: that row had been fed its first promptLength + s tokens.
        best.beamIndices.forEach((row, s) => assert.deepEqual(events[s].sequences[row], best.tokens.slice(0, promptLength + s), `${run} input ${b} step ${s}`));
      });
    }
  });
}

test('gpt2 and t5: every beam whose tokens are HF\'s greedy prefix has HF\'s recorded logits and scores at that step', async () => {
  for (const folder of ['gpt2', 't5'] as const) {
    const f = await fixture(folder);
    const { events } = runBeams(f.model, f.inputs, f.kwargs('beam'), f.defaults);
    const greedy = f.recorded.generate.greedy.sequences;
    const logits = f.expected.get('generate.greedy.logits') as Tensor; // [steps, 2, vocab]
    const [steps, , vocab] = logits.shape;
    let compared = 0;
    events.forEach((e, s) => {
      if (s >= steps) return;
      e.sequences.forEach((tokens, row) => {
        const input = Math.floor(row / 4);
        if (tokens.join() !== greedy[input].slice(0, tokens.length).join()) return;
        if (s > 0 && e.beamScores[row] < -1e8) return;
        const recorded = logits.f32().subarray((s * 2 + input) * vocab, (s * 2 + input + 1) * vocab);
        assert.ok(maxDiff((e.logits as Float32Array[])[row], recorded) < 1e-4, `${folder} step ${s} row ${row} logits`);
        // Neither fixture sets a logits processor: the scores are log_softmax of the logits.
        assert.ok(maxDiff(e.scores[row], logSoftmaxRow(recorded)) < 1e-4, `${folder} step ${s} row ${row} scores`);
        compared++;
      });
    });
    // Step 0 alone gives 8 rows (every beam of both inputs starts from the prompt); greedy paths stay among the beams longer.
    assert.ok(compared > 8, `${folder}: ${compared} rows compared`);
  }
});

/** HF BeamHypotheses.is_done, written again from the transformers v4.47 source for the check. */
function hfIsDone(worst: number, count: number, numBeams: number, best: number, curLen: number, promptLength: number, maxLength: number, lp: number, early: boolean | 'never'): boolean {
  if (count < numBeams) return false;
  if (early === true) return true;
  const length = early === 'never' && lp > 0 ? maxLength - promptLength : curLen - promptLength;
  return worst >= best / length ** lp;
}

for (const [lengthPenalty, earlyStopping] of [
  [1, true],
  [1, false],
  [2, 'never'],
  [0.5, false],
] as const) {
  test(`every step keeps the top 2·numBeams candidates and scores finished hypotheses sum / length^${lengthPenalty} (early stopping ${earlyStopping})`, async () => {
    const f = await fixture('gpt2');
    const numBeams = 4;
    const eos = 52; // the token the fixture's eos probe picked: HF's greedy run emits it mid-way.
    const { events, outcome } = runBeams(f.model, f.inputs, { maxNewTokens: 16, numBeams, lengthPenalty, earlyStopping, eosTokenId: eos }, f.defaults);
    const promptLength = f.inputs.inputIds[0].length;
    const kept: number[][] = [[], []];
    let finishedSeen = 0;
    for (const e of events) {
      const curLen = e.sequences[0].length + 1;
      for (let b = 0; b < 2; b++) {
        const cands = e.candidates[b];
        if (cands.length === 0) continue;
        // Every (beam, token) of this input, scored as HF does: processed log-prob + running score (float32).
        const all: { beam: number; token: number; score: number; flat: number }[] = [];
        for (let j = 0; j < numBeams; j++) {
          const row = e.scores[b * numBeams + j];
          for (let v = 0; v < row.length; v++) all.push({ beam: j, token: v, score: Math.fround(row[v] + e.beamScores[b * numBeams + j]), flat: j * row.length + v });
        }
        all.sort((x, y) => y.score - x.score || x.flat - y.flat);
        assert.deepEqual(cands.map((c) => [c.beam, c.token, c.score]), all.slice(0, 2 * numBeams).map((c) => [c.beam, c.token, c.score]), `step ${e.step} input ${b}`);
        // The next beams are the first numBeams candidates that are not EOS; an EOS ranked among the first numBeams finishes a hypothesis.
        const continuing = cands.filter((c) => c.token !== eos).slice(0, numBeams);
        assert.deepEqual(e.tokens.slice(b * numBeams, (b + 1) * numBeams), continuing.map((c) => c.token));
        assert.deepEqual(e.parents.slice(b * numBeams, (b + 1) * numBeams), continuing.map((c) => b * numBeams + c.beam));
        const lastUsed = cands.indexOf(continuing[numBeams - 1]);
        const finishing = cands.filter((c, rank) => c.token === eos && rank < numBeams && rank <= lastUsed);
        assert.deepEqual(e.finished[b].map((h) => h.beam), finishing.map((c) => c.beam));
        cands.forEach((c, rank) => {
          const fate = c.token === eos ? (rank < numBeams ? 'finished' : 'eos-late') : continuing.includes(c) ? 'continues' : 'spare';
          assert.equal(c.fate, rank > lastUsed ? 'spare' : fate, `step ${e.step} rank ${rank}`);
        });
        e.finished[b].forEach((h, i) => {
          const length = curLen - promptLength;
          assert.equal(h.hypothesis.length, length);
          assert.equal(h.hypothesis.sumLogprobs, finishing[i].score);
          assert.ok(Math.abs(h.hypothesis.score - finishing[i].score / length ** lengthPenalty) < 1e-12);
          finishedSeen++;
          kept[b].push(h.hypothesis.score);
          kept[b].sort((x, y) => y - x);
          kept[b] = kept[b].slice(0, numBeams);
          assert.equal(h.kept, kept[b].includes(h.hypothesis.score));
        });
        const worst = kept[b].length ? kept[b][kept[b].length - 1] : 1e9;
        assert.equal(e.done[b], hfIsDone(worst, kept[b].length, numBeams, cands[0].score, curLen, promptLength, promptLength + 16, lengthPenalty, earlyStopping), `step ${e.step} input ${b} done`);
      }
    }
    assert.ok(finishedSeen >= 4, `only ${finishedSeen} hypotheses finished: the check needs EOS candidates`);
    // The finished hypotheses left at the end are the best, ranked; the first is returned with its normalised score.
    outcome.hypotheses.forEach((ranked, b) => {
      for (let i = 1; i < ranked.length; i++) assert.ok(ranked[i - 1].score >= ranked[i].score);
      for (const h of ranked) assert.ok(Math.abs(h.score - h.sumLogprobs / h.length ** lengthPenalty) < 1e-12);
      assert.equal(outcome.result.sequencesScores?.[b], Math.fround(ranked[0].score));
    });
  });
}

/**
 * A model whose next-token distribution never changes: a 0.3, b 0.2, EOS 0.5
 * (pad has probability 0). Every beam score below can be worked out by hand.
 */
const CONSTANT: GenerativeModel = {
  isEncoderDecoder: false,
  vocabSize: 4,
  startSession: () => ({
    step: (ids) => new Tensor('f32', [ids.length, 4], Float32Array.from(ids.flatMap(() => [Math.log(0.3), Math.log(0.2), Math.log(0.5), -Infinity]))),
    reorder: () => undefined,
  }),
};

test('early stopping by hand: true and false stop once two hypotheses are finished, "never" only at the length limit', () => {
  const [a, b, e] = [Math.log(0.3), Math.log(0.2), Math.log(0.5)];
  const base = { maxNewTokens: 3, numBeams: 2, eosTokenId: 2, padTokenId: 3 };
  const run = (earlyStopping: boolean | 'never', lengthPenalty: number) => runBeams(CONSTANT, { inputIds: [[0]] }, { ...base, earlyStopping, lengthPenalty }, {});
  const f32 = Math.fround;
  const eager = run(true, 1);
  // Step 1: EOS (rank 0) finishes "EOS" at −0.693; a and b become the beams; the copy beam's tokens all score −1e9 in float32, so its first is 4th, and spare.
  assert.deepEqual(eager.events[0].candidates[0].map((c) => [c.beam, c.token, c.score, c.fate]), [[0, 2, f32(e), 'finished'], [0, 0, f32(a), 'continues'], [0, 1, f32(b), 'continues'], [1, 0, -1e9, 'spare']]);
  // Step 2: "a EOS" (−1.897 / 2) and "b EOS" finish; the list of 2 is full, and "b EOS" (−2.303 / 2) is worse than both kept ones.
  const step2 = eager.events[1];
  assert.deepEqual(step2.candidates[0].map((c) => c.fate), ['finished', 'finished', 'continues', 'continues']);
  assert.deepEqual(step2.finished[0].map((h) => [h.hypothesis.sumLogprobs, h.hypothesis.length, h.kept]), [[f32(f32(a) + f32(e)), 2, true], [f32(f32(b) + f32(e)), 2, false]]);
  assert.equal(eager.events.length, 2);
  assert.equal(eager.outcome.result.sequencesScores?.[0], f32(e));
  assert.deepEqual(eager.outcome.result.sequences, [[0, 2]]);
  // false: the best candidate, −1.897 at length 2, cannot beat the worst kept hypothesis (the same −0.949): done at step 2 too.
  assert.equal(run(false, 1).events.length, 2);
  // never: at the longest length (3) the best candidate would score −1.897 / 3 = −0.632 > −0.949, so it goes on to the limit.
  const never = run('never', 1);
  assert.equal(never.events.length, 3);
  // At step 3 the best candidate, "a a EOS", scores −3.101 / 3 = −1.034 even at the longest length: done.
  assert.deepEqual(never.events.map((s) => s.done[0]), [false, false, true]);
  assert.deepEqual(never.outcome.result.sequences, [[0, 2]]);
  // Length penalty 2 favours long hypotheses: "a EOS" (−1.897 / 4) pushes out "EOS" (−0.693 / 1), and false no longer stops early.
  const long = run(false, 2);
  assert.equal(long.events[1].finished[0][1].evicted?.tokens.join(), '0');
  assert.equal(long.events.length, 3);
  const best = long.outcome.hypotheses[0][0];
  assert.deepEqual([best.tokens, best.length, best.finishedAt], [[0, 0, 0], 3, 2]);
  assert.ok(Math.abs(best.score - (2 * a + e) / 9) < 1e-6);
  assert.deepEqual(long.outcome.result.sequences, [[0, 0, 0, 2]]);
});
