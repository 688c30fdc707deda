/**
 * Beam search with the semantics of transformers v4.47 `_beam_search` and
 * `BeamSearchScorer`: per step, scores = log_softmax(logits) → processors →
 * + running beam score; the best 2·numBeams (beam, token) candidates are taken;
 * an EOS candidate becomes a finished hypothesis only when it ranks among the
 * first numBeams; hypotheses are scored sum(log-probs) / generatedLength^lengthPenalty.
 */
import { ConfigError } from '../errors.js';
import type { GenerateCallbacks, GenerateInputs, GenerateResult, ResolvedGeneration, StageScores } from './generate.js';
import { defaultAttentionMask, processScores, rowsOf, stackSteps, startRows } from './generate.js';
import { logSoftmaxRow } from './processors.js';
import { anyDone } from './stopping.js';
import type { GenerativeModel } from './types.js';

/** A finished sequence of one input (HF keeps its tokens without the EOS that ended it). */
export interface Hypothesis {
  /** HF's length-normalised score: sumLogprobs / length^lengthPenalty. */
  score: number;
  tokens: number[];
  sumLogprobs: number;
  /** Generated tokens counted in the score (the EOS included). */
  length: number;
  /** The row (input·numBeams + beam) that produced each generated token, as HF's `beam_indices`. */
  beamIndices: number[];
  /** The step whose EOS finished it, or null for a beam still running when generation stopped. */
  finishedAt: number | null;
}

/** One of the best (beam, token) candidates of one input at one step, and what became of it. */
export interface BeamCandidate {
  /** The beam it extends (0 … numBeams−1 within its input). */
  beam: number;
  token: number;
  /** The token's processed log-probability under that beam. */
  logprob: number;
  /** The beam's running score plus `logprob`: the log-probability sum of the extended sequence. */
  score: number;
  /**
   * `continues`: it became next beam `slot`; `finished`: an EOS ranked among the
   * first numBeams, added as a hypothesis; `eos-late`: an EOS ranked lower, ignored
   * as HF does; `spare`: not needed, the next beams were already filled.
   */
  fate: 'continues' | 'finished' | 'eos-late' | 'spare';
  slot?: number;
}

/** A hypothesis finished at one step, and whether it entered the numBeams best of its input. */
export interface FinishedAtStep {
  hypothesis: Hypothesis;
  /** The beam whose EOS candidate it was. */
  beam: number;
  kept: boolean;
  /** A hypothesis it pushed out of the numBeams best. */
  evicted?: Hypothesis;
}

/** What happened at one beam-search step (rows are input·numBeams + beam). */
export interface BeamStepEvent {
  step: number;
  /** Each row's tokens so far, as fed at this step (prompt or decoder start included). */
  sequences: number[][];
  /** Each row's running score before this step: the sum of its generated tokens' processed log-probabilities. */
  beamScores: number[];
  /** Each row's processed log-probabilities (log_softmax, then the processors), as HF's `scores`. */
  scores: Float32Array[];
  /** Raw logits of each row (with `traceStages`). */
  logits?: Float32Array[];
  /** Scores after each logits processor (with `traceStages`). */
  stages?: StageScores[];
  /** Per input: the best candidates it considered, in rank order (empty once the input is done). */
  candidates: BeamCandidate[][];
  /** Per input: the hypotheses its EOS candidates finished at this step. */
  finished: FinishedAtStep[][];
  /** The row each next beam extends (HF `beam_idx`), the token it appends and its running score. */
  parents: number[];
  tokens: number[];
  nextScores: number[];
  /** Per input: no running beam can beat its finished hypotheses any more. */
  done: boolean[];
}

/** The result of generate() and, per input, every hypothesis it chose from, best first. */
export interface BeamOutcome {
  result: GenerateResult;
  hypotheses: Hypothesis[][];
}

/** The finished hypotheses of one input (HF BeamHypotheses): the numBeams best, and when to stop looking. */
class BeamHypotheses {
  readonly beams: Hypothesis[] = [];
  private worstScore = 1e9;

  constructor(
    private readonly numBeams: number,
    private readonly lengthPenalty: number,
    private readonly earlyStopping: boolean | 'never',
    private readonly maxLength: number,
  ) {}

