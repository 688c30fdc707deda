/**
 * One traced run, as a trace file (docs/trace-format.md): the tokens, each
 * stack's embeddings, positional encoding, attention focus and residual
 * norms, the logit lens, the top next-token candidates, and, for models that
 * generate, every decoding step. The text account and the HTML report are
 * both drawn from this one document.
 */
import { ShapeError } from '../errors.js';
import type { GenerateOptions } from '../generation/options.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ActivationCache } from './cache.js';
import { serialiseWithin, type Budget, type EncodedTensor, type PendingTensor, type Precision } from './encoding.js';
import { traceGeneration, type GenerationEvent, type HypothesisRecord } from './generate.js';
import { directLogitAttribution, logitLens, rowAt, topTokens, type LogitAttribution, type TokenProbability } from './lens.js';
import { runWithCache } from './run.js';
import type { ModelDescription, StackDescription, TraceableModel, TraceInputs } from './types.js';

export const TRACE_FORMAT = 'glassformer-trace';
export const TRACE_VERSION = 1;

export interface TokenInfo {
  id: number;
  text: string;
}

export interface RankedToken extends TokenProbability {
  text: string;
}

/** A vector shown by its first values and its length. */
export interface VectorSummary {
  first: number[];
  norm: number;
}

/** Where each query position of one head looks most: the key position and its attention weight. */
export interface HeadFocus {
  head: number;
  key: number[];
  weight: number[];
}

export interface BlockSummary {
  layer: number;
  /** ‖resid_post‖ at each position. */
  residNorm: number[];
  attention: HeadFocus[];
  /** Decoder blocks of encoder-decoders: focus over the encoder positions. */
  crossAttention?: HeadFocus[];
  /** Keys into `tensors` of this block's attention patterns [heads, queries, keys] (batch row 0). */
  patterns: { self: string; cross?: string };
}

export interface StackSummary {
  prefix: StackDescription['prefix'];
  /** Which token list the positions refer to. */
  tokens: 'input' | 'decoder';
  /** The token embeddings (`embed`), per position. */
  embedding: VectorSummary[];
  positional: {
    kind: ModelDescription['positions'];
    note: string;
    /** Added position vectors (`pos_embed`), per position. */
    vectors?: VectorSummary[];
    /** Relative-bias models (T5): per head, the bias added to a score at each distance key − query seen in this input. */
    bias?: { distances: number[]; heads: number[][] };
    /** Rotary models: per position, the angle (radians, in [0, 2π)) by which layer 0 rotated the first query pairs, read from `attn.q` and `attn.rotary_q`. */
    rotation?: { pairs: number[]; angles: number[][] };
  };
  /** ‖resid_pre of block 0‖: the stream entering the first layer. */
  inputNorm: number[];
  blocks: BlockSummary[];
}

export interface StepRecord {
  step: number;
  position: number;
  token: number;
  text: string;
  logprob: number;
  rawLogprob: number;
  /** Top tokens after each stage (`logits` first). */
  stages: { name: string; top: RankedToken[] }[];
  /** Attention hook name → key into `tensors` of the new token's rows [heads, keys]. */
  attention: Record<string, string>;
}

/** One beam at a beam-search step (the step-0 copies of the first beam are left out). */
export interface BeamRecord {
  beam: number;
  /** Its generated tokens so far. */
  generated: TokenInfo[];
  /** Sum of its generated tokens' processed log-probabilities. */
  score: number;
  /** score / generated^lengthPenalty; null before its first generated token. */
  normalised: number | null;
  /** Query position of its last token (the one fed at this step). */
  position: number;
  /** Top tokens after each stage (`logits`, `log_softmax`, then each processor). */
  stages: { name: string; top: RankedToken[] }[];
  /** Attention hook name → key into `tensors` of its last token's rows [heads, keys]. */
  attention: Record<string, string>;
}

/** A HypothesisRecord (src/trace/generate.ts) with its tokens spelled out. */
export type HypothesisInfo = Omit<HypothesisRecord, 'generated'> & { generated: TokenInfo[] };

