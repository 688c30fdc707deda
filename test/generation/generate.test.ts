import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, UnsupportedError } from '../../src/errors.js';
import { buildProcessors, generate, type StepEvent } from '../../src/generation/generate.js';
import { generationOptionsFromJson } from '../../src/generation/options.js';
import { streamGenerate, TextStream } from '../../src/generation/streamer.js';
import type { DecodingSession, GenerativeModel, SessionInputs } from '../../src/generation/types.js';
import { Tensor } from '../../src/tensor/tensor.js';

/**
 * A toy model over the vocabulary a b c d e <eos>=5 <pad>=6: after token t it
 * strongly prefers (t + 1) mod 5, with fixed, smaller scores elsewhere; EOS is
 * likely only after 'e' (4). It records what it was fed.
 */
class Toy implements GenerativeModel {
  readonly vocabSize = 7;
  readonly fed: number[][][] = [];
  constructor(readonly isEncoderDecoder = false) {}

  startSession(_inputs: SessionInputs): DecodingSession {
    let last: number[] = [];
    const fed = this.fed;
    const vocab = this.vocabSize;
    return {
      step(ids) {
        fed.push(ids.map((r) => [...r]));
        last = ids.map((r) => r[r.length - 1]);
        const out = new Float32Array(ids.length * vocab);
        last.forEach((t, i) => {
          const row = out.subarray(i * vocab, (i + 1) * vocab);
          row.set([0.1, 0.2, 0.3, 0.4, 0.5, t === 4 ? 2.5 : -1, -5]);
          row[(t + 1) % 5] = 3;
        });
        return new Tensor('f32', [ids.length, vocab], out);
      },
      reorder(indices) {
        last = indices.map((i) => last[i]);
      },
    };
  }
}

const letters = (ids: number[]) => ids.map((t) => (t < 5 ? 'abcde'[t] : '')).join('');

test('greedy decoding follows the argmax and stops at EOS, padding finished rows', () => {
  const result = generate(new Toy(), { inputIds: [[0], [3]] }, { maxNewTokens: 6, eosTokenId: 5, padTokenId: 6 });
  // Row 0: 0 → 1 2 3 4, then EOS? No: after 4 the preference (t+1)%5 = 0 scores 3 > EOS 2.5.
  assert.deepEqual(result.sequences, [
    [0, 1, 2, 3, 4, 0, 1],
    [3, 4, 0, 1, 2, 3, 4],
  ]);
  const eosFirst = generate(new Toy(), { inputIds: [[3], [0]] }, { maxNewTokens: 4, eosTokenId: 5, padTokenId: 6, suppressTokens: [0] });
  // With 'a' suppressed, EOS wins after 'e': row 0 ends at step 2 and is padded.
  assert.deepEqual(eosFirst.sequences, [
    [3, 4, 5, 6, 6],
    [0, 1, 2, 3, 4],
  ]);
  assert.equal(eosFirst.tokenLogprobs?.[0].length, 2);
});

test('the session gets the prompt first, then one token per row; encoder-decoders start from the decoder start id', () => {
  const toy = new Toy();
  generate(toy, { inputIds: [[1, 2]] }, { maxNewTokens: 2 });
  assert.deepEqual(toy.fed, [[[1, 2]], [[3]]]);
  const seq2seq = new Toy(true);
  const result = generate(seq2seq, { inputIds: [[4, 4, 4]] }, { maxNewTokens: 2, decoderStartTokenId: 6 });
  assert.deepEqual(seq2seq.fed[0], [[6]]);
  assert.deepEqual(result.sequences, [[6, 2, 3]]); // (6 + 1) mod 5 = 2
});

test('min_new_tokens keeps EOS away; max_length counts the prompt', () => {
  const r = generate(new Toy(), { inputIds: [[3]] }, { maxLength: 4, eosTokenId: 5, padTokenId: 6, suppressTokens: [0], minNewTokens: 2 });
  assert.equal(r.sequences[0].length, 4);
  assert.notEqual(r.sequences[0][2], 5);
});

test('stop strings end a row when its generated text contains them, across token boundaries', () => {
  const r = generate(new Toy(), { inputIds: [[0]] }, { maxNewTokens: 10, stopStrings: 'cd', padTokenId: 6 }, {}, { decode: letters });
  assert.equal(letters(r.sequences[0].slice(1)), 'bcd');
  assert.throws(() => generate(new Toy(), { inputIds: [[0]] }, { maxNewTokens: 3, stopStrings: 'cd' }), ConfigError);
});

test('sampling with a seed is reproducible, and different seeds give different draws', () => {
  const flat = { maxNewTokens: 30, doSample: true, temperature: 50 };
  const a = generate(new Toy(), { inputIds: [[0]] }, { ...flat, seed: 7 });
  const b = generate(new Toy(), { inputIds: [[0]] }, { ...flat, seed: 7 });
  const c = generate(new Toy(), { inputIds: [[0]] }, { ...flat, seed: 8 });
  assert.deepEqual(a.sequences, b.sequences);
  assert.notDeepEqual(a.sequences, c.sequences);
  const several = generate(new Toy(), { inputIds: [[0]] }, { ...flat, seed: 7, numReturnSequences: 3 });
  assert.equal(several.sequences.length, 3);
});

