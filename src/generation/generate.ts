/**
 * `generate()`: autoregressive decoding of any `GenerativeModel`, with the
 * semantics of Hugging Face `GenerationMixin.generate` (transformers v4.47):
 * greedy search, sampling, or beam search; logits processors in HF's order;
 * stopping criteria; finished rows filled with the pad token. Every option
 * either works as in HF or is rejected with a typed error.
 */
import { ConfigError, ShapeError, UnsupportedError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { beamSearch } from './beam-search.js';
import { checkOptionNames, tokenList, type GenerateOptions } from './options.js';
import * as P from './processors.js';
import { argmax, sample, seededRandom, type Random } from './samplers.js';
import { anyDone, eosCriterion, maxLengthCriterion, maxTimeCriterion, stopStringCriterion, type StoppingCriterion } from './stopping.js';
import type { DecodingSession, GenerativeModel } from './types.js';

export interface GenerateInputs {
  /** Prompt ids (decoder-only, left-padded) or encoder input ids (seq2seq), [batch, seq]. */
  inputIds: readonly (readonly number[])[];
  /** 1 for real tokens, 0 for padding; when absent, HF's rule (ids ≠ pad, unless pad = eos). */
  attentionMask?: readonly (readonly number[])[];
}

/** One processing stage's output, for tracing "the scores after each stage". */
export interface StageScores {
  name: string;
  scores: Float32Array[];
}

/** What happened at one decoding step (greedy and sampling). */
export interface StepEvent {
  step: number;
  /** The token chosen for each row (pad for rows already finished). */
  tokens: number[];
  /** Which rows are finished after this step. */
  finished: boolean[];
  /** log-probability of each chosen token under the processed distribution. */
  logprobs: number[];
  /** Raw logits, one row per sequence (present with `traceStages`). */
  logits?: Float32Array[];
  /** Scores after each logits processor, in order (present with `traceStages`). */
  stages?: StageScores[];
}

export interface GenerateCallbacks {
  /** Turns generated ids into text; required for stop strings. */
  decode?: (ids: number[]) => string;
  /** Called after every step (not for beam search). */
  onStep?: (event: StepEvent) => void;
  /** Copy the raw logits and every stage's scores into each StepEvent. */
  traceStages?: boolean;
  /** A uniform random source instead of the one seeded by `seed`. */
  random?: Random;
}

export interface GenerateResult {
  /** Full sequences: prompt + generated (decoder-only) or decoder start + generated (seq2seq). */
  sequences: number[][];
  /** Beam search: HF's length-normalised score of each returned sequence. */
  sequencesScores?: number[];
  /** Greedy / sampling: log-probability of each generated token under the processed distribution. */
  tokenLogprobs?: number[][];
  /** With outputScores: the processed scores of each step, [steps, rows, vocab]. */
  scores?: Tensor;
  /** With outputLogits: the raw logits of each step, [steps, rows, vocab]. */
  logits?: Tensor;
}

/** Everything generate() needs after merging the defaults and validating. */
export interface ResolvedGeneration {
  mode: 'greedy' | 'sample' | 'beam';
  options: GenerateOptions;
  eos: number[];
  pad: number;
  maxLength: number;
  promptLength: number;
  numBeams: number;
  numReturnSequences: number;
  processors: P.LogitsProcessor[];
  stopping: StoppingCriterion[];
  random: Random;
  isEncoderDecoder: boolean;
  decoderStart?: number;
}

const SAMPLING_KEYS: (keyof GenerateOptions)[] = ['temperature', 'topK', 'topP', 'minP', 'typicalP', 'epsilonCutoff', 'etaCutoff', 'seed'];

/** HF `_prepare_attention_mask_for_generation`: pad positions are masked unless pad is also EOS. */
export function defaultAttentionMask(inputIds: readonly (readonly number[])[], pad: number | undefined, eos: readonly number[]): number[][] {
  const hasPad = pad !== undefined && inputIds.some((row) => row.includes(pad));
  const maskPads = hasPad && !eos.includes(pad);
  return inputIds.map((row) => row.map((t) => (maskPads && t === pad ? 0 : 1)));
}

/**
 * Merge `options` over `defaults` (generation_config.json) and check them:
 * HF's decoding mode, lengths, and the logits processors in HF's order.
 */
export function resolveGeneration(model: GenerativeModel, inputs: GenerateInputs, options: GenerateOptions, defaults: GenerateOptions, callbacks: GenerateCallbacks = {}): ResolvedGeneration {
  checkOptionNames(options, 'generate()');
  const o: GenerateOptions = { ...defaults, ...options };
  const numBeams = o.numBeams ?? 1;
  const doSample = o.doSample ?? false;
  if (!Number.isInteger(numBeams) || numBeams < 1) throw new ConfigError(`numBeams must be a positive integer, found ${numBeams}`);
  if (doSample && numBeams > 1) throw new UnsupportedError('beam sampling (doSample with numBeams > 1) is not supported; use one of them');
  if (!doSample) {
    const explicit = SAMPLING_KEYS.filter((k) => options[k] !== undefined && !(k === 'temperature' && options[k] === 1));
    if (explicit.length > 0) throw new ConfigError(`${explicit.join(', ')} only apply when sampling; pass doSample: true (or drop them)`);
  }
  const mode = numBeams > 1 ? 'beam' : doSample ? 'sample' : 'greedy';
  const numReturnSequences = o.numReturnSequences ?? 1;
  if (mode === 'greedy' && numReturnSequences !== 1) throw new ConfigError(`greedy decoding returns one sequence per input; numReturnSequences=${numReturnSequences} needs sampling or beam search`);
  if (mode === 'beam' && numReturnSequences > numBeams) throw new ConfigError(`numReturnSequences (${numReturnSequences}) must not exceed numBeams (${numBeams})`);
  const eos = tokenList(o.eosTokenId);
  // HF falls back to the first EOS id as the pad token (with a warning) when none is set.
  const pad = o.padTokenId ?? eos[0];
  if (inputs.inputIds.length === 0) throw new ShapeError('generate(): no input rows');
  const isEncoderDecoder = model.isEncoderDecoder;
  let decoderStart: number | undefined;
  if (isEncoderDecoder) {
    decoderStart = o.decoderStartTokenId ?? o.bosTokenId ?? undefined;
    if (decoderStart === undefined) throw new ConfigError('generate(): an encoder-decoder model needs decoderStartTokenId (or bosTokenId)');
  }
  const promptLength = isEncoderDecoder ? 1 : inputs.inputIds[0].length;
  const maxLength = o.maxNewTokens !== undefined ? promptLength + o.maxNewTokens : (o.maxLength ?? 20);
  if (maxLength <= promptLength) throw new ConfigError(`generate(): max length ${maxLength} leaves no room after the ${promptLength}-token input; raise maxNewTokens`);
  if ((o.minLength ?? 0) > 0 || (o.minNewTokens ?? 0) > 0 || o.forcedEosTokenId !== undefined) {
    if (eos.length === 0 && o.forcedEosTokenId === undefined) throw new ConfigError('minLength / minNewTokens need an eosTokenId to suppress');
  }
  const stopStrings = typeof o.stopStrings === 'string' ? [o.stopStrings] : (o.stopStrings ?? []);
  if (stopStrings.length > 0 && !callbacks.decode) throw new ConfigError('stopStrings need a decode function (a tokenizer) to read the generated text');
  if (pad === undefined && (eos.length > 0 || mode === 'beam')) throw new ConfigError('generate(): padTokenId is needed to fill finished rows');
  const minKeep = mode === 'beam' ? eos.length + 1 : 1;
  const processors = buildProcessors(o, { doSample, maxLength, eos, minTokensToKeep: minKeep, isEncoderDecoder });
  const stopping: StoppingCriterion[] = [maxLengthCriterion(maxLength)];
  if (o.maxTime !== undefined) stopping.push(maxTimeCriterion(o.maxTime));
  if (stopStrings.length > 0 && callbacks.decode) stopping.push(stopStringCriterion(stopStrings, callbacks.decode));
  if (eos.length > 0) stopping.push(eosCriterion(eos));
  const seed = o.seed ?? Math.floor(Math.random() * 2 ** 32);
  return {
    mode,
    options: o,
    eos,
    pad: pad ?? 0,
    maxLength,
    promptLength,
    numBeams,
    numReturnSequences,
    processors,
    stopping,
    random: callbacks.random ?? seededRandom(seed),
    isEncoderDecoder,
    decoderStart,
  };
}

/** The logits processors in the order HF's `_get_logits_processor` builds them, then the sampling warpers. */
export function buildProcessors(
  o: GenerateOptions,
  c: { doSample: boolean; maxLength: number; eos: number[]; minTokensToKeep: number; isEncoderDecoder: boolean },
): P.LogitsProcessor[] {
  const list: P.LogitsProcessor[] = [];
  if (o.repetitionPenalty !== undefined && o.repetitionPenalty !== 1) list.push(P.repetitionPenalty(o.repetitionPenalty));
  if ((o.presencePenalty ?? 0) !== 0 || (o.frequencyPenalty ?? 0) !== 0) list.push(P.presenceFrequencyPenalty(o.presencePenalty ?? 0, o.frequencyPenalty ?? 0));
  if (o.noRepeatNgramSize !== undefined && o.noRepeatNgramSize > 0) list.push(P.noRepeatNgram(o.noRepeatNgramSize));
  if (o.badWordsIds && o.badWordsIds.length > 0) list.push(P.noBadWords(o.badWordsIds, c.eos));
  if ((o.minLength ?? 0) > 0 && c.eos.length > 0) list.push(P.minLength(o.minLength ?? 0, c.eos));
  if ((o.minNewTokens ?? 0) > 0 && c.eos.length > 0) list.push(P.minNewTokens(o.minNewTokens ?? 0, c.eos));
  if (o.forcedBosTokenId !== undefined && o.forcedBosTokenId !== null) {
    if (!c.isEncoderDecoder) throw new UnsupportedError('forcedBosTokenId applies to encoder-decoder models (the first decoder token); a decoder-only prompt already has its BOS');
    list.push(P.forcedBos(o.forcedBosTokenId));
  }
  const forcedEos = tokenList(o.forcedEosTokenId);
  if (forcedEos.length > 0) list.push(P.forcedEos(c.maxLength, forcedEos));
  if (o.removeInvalidValues) list.push(P.removeInvalidValues());
  if (o.suppressTokens && o.suppressTokens.length > 0) list.push(P.suppressTokens(o.suppressTokens));
  if (o.beginSuppressTokens && o.beginSuppressTokens.length > 0) {
    // HF: with a forced BOS, an encoder-decoder's first free position is the second one.
    const forcedFirst = c.isEncoderDecoder && o.forcedBosTokenId !== undefined && o.forcedBosTokenId !== null;
    list.push(P.suppressTokensAtBegin(o.beginSuppressTokens, forcedFirst ? 1 : 0));
  }
  if (c.doSample) {
    const keep = c.minTokensToKeep;
    if (o.temperature !== undefined && o.temperature !== 1) list.push(P.temperature(o.temperature));
    // GenerationConfig's default top_k is 50: sampling without a topK still keeps only the 50 best, as HF does.
    const k = o.topK ?? 50;
    if (k !== 0) list.push(P.topK(k, keep));
    if (o.topP !== undefined && o.topP < 1) list.push(P.topP(o.topP, keep));
    if (o.minP !== undefined) list.push(P.minP(o.minP, keep));
    if (o.typicalP !== undefined && o.typicalP < 1) list.push(P.typicalP(o.typicalP, keep));
    if (o.epsilonCutoff !== undefined && o.epsilonCutoff > 0) list.push(P.epsilonCutoff(o.epsilonCutoff, keep));
    if (o.etaCutoff !== undefined && o.etaCutoff > 0) list.push(P.etaCutoff(o.etaCutoff, keep));
  }
  if (o.renormalizeLogits) list.push(P.renormalize());
  return list;
}

/** Run the processors over copies of the logits; returns the final scores and, when traced, each stage. */
export function processScores(
  logits: Tensor,
  processors: readonly P.LogitsProcessor[],
  context: P.ProcessorContext,
  trace: boolean,
  transform?: (row: Float32Array) => Float32Array,
): { scores: Float32Array[]; stages?: StageScores[] } {
  const [rows, vocab] = logits.shape;
  const data = logits.f32();
  const scores = Array.from({ length: rows }, (_, r) => {
    const row = data.slice(r * vocab, (r + 1) * vocab);
    return transform ? transform(row) : row;
  });
  const stages: StageScores[] | undefined = trace ? [] : undefined;
  for (const p of processors) {
    p.apply(scores, context);
    stages?.push({ name: p.name, scores: scores.map((s) => s.slice()) });
  }
  return { scores, stages };
}

/** Rows each input is repeated into, and the first ids the session is fed. */
export function startRows(r: ResolvedGeneration, inputIds: readonly (readonly number[])[], expandBy: number): number[][] {
  const rows: number[][] = [];
  for (const row of inputIds) for (let i = 0; i < expandBy; i++) rows.push(r.isEncoderDecoder ? [r.decoderStart as number] : [...row]);
  return rows;
}

export function stackSteps(steps: Float32Array[][]): Tensor {
  const rows = steps[0]?.length ?? 0;
  const vocab = steps[0]?.[0]?.length ?? 0;
  const out = new Float32Array(steps.length * rows * vocab);
  steps.forEach((step, s) => step.forEach((row, r) => out.set(row, (s * rows + r) * vocab)));
  return new Tensor('f32', [steps.length, rows, vocab], out);
}

/**
 * Greedy search or sampling as a generator: yields one StepEvent per step and
 * returns the result (HF `_sample`). Finished rows get the pad token.
 */
export function* decodeSteps(model: GenerativeModel, inputs: GenerateInputs, r: ResolvedGeneration, callbacks: GenerateCallbacks = {}): Generator<StepEvent, GenerateResult> {
  const expandBy = r.mode === 'sample' ? r.numReturnSequences : 1;
  const attentionMask = inputs.attentionMask ?? defaultAttentionMask(inputs.inputIds, r.options.padTokenId ?? undefined, r.eos);
  const session: DecodingSession = model.startSession({ inputIds: inputs.inputIds, attentionMask, expandBy });
  const sequences = startRows(r, inputs.inputIds, expandBy);
  const unfinished = sequences.map(() => true);
  const logprobs: number[][] = sequences.map(() => []);
  const keptScores: Float32Array[][] = [];
  const keptLogits: Float32Array[][] = [];
  let feed: number[][] = sequences.map((s) => [...s]);
  for (let step = 0; ; step++) {
    const logits = session.step(feed); // [rows, vocab]
    const context = { ids: sequences, curLen: sequences[0].length, promptLength: r.promptLength };
    const { scores, stages } = processScores(logits, r.processors, context, callbacks.traceStages ?? false);
    const tokens = scores.map((row, i) => {
      if (!unfinished[i]) return r.pad;
      return r.mode === 'sample' ? sample(row, r.random) : argmax(row);
    });
    const stepLogprobs = scores.map((row, i) => P.logSoftmaxAt(row, tokens[i]));
    tokens.forEach((t, i) => {
      sequences[i].push(t);
      if (unfinished[i]) logprobs[i].push(stepLogprobs[i]);
    });
    if (r.options.outputScores) keptScores.push(scores);
    if (r.options.outputLogits) keptLogits.push(rowsOf(logits));
    anyDone(r.stopping, { ids: sequences, promptLength: r.promptLength }).forEach((d, i) => (unfinished[i] &&= !d));
    yield {
      step,
      tokens,
      finished: unfinished.map((u) => !u),
      logprobs: stepLogprobs,
      logits: callbacks.traceStages ? rowsOf(logits) : undefined,
      stages,
    };
    if (!unfinished.some((u) => u)) break;
    feed = tokens.map((t) => [t]);
  }
  return {
    sequences,
    tokenLogprobs: logprobs,
    scores: r.options.outputScores ? stackSteps(keptScores) : undefined,
    logits: r.options.outputLogits ? stackSteps(keptLogits) : undefined,
  };
}

export function rowsOf(t: Tensor): Float32Array[] {
  const [rows, vocab] = t.shape;
  const data = t.f32();
  return Array.from({ length: rows }, (_, i) => data.slice(i * vocab, (i + 1) * vocab));
}

/**
 * Generate continuations. `defaults` are the model's generation_config.json
 * (see `generationOptionsFromJson`); `options` override them.
 */
export function generate(
  model: GenerativeModel,
  inputs: GenerateInputs,
  options: GenerateOptions = {},
  defaults: GenerateOptions = {},
  callbacks: GenerateCallbacks = {},
): GenerateResult {
  const r = resolveGeneration(model, inputs, options, defaults, callbacks);
  if (r.mode === 'beam') {
    if (callbacks.onStep) throw new UnsupportedError('per-step callbacks and streaming are not available with beam search (the best sequence is only known at the end)');
    return beamSearch(model, inputs, r);
  }
  const steps = decodeSteps(model, inputs, r, callbacks);
  for (;;) {
    const next = steps.next();
    if (next.done) return next.value;
    callbacks.onStep?.(next.value);
  }
}