export interface BeamStepRecord {
  step: number;
  beams: BeamRecord[];
  /** The best candidates in rank order; `fate` says what became of each (docs/trace.md). */
  candidates: { beam: number; token: TokenInfo; logprob: number; score: number; fate: string; slot?: number }[];
  finished: { beam: number; hypothesis: HypothesisInfo; kept: boolean; evicted?: HypothesisInfo }[];
  dropped: number[];
  next: { parent: number; token: TokenInfo; score: number }[];
  done: boolean;
}

export interface BeamTrace {
  numBeams: number;
  lengthPenalty: number;
  earlyStopping: boolean | 'never';
  numReturnSequences: number;
  steps: BeamStepRecord[];
  /** Every finished hypothesis, best first. */
  hypotheses: HypothesisInfo[];
  /** generate()'s sequences_scores for the returned sequences. */
  sequencesScores: number[];
}

export interface TraceFile {
  format: typeof TRACE_FORMAT;
  version: typeof TRACE_VERSION;
  created: string;
  /** Where the model came from (a folder path), as given. */
  source: string;
  model: ModelDescription;
  tokens: { input: TokenInfo[]; decoder?: TokenInfo[] };
  stacks: StackSummary[];
  /** Top next-token candidates at each position of the lens stack; null without a language-model head. */
  predictions: RankedToken[][] | null;
  lens: { stack: string; layers: { label: string; name: string; positions: RankedToken[][] }[] } | null;
  /** Beam search fills `beam` and leaves `steps` empty; `generated` is then the best sequence's. */
  generation: { mode: string; stages: string[]; steps: StepRecord[]; generated: TokenInfo[]; reason: string; beam?: BeamTrace } | null;
  /** Sequence classifiers: every label with its probability, most probable first. */
  classification: { label: string; id: number; prob: number; logit: number }[] | null;
  /** Direct logit attribution of the top prediction at the last position; null when the read-out is not linear after the final norm. */
  attribution: (Omit<LogitAttribution, 'token' | 'row'> & { token: TokenInfo }) | null;
  tensors: Record<string, EncodedTensor>;
  budget: Budget;
}

export interface TraceRequest {
  /** The prompt (decoder-only) or the encoder input, one row. */
  inputIds: number[];
  /** Encoder-decoders: decoder ids to teacher-force; by default the decoder start token, then whatever is generated. */
  decoderInputIds?: number[];
  tokenTypeIds?: number[];
  source: string;
}

export interface TraceOptions {
  /** Token id → text (a tokenizer's id_to_token); `side` says which vocabulary (the 2017 Transformer has two). */
  tokenText?: (id: number, side: 'input' | 'decoder') => string;
  /** Decode this many tokens after the prompt (0: no generation). */
  maxNewTokens?: number;
  /** generate() options beyond maxNewTokens (sampling, penalties). */
  generateOptions?: GenerateOptions;
  /** generation_config.json. */
  generationDefaults?: GenerateOptions;
  /** Candidates per position and per stage (default 5). */
  k?: number;
  /** Cap on the trace file's size in bytes (default 8 MiB). */
  maxBytes?: number;
  /** Precision of stored tensors (default f16). */
  precision?: Precision;
  /** Each generation event as it happens (streaming). */
  onEvent?: (event: GenerationEvent) => void;
}

function vectorSummary(v: Float32Array, first = 6): VectorSummary {
  let ss = 0;
  for (const x of v) ss += x * x;
  return { first: Array.from(v.subarray(0, first), (x) => Number(x.toPrecision(5))), norm: Number(Math.sqrt(ss).toPrecision(5)) };
}

/** Per position of batch row 0 of a [batch, seq, d] tensor (or [1, seq, d] broadcast positions). */
function perPosition(t: Tensor): VectorSummary[] {
  return Array.from({ length: t.shape[1] }, (_, p) => vectorSummary(rowAt(t, 0, p)));
}

function norms(t: Tensor): number[] {
  return perPosition(t).map((v) => v.norm);
}

/** Batch row 0 of a pattern [batch, heads, queries, keys] → [heads, queries, keys]. */
function firstRow(pattern: Tensor): Tensor {
  return pattern.at(0);
}

