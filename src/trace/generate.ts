/**
 * Generation traces: decode with src/generation's own loops (the same
 * processors, samplers, beam search and stopping rules as `generate()`), and
 * at every step report the raw logits, the scores after each processing
 * stage, the chosen token with its log-probability, and the new token's
 * attention rows over the keys so far (and, in encoder-decoders, over the
 * encoder output). Beam search reports the same for every beam, with the
 * candidates it ranked, the hypotheses it finished and the beams it kept.
 */
import { UnsupportedError } from '../errors.js';
import { beamSteps, type BeamCandidate, type Hypothesis } from '../generation/beam-search.js';
import { decodeSteps, resolveGeneration, type ResolvedGeneration } from '../generation/generate.js';
import type { GenerateOptions } from '../generation/options.js';
import { logSoftmaxRow } from '../generation/processors.js';
import type { Random } from '../generation/samplers.js';
import type { DecodingSession, GenerativeModel, SessionInputs } from '../generation/types.js';
import { Hooks, type HookPoints } from '../nn/hooks.js';
import { Tensor } from '../tensor/tensor.js';
import { softmaxRow } from './lens.js';
import type { HookSpec } from './run.js';
import type { TraceableModel } from './types.js';

/** Scores after one processing stage (`logits` is the raw row; then one per processor, e.g. `temperature`, `top_k`). */
export interface StageRow {
  name: string;
  scores: Float32Array;
}

/** One beam at a beam-search step: the sequence it extends and what it predicts next. */
export interface BeamState {
  beam: number;
  /** Its tokens so far (the prompt or the decoder start included). */
  tokens: number[];
  /** The sum of its generated tokens' processed log-probabilities (HF's running beam score). */
  score: number;
  /** score / generated^lengthPenalty, the score HF gives it if it ends here; null before its first generated token. */
  normalised: number | null;
  /** Step 0 only: the beams after the first are copies of it held at −1e9, so that the same sequence is not chosen twice. */
  copy: boolean;
  /** The query position of its last token, the one fed at this step. */
  position: number;
  /** `logits`, `log_softmax`, then the scores after each processor: the last is what candidates add to `score`. */
  stages: StageRow[];
  /** Per attention hook: its last token's rows [heads, keys]. */
  attention: Map<string, Tensor>;
}

/** A finished sequence of a beam search, as ranked at the end. */
export interface HypothesisRecord {
  /** Its generated tokens, ending with EOS when an EOS candidate finished it. */
  generated: number[];
  /** sumLogprobs / length^lengthPenalty. */
  score: number;
  sumLogprobs: number;
  length: number;
  /** The step whose EOS finished it; null for a beam still running at the end. */
  finishedAt: number | null;
  /** The beam that produced each generated token (HF `beam_indices`). */
  beamIndices: number[];
  /** Among the numReturnSequences best: returned by generate(). */
  returned: boolean;
}

export type GenerationEvent =
  | {
      type: 'start';
      inputIds: number[];
      attentionMask: number[];
      decoderStart?: number;
      mode: 'greedy' | 'sample' | 'beam';
      stages: string[];
      /** Beam search: its settings as resolved (numBeams, lengthPenalty, earlyStopping). */
      beam?: { numBeams: number; lengthPenalty: number; earlyStopping: boolean | 'never'; numReturnSequences: number };
    }
  | {
      type: 'step';
      step: number;
      /** The query position of the new token (in the decoder for encoder-decoders). */
      position: number;
      token: number;
      /** log-probability of the token under the processed distribution (what was argmaxed or sampled from). */
      logprob: number;
      /** log-probability under the raw logits. */
      rawLogprob: number;
      /** `logits` first, then the scores after each processor. */
      stages: StageRow[];
      /** Per attention hook (e.g. `blocks.0.attn.pattern`, `decoder.blocks.1.cross_attn.pattern`): the new token's rows [heads, keys]. */
      attention: Map<string, Tensor>;
    }
  | { type: 'end'; ids: number[]; generated: number[]; reason: 'eos' | 'length' }
  | {
      type: 'beam-step';
      step: number;
      /** Every beam fed at this step (numBeams of them). */
      beams: BeamState[];
      /** The best (beam, token) candidates in rank order, each with what became of it. */
      candidates: BeamCandidate[];
      /** Hypotheses finished by an EOS candidate at this step; `kept` when they entered the numBeams best, `evicted` the one they pushed out. */
      finished: { beam: number; hypothesis: HypothesisRecord; kept: boolean; evicted?: HypothesisRecord }[];
      /** Beams none of whose candidates was kept. */
      dropped: number[];
      /** The next beams: the beam each extends, the token it appends, its running score. */
      next: { parent: number; token: number; score: number }[];
      /** No running beam can beat the finished hypotheses any more. */
      done: boolean;
    }
  | {
      type: 'beam-end';
      /** Every finished hypothesis, best first (generate() returns the first numReturnSequences). */
      hypotheses: HypothesisRecord[];
      /** What generate() returns: EOS-terminated sequences (prompt or decoder start included) and their scores. */
      sequences: number[][];
      sequencesScores: number[];
      /** `done`: numBeams hypotheses finished that no running beam could beat; `length`: the token limit. */
      reason: 'done' | 'length';
    };