  /**
   * Add a hypothesis whose log-prob sum is `sumLogprobs` over `length` generated tokens (EOS included).
   * Returns it with whether it was kept and the hypothesis it pushed out.
   */
  add(tokens: number[], sumLogprobs: number, length: number, beamIndices: number[], finishedAt: number | null): Omit<FinishedAtStep, 'beam'> {
    const hypothesis: Hypothesis = { score: sumLogprobs / length ** this.lengthPenalty, tokens, sumLogprobs, length, beamIndices, finishedAt };
    const score = hypothesis.score;
    if (this.beams.length < this.numBeams || score > this.worstScore) {
      this.beams.push(hypothesis);
      if (this.beams.length > this.numBeams) {
        const ranked = this.beams.map((b, i) => [b.score, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        // It scores above the worst, so the one pushed out is an older hypothesis.
        const [evicted] = this.beams.splice(ranked[0][1], 1);
        this.worstScore = ranked[1][0];
        return { hypothesis, kept: true, evicted };
      }
      this.worstScore = Math.min(score, this.worstScore);
      return { hypothesis, kept: true };
    }
    return { hypothesis, kept: false };
  }

  /** Can no running beam beat the worst finished hypothesis any more? */
  isDone(bestSumLogprobs: number, curLen: number, promptLength: number): boolean {
    if (this.beams.length < this.numBeams) return false;
    if (this.earlyStopping === true) return true;
    // false: a heuristic that assumes the current length; "never": the best attainable over the remaining length.
    const length = this.earlyStopping === 'never' && this.lengthPenalty > 0 ? this.maxLength - promptLength : curLen - promptLength;
    return this.worstScore >= bestSumLogprobs / length ** this.lengthPenalty;
  }
}

/** Indices of the k largest values, largest first; ties keep the lower index first. */
function topK(values: Float32Array, k: number): number[] {
  const idx = Array.from({ length: values.length }, (_, i) => i);
  idx.sort((a, b) => values[b] - values[a] || a - b);
  return idx.slice(0, k);
}

/**
 * Beam search as a generator: yields one BeamStepEvent per step and returns
 * the result with every input's hypotheses. `beamSearch` drains it; traces
 * read the events.
 */
export function* beamSteps(model: GenerativeModel, inputs: GenerateInputs, r: ResolvedGeneration, callbacks: GenerateCallbacks = {}): Generator<BeamStepEvent, BeamOutcome> {
  const numBeams = r.numBeams;
  const batch = inputs.inputIds.length;
  const lengthPenalty = r.options.lengthPenalty ?? 1;
  const earlyStopping = r.options.earlyStopping ?? false;
  if (earlyStopping === 'never' && lengthPenalty > 0 && r.maxLength <= r.promptLength) {
    throw new ConfigError('earlyStopping "never" with a positive lengthPenalty needs a max length beyond the prompt');
  }
  const attentionMask = inputs.attentionMask ?? defaultAttentionMask(inputs.inputIds, r.options.padTokenId ?? undefined, r.eos);
  const session = model.startSession({ inputIds: inputs.inputIds, attentionMask, expandBy: numBeams });
  let sequences = startRows(r, inputs.inputIds, numBeams);
  // Each row's beam_indices: the row that produced each of its generated tokens.
  let lineage: number[][] = sequences.map(() => []);
  // Only the first beam of each input is live at the start; the others are copies that must not be chosen twice.
  let beamScores = new Float32Array(batch * numBeams).map((_, i) => (i % numBeams === 0 ? 0 : -1e9));
  const hypotheses = Array.from({ length: batch }, () => new BeamHypotheses(numBeams, lengthPenalty, earlyStopping, r.maxLength));
  const done = new Array<boolean>(batch).fill(false);
  const eos = new Set(r.eos);
  const candidates = Math.max(2, 1 + r.eos.length) * numBeams;
  const traceStages = callbacks.traceStages ?? false;
  const keptScores: Float32Array[][] = [];
  const keptLogits: Float32Array[][] = [];
  let feed = sequences.map((s) => [...s]);
  for (let step = 0; ; step++) {
    const logits = session.step(feed); // [batch·numBeams, vocab]
    const vocab = logits.shape[1];
    const context = { ids: sequences, curLen: sequences[0].length, promptLength: r.promptLength };
    const { scores, stages } = processScores(logits, r.processors, context, traceStages, logSoftmaxRow);
    // As HF: the processed log-probabilities of every beam (before the running scores are added), and the raw logits.
    if (r.options.outputScores) keptScores.push(scores.map((row) => row.slice()));
    if (r.options.outputLogits) keptLogits.push(rowsOf(logits));
    const curLen = sequences[0].length + 1;
    const nextScores = new Float32Array(batch * numBeams);
    const nextTokens = new Array<number>(batch * numBeams).fill(r.pad);
    const nextIndices = new Array<number>(batch * numBeams).fill(0);
    const considered: BeamCandidate[][] = [];
    const finished: FinishedAtStep[][] = [];
    for (let b = 0; b < batch; b++) {
      considered.push([]);
      finished.push([]);
      if (done[b]) {
        // A finished input keeps padding its beams until every input is done.
        for (let j = 0; j < numBeams; j++) nextIndices[b * numBeams + j] = b * numBeams;
        continue;
      }
      const flat = new Float32Array(numBeams * vocab); // [numBeams · vocab]: each beam's scores plus its running score
      for (let j = 0; j < numBeams; j++) {
        const row = scores[b * numBeams + j];
        const base = beamScores[b * numBeams + j];
        for (let v = 0; v < vocab; v++) flat[j * vocab + v] = row[v] + base;
      }
      const best = topK(flat, candidates);
      let filled = 0;
      for (let rank = 0; rank < best.length; rank++) {
        const beam = Math.floor(best[rank] / vocab);
        const token = best[rank] % vocab;
        const row = b * numBeams + beam;
        const candidate: BeamCandidate = { beam, token, logprob: scores[row][token], score: flat[best[rank]], fate: 'spare' };
        considered[b].push(candidate);
        if (filled >= numBeams) continue;
        if (eos.has(token)) {
          if (rank >= numBeams) {
            candidate.fate = 'eos-late';
            continue;
          }
          candidate.fate = 'finished';
          const added = hypotheses[b].add([...sequences[row]], flat[best[rank]], curLen - r.promptLength, [...lineage[row], row], step);
          finished[b].push({ ...added, beam });
        } else {
          candidate.fate = 'continues';
          candidate.slot = filled;
          nextScores[b * numBeams + filled] = flat[best[rank]];
          nextTokens[b * numBeams + filled] = token;
          nextIndices[b * numBeams + filled] = row;
          filled++;
        }
      }
      done[b] = hypotheses[b].isDone(flat[best[0]], curLen, r.promptLength);
    }
    yield {
      step,
      sequences,
      beamScores: Array.from(beamScores),
      scores,
      logits: traceStages ? rowsOf(logits) : undefined,
      stages,
      candidates: considered,
      finished,
      parents: [...nextIndices],
      tokens: [...nextTokens],
      nextScores: Array.from(nextScores),
      done: [...done],
    };
    beamScores = nextScores;
    sequences = nextIndices.map((row, i) => [...sequences[row], nextTokens[i]]);
    lineage = nextIndices.map((row) => [...lineage[row], row]);
    session.reorder(nextIndices);
    const stop = anyDone(r.stopping, { ids: sequences, promptLength: r.promptLength });
    if (done.every((d) => d) || stop.every((s) => s)) break;
    feed = nextTokens.map((t) => [t]);
  }
  const outcome = finalize(sequences, lineage, beamScores, hypotheses, done, r);
  if (r.options.outputScores) outcome.result.scores = stackSteps(keptScores);
  if (r.options.outputLogits) outcome.result.logits = stackSteps(keptLogits);
  return outcome;
}

export function beamSearch(model: GenerativeModel, inputs: GenerateInputs, r: ResolvedGeneration): GenerateResult {
  const steps = beamSteps(model, inputs, r);
  for (;;) {
    const next = steps.next();
    if (next.done) return next.value.result;
  }
}

/** Add the still-running beams as hypotheses and return the best ones, EOS-terminated and pad-filled (HF `finalize`). */
function finalize(sequences: number[][], lineage: number[][], beamScores: Float32Array, hypotheses: BeamHypotheses[], done: boolean[], r: ResolvedGeneration): BeamOutcome {
  const numBeams = r.numBeams;
  hypotheses.forEach((h, b) => {
    if (done[b]) return;
    for (let j = 0; j < numBeams; j++) {
      const row = sequences[b * numBeams + j];
      h.add([...row], beamScores[b * numBeams + j], row.length - r.promptLength, lineage[b * numBeams + j], null);
    }
  });
  const best: Hypothesis[] = [];
  const ranked: Hypothesis[][] = [];
  for (const h of hypotheses) {
    // A stable ascending sort popped from the end, as HF: among equal scores the later-added wins.
    const sorted = [...h.beams].sort((a, b) => a.score - b.score);
    ranked.push([...sorted].reverse());
    for (let j = 0; j < r.numReturnSequences; j++) best.push(sorted.pop() as Hypothesis);
  }
  const longest = Math.max(...best.map((h) => h.tokens.length));
  const width = Math.min(longest + 1, r.maxLength);
  const out = best.map((h) => {
    const row = [...h.tokens];
    if (row.length < width) row.push(r.eos[0]);
    while (row.length < width) row.push(r.pad);
    return row;
  });
  return { result: { sequences: out, sequencesScores: best.map((h) => Math.fround(h.score)) }, hypotheses: ranked };
}