function focus(pattern: Tensor): HeadFocus[] {
  const [heads, queries, keys] = pattern.shape;
  const p = pattern.f32();
  return Array.from({ length: heads }, (_, h) => {
    const key: number[] = [];
    const weight: number[] = [];
    for (let q = 0; q < queries; q++) {
      const row = p.subarray((h * queries + q) * keys, (h * queries + q + 1) * keys);
      let best = 0;
      for (let j = 1; j < keys; j++) if (row[j] > row[best]) best = j;
      key.push(best);
      weight.push(Number(row[best].toPrecision(4)));
    }
    return { head: h, key, weight };
  });
}

const SUMMARY_NAMES = /(^|\.)(embed|pos_embed|position_bias)$|(^|\.)blocks\.0\.attn\.(q|rotary_q)$|attn\.pattern$|\.resid_pre$|\.resid_post$|attn\.out$|mlp\.out$/;

const POSITIONAL_NOTES: Record<ModelDescription['positions'], string> = {
  sinusoidal: 'a fixed sinusoid added to each token embedding (Vaswani et al. 2017 §3.5)',
  learned: 'a learned vector per position added to each token embedding',
  rotary: 'no vector is added: queries and keys are rotated by an angle proportional to the position (RoPE; hooks blocks.{i}.attn.rotary_q / rotary_k)',
  'relative-bias': 'no vector is added: each attention score gets a learned bias per head for the bucketed distance key − query (hook position_bias)',
};

/** T5's bias [1, heads, queries, keys] depends only on key − query: read it once per distance, from −4 to +4 where present. */
function biasByDistance(bias: Tensor): { distances: number[]; heads: number[][] } {
  const [, heads, queries, keys] = bias.shape;
  const b = bias.f32();
  const distances: number[] = [];
  const values: number[][] = Array.from({ length: heads }, () => []);
  for (let d = -4; d <= 4; d++) {
    // The pair (q, q + d) with q as small as the input allows.
    const q = Math.max(0, -d);
    if (q >= queries || q + d >= keys) continue;
    distances.push(d);
    for (let h = 0; h < heads; h++) values[h].push(Number(b[(h * queries + q) * keys + q + d].toPrecision(4)));
  }
  return { distances, heads: values };
}

/**
 * RoPE in the rotate_half layout turns each pair (x[i], x[i + dh/2]) of a query,
 * read as the complex number x[i] + j·x[i + dh/2], by position · θ^(−2i/dh).
 * The angle is recovered from the hooks (after − before), for head 0 of row 0
 * and the first three pairs.
 */
function rotationAngles(q: Tensor, rotated: Tensor): { pairs: number[]; angles: number[][] } {
  const [, , seq, dh] = q.shape;
  const half = dh / 2;
  const pairs = [0, 1, 2].filter((i) => i < half);
  const a = q.f32();
  const b = rotated.f32();
  const tau = 2 * Math.PI;
  const angles = Array.from({ length: seq }, (_, t) =>
    pairs.map((i) => {
      const at = t * dh; // head 0 of batch row 0
      const turn = Math.atan2(b[at + i + half], b[at + i]) - Math.atan2(a[at + i + half], a[at + i]);
      return Number((((turn % tau) + tau) % tau).toPrecision(5));
    }),
  );
  return { pairs, angles };
}

function summariseStack(stack: StackDescription, cache: ActivationCache, family: ModelDescription['family'], kind: ModelDescription['positions'], pending: PendingTensor[]): StackSummary {
  const p = stack.prefix;
  const has = (n: string) => cache.has(p + n);
  const blocks = Array.from({ length: stack.layers }, (_, i): BlockSummary => {
    const self = firstRow(cache.get(`${p}blocks.${i}.attn.pattern`));
    const selfKey = `forward/${p}blocks.${i}.attn.pattern`;
    pending.push({ key: selfKey, tensor: self, summaryK: 3 });
    const block: BlockSummary = { layer: i, residNorm: norms(cache.get(`${p}blocks.${i}.resid_post`)), attention: focus(self), patterns: { self: selfKey } };
    if (stack.crossAttention) {
      const cross = firstRow(cache.get(`${p}blocks.${i}.cross_attn.pattern`));
      block.crossAttention = focus(cross);
      block.patterns.cross = `forward/${p}blocks.${i}.cross_attn.pattern`;
      pending.push({ key: block.patterns.cross, tensor: cross, summaryK: 3 });
    }
    return block;
  });
  return {
    prefix: p,
    tokens: family === 'encoder-decoder' && stack.input === 'decoderInputIds' ? 'decoder' : 'input',
    embedding: perPosition(cache.get(`${p}embed`)),
    positional: {
      kind,
      note: POSITIONAL_NOTES[kind],
      vectors: has('pos_embed') ? perPosition(cache.get(`${p}pos_embed`)) : undefined,
      bias: has('position_bias') ? biasByDistance(cache.get(`${p}position_bias`)) : undefined,
      rotation: has('blocks.0.attn.rotary_q') ? rotationAngles(cache.get(`${p}blocks.0.attn.q`), cache.get(`${p}blocks.0.attn.rotary_q`)) : undefined,
    },
    inputNorm: norms(cache.get(`${p}blocks.0.resid_pre`)),
    blocks,
  };
}

