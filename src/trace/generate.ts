/**
 * Generation traces: decode with src/generation's own loop (the same
 * processors, samplers and stopping rules as `generate()`), and at every step
 * report the raw logits, the scores after each processing stage, the chosen
 * token with its log-probability, and the new token's attention rows over the
 * keys so far (and, in encoder-decoders, over the encoder output).
 */
import { UnsupportedError } from '../errors.js';
import { decodeSteps, resolveGeneration } from '../generation/generate.js';
import type { GenerateOptions } from '../generation/options.js';
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

export type GenerationEvent =
  | { type: 'start'; inputIds: number[]; attentionMask: number[]; decoderStart?: number; mode: 'greedy' | 'sample'; stages: string[] }
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
  | { type: 'end'; ids: number[]; generated: number[]; reason: 'eos' | 'length' };

export interface GenerationTraceOptions {
  /** generate() options (maxNewTokens, doSample, temperature, topK, topP, repetitionPenalty, …). Beam search is refused. */
  options?: GenerateOptions;
  /** The model's generation_config.json; its special tokens default to the model's own. */
  defaults?: GenerateOptions;
  /** A uniform random source for sampling (else `options.seed`). */
  random?: Random;
  /** Hooks that read or replace intermediates at every step (e.g. `ablateHead`), to see how generation changes. */
  hooks?: readonly HookSpec[];
}

/** The last query's rows of a pattern [1, heads, queries, keys] → [heads, keys]. */
function lastQuery(pattern: Tensor): Tensor {
  const [, heads, queries, keys] = pattern.shape;
  return pattern.slice(2, queries - 1, queries).reshape([heads, keys]);
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
  if (resolved.mode === 'beam') throw new UnsupportedError('generation traces follow one sequence; beam search (numBeams > 1) keeps several and is not traced');
  yield { type: 'start', inputIds: input.inputIds, attentionMask, decoderStart: resolved.decoderStart, mode: resolved.mode, stages: resolved.processors.map((p) => p.name) };

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
      attention: new Map(captured),
    };
    length++;
  }
}