export interface GenerationTraceOptions {
  /** generate() options (maxNewTokens, doSample, temperature, topK, topP, repetitionPenalty, numBeams, lengthPenalty, earlyStopping, …). */
  options?: GenerateOptions;
  /** The model's generation_config.json; its special tokens default to the model's own. */
  defaults?: GenerateOptions;
  /** A uniform random source for sampling (else `options.seed`). */
  random?: Random;
  /** Hooks that read or replace intermediates at every step (e.g. `ablateHead`), to see how generation changes. */
  hooks?: readonly HookSpec[];
}

/** The last query's rows of a pattern [rows, heads, queries, keys] → [rows, heads, keys]. */
function lastQuery(pattern: Tensor): Tensor {
  const [rows, heads, queries, keys] = pattern.shape;
  return pattern.slice(2, queries - 1, queries).reshape([rows, heads, keys]);
}

/** Row `row` of every captured [rows, heads, keys] pattern → [heads, keys]. */
function attentionOf(captured: ReadonlyMap<string, Tensor>, row: number): Map<string, Tensor> {
  return new Map([...captured].map(([name, rows]) => [name, rows.at(row)]));
}

/**
 * A session that re-runs the whole teacher-forced forward pass at every step,
 * for models without a decoding session of their own (the 2017 Transformer).
 * It gives the same logits as a KV-cached session, at quadratic cost.
 */
class RecomputeSession implements DecodingSession {
  private rows: number[][] = [];
  private masks: number[][];
  private encoderIds: number[][];

  constructor(
    private readonly model: TraceableModel,
    inputs: SessionInputs,
    private readonly hooks: HookPoints,
  ) {
    const repeat = (rows: readonly (readonly number[])[]): number[][] => rows.flatMap((r) => Array.from({ length: inputs.expandBy }, () => [...r]));
    this.encoderIds = repeat(inputs.inputIds);
    this.masks = repeat(inputs.attentionMask);
  }

  private get encoderDecoder(): boolean {
    return this.model.description.family === 'encoder-decoder';
  }

  step(ids: readonly (readonly number[])[]): Tensor {
    const first = this.rows.length === 0;
    this.rows = first ? ids.map((r) => [...r]) : this.rows.map((r, i) => [...r, ...ids[i]]);
    if (!first && !this.encoderDecoder) this.masks = this.masks.map((m, i) => [...m, ...ids[i].map(() => 1)]);
    const logits = this.encoderDecoder
      ? this.model.run({ inputIds: this.encoderIds, attentionMask: this.masks, decoderInputIds: this.rows }, this.hooks)
      : this.model.run({ inputIds: this.rows, attentionMask: this.masks }, this.hooks);
    const [rows, seq, vocab] = logits.shape;
    return logits.slice(1, seq - 1, seq).reshape([rows, vocab]);
  }

  reorder(indices: readonly number[]): void {
    this.rows = indices.map((i) => [...this.rows[i]]);
    this.masks = indices.map((i) => [...this.masks[i]]);
    this.encoderIds = indices.map((i) => [...this.encoderIds[i]]);
  }
}

/** Special tokens the model knows, as generate() option defaults. */
function modelDefaults(model: TraceableModel): GenerateOptions {
  const s = model.description.specialTokens;
  const out: GenerateOptions = {};
  if (s.eos !== undefined) out.eosTokenId = s.eos;
  if (s.pad !== undefined) out.padTokenId = s.pad;
  if (s.bos !== undefined) out.bosTokenId = s.bos;
  if (s.decoderStart !== undefined) out.decoderStartTokenId = s.decoderStart;
  return out;
}

/**
 * Decode one input step by step and stream what happens. `inputIds` is the
 * prompt (decoder-only) or the encoder input (encoder-decoder).
 */