/**
 * Trace one input: optionally generate, then one forward pass over the whole
 * sequence with every intermediate cached, summarised into a trace file.
 * Returns the document and its JSON text (within the size cap).
 */
export async function buildTrace(model: TraceableModel, request: TraceRequest, options: TraceOptions = {}): Promise<{ file: TraceFile; json: string }> {
  const d = model.description;
  const k = options.k ?? 5;
  const text = (id: number, side: 'input' | 'decoder') => options.tokenText?.(id, side) ?? `#${id}`;
  const outSide: 'input' | 'decoder' = d.family === 'encoder-decoder' ? 'decoder' : 'input';
  const ranked = (top: TokenProbability[]): RankedToken[] =>
    top.map((t) => ({ id: t.id, prob: Number(t.prob.toPrecision(5)), logit: Number(t.logit.toPrecision(6)), text: text(t.id, outSide) }));
  const pending: PendingTensor[] = [];

  let generation: TraceFile['generation'] = null;
  let sequence: number[] | undefined;
  const stepTensors: PendingTensor[] = [];
  if ((options.maxNewTokens ?? 0) > 0) {
    const steps: StepRecord[] = [];
    let mode = 'greedy';
    let stageNames: string[] = [];
    const events = traceGeneration(model, { inputIds: request.inputIds }, { options: { ...options.generateOptions, maxNewTokens: options.maxNewTokens }, defaults: options.generationDefaults });
    const tokenInfo = (id: number): TokenInfo => ({ id, text: text(id, outSide) });
    const hypothesis = (h: HypothesisRecord): HypothesisInfo => ({ ...h, generated: h.generated.map(tokenInfo) });
    let beam: BeamTrace | undefined;
    let promptLength = 0;
    for await (const e of events) {
      options.onEvent?.(e);
      if (e.type === 'start') {
        mode = e.mode;
        stageNames = e.stages;
        promptLength = d.family === 'encoder-decoder' ? 1 : e.inputIds.length;
        if (e.beam) beam = { ...e.beam, steps: [], hypotheses: [], sequencesScores: [] };
      } else if (e.type === 'beam-step' && beam) {
        const beams = e.beams.filter((b) => !b.copy).map((b): BeamRecord => {
          const attention: Record<string, string> = {};
          for (const [name, rows] of b.attention) {
            attention[name] = `beam.${e.step}.${b.beam}/${name}`;
            stepTensors.push({ key: attention[name], tensor: rows, summaryK: 3 });
          }
          return {
            beam: b.beam,
            generated: b.tokens.slice(promptLength).map(tokenInfo),
            score: b.score,
            normalised: b.normalised,
            position: b.position,
            stages: b.stages.map((s) => ({ name: s.name, top: ranked(topTokens(s.scores, k)) })),
            attention,
          };
        });
        beam.steps.push({
          step: e.step,
          beams,
          candidates: e.candidates.map((c) => ({ beam: c.beam, token: tokenInfo(c.token), logprob: c.logprob, score: c.score, fate: c.fate, slot: c.slot })),
          finished: e.finished.map((f) => ({ beam: f.beam, hypothesis: hypothesis(f.hypothesis), kept: f.kept, evicted: f.evicted && hypothesis(f.evicted) })),
          dropped: e.dropped,
          next: e.next.map((n) => ({ parent: n.parent, token: tokenInfo(n.token), score: n.score })),
          done: e.done,
        });
      } else if (e.type === 'beam-end' && beam) {
        sequence = e.sequences[0];
        beam.hypotheses = e.hypotheses.map(hypothesis);
        beam.sequencesScores = e.sequencesScores;
        generation = { mode, stages: stageNames, steps, generated: sequence.slice(promptLength).map(tokenInfo), reason: e.reason, beam };
      } else if (e.type === 'step') {
        const attention: Record<string, string> = {};
        for (const [name, rows] of e.attention) {
          attention[name] = `step.${e.step}/${name}`;
          stepTensors.push({ key: attention[name], tensor: rows, summaryK: 3 });
        }
        steps.push({
          step: e.step,
          position: e.position,
          token: e.token,
          text: text(e.token, outSide),
          logprob: e.logprob,
          rawLogprob: e.rawLogprob,
          stages: e.stages.map((s) => ({ name: s.name, top: ranked(topTokens(s.scores, k)) })),
          attention,
        });
      } else if (e.type === 'end') {
        sequence = e.ids;
        generation = { mode, stages: stageNames, steps, generated: e.generated.map((id) => ({ id, text: text(id, outSide) })), reason: e.reason };
      }
    }
  }

  const inputs: TraceInputs = { inputIds: [request.inputIds], tokenTypeIds: request.tokenTypeIds ? [request.tokenTypeIds] : undefined };
  if (d.family === 'decoder' && sequence) inputs.inputIds = [sequence];
  if (d.family === 'encoder-decoder') {
    const start = d.specialTokens.decoderStart;
    const decoder = request.decoderInputIds ?? sequence ?? (start !== undefined ? [start] : undefined);
    if (!decoder) throw new ShapeError(`${d.modelType}: give decoder ids (the model names no decoder start token)`);
    inputs.decoderInputIds = [decoder];
  }
  // Only what the summary, the lens and the attribution read: a full cache of a large model would be mostly waste.
  const { output, cache } = runWithCache(model, inputs, { names: SUMMARY_NAMES });

  const stacks = d.stacks.map((s) => summariseStack(s, cache, d.family, d.positions, pending));
  let predictions: TraceFile['predictions'] = null;
  let lens: TraceFile['lens'] = null;
  let attribution: TraceFile['attribution'] = null;
  if (model.readOut) {
    predictions = Array.from({ length: output.shape[1] }, (_, p) => ranked(topTokens(rowAt(output, 0, p), k)));
    const l = logitLens(model, cache, { k });
    lens = { stack: l.stack, layers: l.layers.map((layer) => ({ label: layer.label, name: layer.name, positions: layer.positions.map(ranked) })) };
    if (model.readOut.kind === 'linear') {
      const position = output.shape[1] - 1;
      const token = predictions[position][0].id;
      const a = directLogitAttribution(model, cache, { token, position });
      attribution = { position, token: { id: token, text: text(token, outSide) }, components: a.components, bias: a.bias, sum: a.sum, logit: a.logit, exact: a.exact, note: a.note };
    }
  }
  let classification: TraceFile['classification'] = null;
  if (d.labels && output.rank === 2) {
    const labels = d.labels;
    classification = topTokens(output.f32().subarray(0, output.shape[1]), labels.length).map((t) => ({ label: labels[t.id], id: t.id, prob: t.prob, logit: t.logit }));
  }
  const tokens: TraceFile['tokens'] = { input: inputs.inputIds[0].map((id) => ({ id, text: text(id, 'input') })) };
  if (inputs.decoderInputIds) tokens.decoder = inputs.decoderInputIds[0].map((id) => ({ id, text: text(id, 'decoder') }));

  const file: TraceFile = {
    format: TRACE_FORMAT,
    version: TRACE_VERSION,
    created: new Date().toISOString(),
    source: request.source,
    model: d,
    tokens,
    stacks,
    predictions,
    lens,
    generation,
    classification,
    attribution,
    tensors: {},
    budget: { maxBytes: options.maxBytes ?? 8 * 1024 * 1024, precision: options.precision ?? 'f16', summarised: [], omitted: [] },
  };
  const json = serialiseWithin(file, [...pending, ...stepTensors]);
  return { file, json };
}