test('traced steps expose the scores after each processor, in HF order', () => {
  const events: StepEvent[] = [];
  generate(
    new Toy(),
    { inputIds: [[0]] },
    { maxNewTokens: 1, doSample: true, seed: 1, repetitionPenalty: 1.5, temperature: 0.5, topK: 3, topP: 0.9 },
    {},
    { traceStages: true, onStep: (e) => events.push(e) },
  );
  assert.deepEqual(events[0].stages?.map((s) => s.name), ['repetition_penalty', 'temperature', 'top_k', 'top_p']);
  const afterTemperature = events[0].stages?.[1].scores[0];
  assert.ok(afterTemperature && Math.abs(afterTemperature[1] - 6) < 1e-6);
});

test('beam search returns numReturnSequences sequences with scores, best first', () => {
  const r = generate(new Toy(), { inputIds: [[0]] }, { maxNewTokens: 3, numBeams: 3, numReturnSequences: 2, eosTokenId: 5, padTokenId: 6 });
  assert.equal(r.sequences.length, 2);
  assert.deepEqual(r.sequences[0], [0, 1, 2, 3]);
  assert.ok((r.sequencesScores?.[0] ?? 0) >= (r.sequencesScores?.[1] ?? 0));
});

test('unsupported or contradictory options are typed errors, never ignored', () => {
  const toy = new Toy();
  const input = { inputIds: [[0]] };
  assert.throws(() => generate(toy, input, { maxNewTokens: 2, topP: 0.5 }), ConfigError);
  assert.throws(() => generate(toy, input, { maxNewTokens: 2, numBeams: 2, doSample: true }), UnsupportedError);
  assert.throws(() => generate(toy, input, { maxNewTokens: 2, numReturnSequences: 2 }), ConfigError);
  assert.throws(() => generate(toy, input, { maxNewTokens: 2, numBeams: 2, numReturnSequences: 3, eosTokenId: 5 }), ConfigError);
  assert.throws(() => generate(toy, input, { top_p: 0.5 } as never), /did you mean "topP"/);
  assert.throws(() => generationOptionsFromJson({ num_beam_groups: 2 }), UnsupportedError);
  assert.throws(() => generationOptionsFromJson({ frobnicate: 1 }), UnsupportedError);
  assert.deepEqual(generationOptionsFromJson({ do_sample: true, top_p: 0.9, transformers_version: '4.47.1' }), { doSample: true, topP: 0.9 });
  assert.throws(() => generate(toy, input, { maxNewTokens: 2, forcedBosTokenId: 1 }), UnsupportedError);
});

test('streaming yields each token in order with its text, the last chunk carrying the result', async () => {
  const chunks = [];
  for await (const chunk of streamGenerate(new Toy(), { inputIds: [[3]] }, { maxNewTokens: 5, eosTokenId: 5, padTokenId: 6, suppressTokens: [0] }, {}, { decode: letters })) {
    chunks.push(chunk);
  }
  assert.deepEqual(chunks.map((c) => c.token), [4, 5]);
  assert.deepEqual(chunks.map((c) => c.text), ['e', '']);
  assert.deepEqual(chunks.map((c) => c.done), [false, true]);
  assert.deepEqual(chunks[1].result?.sequences, [[3, 4, 5]]);
  await assert.rejects(async () => {
    for await (const c of streamGenerate(new Toy(), { inputIds: [[3]] }, { maxNewTokens: 2, numBeams: 2, eosTokenId: 5, padTokenId: 6 }, {}, { decode: letters })) void c;
  }, UnsupportedError);
});

test('text streams hold back incomplete UTF-8 characters', () => {
  const bytes = [0xf0, 0x9f, 0x99, 0x82, 0x21]; // 🙂!
  const stream = new TextStream((ids) => new TextDecoder().decode(Uint8Array.from(ids.map((i) => bytes[i]))));
  assert.deepEqual([0, 1, 2, 3, 4].map((i) => stream.push(i)), ['', '', '', '🙂', '!']);
});

test('sampling keeps HF GenerationConfig\'s default top_k of 50 unless topK is 0', () => {
  const c = { doSample: true, maxLength: 10, eos: [], minTokensToKeep: 1, isEncoderDecoder: false };
  assert.deepEqual(buildProcessors({ topP: 0.9 }, c).map((p) => p.name), ['top_k', 'top_p']);
  assert.deepEqual(buildProcessors({ topK: 0, topP: 0.9 }, c).map((p) => p.name), ['top_p']);
  assert.deepEqual(buildProcessors({ topK: 5 }, { ...c, doSample: false }).map((p) => p.name), []);
});

test('beam search keeps each step\'s processed log-probabilities and raw logits when asked', () => {
  const r = generate(new Toy(), { inputIds: [[0], [2]] }, { maxNewTokens: 3, numBeams: 2, eosTokenId: 5, padTokenId: 6, outputScores: true, outputLogits: true });
  assert.deepEqual(r.scores?.shape, [3, 4, 7]);
  assert.deepEqual(r.logits?.shape, [3, 4, 7]);
  // Step 0, row 0 (input 0, beam 0): log_softmax of the toy logits after token 0.
  const row = r.scores?.f32().slice(0, 7) ?? new Float32Array();
  const sum = Array.from(row).reduce((a, v) => a + Math.exp(v), 0);
  assert.ok(Math.abs(sum - 1) < 1e-5);
  assert.equal(r.logits?.f32()[1], 3);
});