export async function* traceGeneration(
  model: TraceableModel,
  input: { inputIds: number[]; attentionMask?: number[] },
  trace: GenerationTraceOptions = {},
): AsyncGenerator<GenerationEvent, void, undefined> {
  const d = model.description;
  if (d.family === 'encoder') throw new UnsupportedError(`${d.modelType} is an encoder (${d.summary}); it has no decoder to generate with`);
  const captured = new Map<string, Tensor>();
  const keep = d.family === 'encoder-decoder' ? /^decoder\..*attn\.pattern$/ : /attn\.pattern$/;
  const hooks = new Hooks();
  for (const spec of trace.hooks ?? []) hooks.add(spec.name, spec.fn);
  // Added last, so it records the patterns the other hooks left.
  hooks.add(keep, (t, name) => void captured.set(name, lastQuery(t)));
  const generative: GenerativeModel = {
    isEncoderDecoder: d.family === 'encoder-decoder',
    vocabSize: d.vocabSize,
    startSession: (inputs) => (model.startSession ? model.startSession(inputs, hooks) : new RecomputeSession(model, inputs, hooks)),
  };
  const attentionMask = input.attentionMask ?? input.inputIds.map(() => 1);
  const inputs = { inputIds: [input.inputIds], attentionMask: [attentionMask] };
  const resolved = resolveGeneration(generative, inputs, trace.options ?? {}, { ...modelDefaults(model), ...trace.defaults }, { random: trace.random, traceStages: true });
  const start = { type: 'start' as const, inputIds: input.inputIds, attentionMask, decoderStart: resolved.decoderStart, stages: resolved.processors.map((p) => p.name) };
  if (resolved.mode === 'beam') {
    const o = resolved.options;
    const beam = { numBeams: resolved.numBeams, lengthPenalty: o.lengthPenalty ?? 1, earlyStopping: o.earlyStopping ?? false, numReturnSequences: resolved.numReturnSequences };
    yield { ...start, mode: 'beam', beam };
    yield* traceBeams(generative, inputs, resolved, captured);
    return;
  }
  yield { ...start, mode: resolved.mode };

  const steps = decodeSteps(generative, inputs, resolved, { traceStages: true, random: trace.random });
  let length = resolved.promptLength;
  for (;;) {
    captured.clear();
    const next = steps.next();
    if (next.done) {
      const ids = next.value.sequences[0];
      const generated = ids.slice(resolved.promptLength);
      const last = generated[generated.length - 1];
      yield { type: 'end', ids, generated, reason: last !== undefined && resolved.eos.includes(last) ? 'eos' : 'length' };
      return;
    }
    const e = next.value;
    const logits = e.logits?.[0] ?? new Float32Array(0);
    const token = e.tokens[0];
    const stages: StageRow[] = [{ name: 'logits', scores: logits }, ...(e.stages ?? []).map((s) => ({ name: s.name, scores: s.scores[0] }))];
    yield {
      type: 'step',
      step: e.step,
      position: length - 1,
      token,
      logprob: e.logprobs[0],
      rawLogprob: Math.log(softmaxRow(logits)[token]),
      stages,
      attention: attentionOf(captured, 0),
    };
    length++;
  }
}

/** A beam's score if it ended here: HF's sum / generated^lengthPenalty. */
function normalisedScore(score: number, generated: number, lengthPenalty: number): number | null {
  return generated === 0 ? null : score / generated ** lengthPenalty;
}

/** A hypothesis as the trace shows it: its generated tokens with the EOS generate() appends (HF: the first EOS id). */
function hypothesisRecord(h: Hypothesis, r: ResolvedGeneration, returned: boolean): HypothesisRecord {
  const generated = [...h.tokens.slice(r.promptLength), ...(h.finishedAt === null ? [] : [r.eos[0]])];
  return { generated, score: h.score, sumLogprobs: h.sumLogprobs, length: h.length, finishedAt: h.finishedAt, beamIndices: h.beamIndices, returned };
}

/** Beam search over one input through beamSteps, the loop generate() runs, with each beam's stages and attention. */
function* traceBeams(model: GenerativeModel, inputs: { inputIds: number[][]; attentionMask: number[][] }, r: ResolvedGeneration, captured: Map<string, Tensor>): Generator<GenerationEvent> {
  const lengthPenalty = r.options.lengthPenalty ?? 1;
  const steps = beamSteps(model, inputs, r, { traceStages: true });
  let lastDone = false;
  for (;;) {
    captured.clear();
    const next = steps.next();
    if (next.done) {
      const { result, hypotheses } = next.value;
      yield {
        type: 'beam-end',
        hypotheses: hypotheses[0].map((h, rank) => hypothesisRecord(h, r, rank < r.numReturnSequences)),
        sequences: result.sequences,
        sequencesScores: result.sequencesScores ?? [],
        reason: lastDone ? 'done' : 'length',
      };
      return;
    }
    const e = next.value;
    const logits = e.logits ?? [];
    const beams = e.sequences.map((tokens, j): BeamState => ({
      beam: j,
      tokens,
      score: e.beamScores[j],
      normalised: normalisedScore(e.beamScores[j], tokens.length - r.promptLength, lengthPenalty),
      copy: e.step === 0 && j > 0,
      position: tokens.length - 1,
      stages: [
        { name: 'logits', scores: logits[j] },
        { name: 'log_softmax', scores: logSoftmaxRow(logits[j]) },
        ...(e.stages ?? []).map((s) => ({ name: s.name, scores: s.scores[j] })),
      ],
      attention: attentionOf(captured, j),
    }));
    const kept = new Set(e.parents);
    lastDone = e.done[0];
    yield {
      type: 'beam-step',
      step: e.step,
      beams,
      candidates: e.candidates[0],
      finished: e.finished[0].map((f) => ({
        beam: f.beam,
        hypothesis: hypothesisRecord(f.hypothesis, r, false),
        kept: f.kept,
        evicted: f.evicted && hypothesisRecord(f.evicted, r, false),
      })),
      dropped: beams.filter((b) => !b.copy && !kept.has(b.beam)).map((b) => b.beam),
      next: e.parents.map((parent, j) => ({ parent, token: e.tokens[j], score: e.nextScores[j] })),
      done: e.done[0],
    };
  }
}
