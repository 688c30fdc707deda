/**
 * Beam search with the semantics of transformers v4.47 `_beam_search` and
 * `BeamSearchScorer`: per step, scores = log_softmax(logits) → processors →
 * + running beam score; the best 2·numBeams (beam, token) candidates are taken;
 * an EOS candidate becomes a finished hypothesis only when it ranks among the
 * first numBeams; hypotheses are scored sum(log-probs) / generatedLength^lengthPenalty.
 */
import { ConfigError } from '../errors.js';
import type { GenerateInputs, GenerateResult, ResolvedGeneration } from './generate.js';
import { defaultAttentionMask, processScores, rowsOf, stackSteps, startRows } from './generate.js';
import { logSoftmaxRow } from './processors.js';
import { anyDone } from './stopping.js';
import type { GenerativeModel } from './types.js';

interface Hypothesis {
  score: number;
  tokens: number[];
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

  /** Add a hypothesis whose log-prob sum is `sumLogprobs` over `generatedLength` tokens (EOS included). */
  add(tokens: number[], sumLogprobs: number, generatedLength: number): void {
    const score = sumLogprobs / generatedLength ** this.lengthPenalty;
    if (this.beams.length < this.numBeams || score > this.worstScore) {
      this.beams.push({ score, tokens });
      if (this.beams.length > this.numBeams) {
        const ranked = this.beams.map((b, i) => [b.score, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        this.beams.splice(ranked[0][1], 1);
        this.worstScore = ranked[1][0];
      } else {
        this.worstScore = Math.min(score, this.worstScore);
      }
    }
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

export function beamSearch(model: GenerativeModel, inputs: GenerateInputs, r: ResolvedGeneration): GenerateResult {
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
  // Only the first beam of each input is live at the start; the others are copies that must not be chosen twice.
  let beamScores = new Float32Array(batch * numBeams).map((_, i) => (i % numBeams === 0 ? 0 : -1e9));
  const hypotheses = Array.from({ length: batch }, () => new BeamHypotheses(numBeams, lengthPenalty, earlyStopping, r.maxLength));
  const done = new Array<boolean>(batch).fill(false);
  const eos = new Set(r.eos);
  const candidates = Math.max(2, 1 + r.eos.length) * numBeams;
  const keptScores: Float32Array[][] = [];
  const keptLogits: Float32Array[][] = [];
  let feed = sequences.map((s) => [...s]);
  for (;;) {
    const logits = session.step(feed); // [batch·numBeams, vocab]
    const vocab = logits.shape[1];
    const context = { ids: sequences, curLen: sequences[0].length, promptLength: r.promptLength };
    const { scores } = processScores(logits, r.processors, context, false, logSoftmaxRow);
    // As HF: the processed log-probabilities of every beam (before the running scores are added), and the raw logits.
    if (r.options.outputScores) keptScores.push(scores.map((row) => row.slice()));
    if (r.options.outputLogits) keptLogits.push(rowsOf(logits));
    const curLen = sequences[0].length + 1;
    const nextScores = new Float32Array(batch * numBeams);
    const nextTokens = new Array<number>(batch * numBeams).fill(r.pad);
    const nextIndices = new Array<number>(batch * numBeams).fill(0);
    for (let b = 0; b < batch; b++) {
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
      for (let rank = 0; rank < best.length && filled < numBeams; rank++) {
        const beam = Math.floor(best[rank] / vocab);
        const token = best[rank] % vocab;
        const row = b * numBeams + beam;
        if (eos.has(token)) {
          if (rank >= numBeams) continue;
          hypotheses[b].add([...sequences[row]], flat[best[rank]], curLen - r.promptLength);
        } else {
          nextScores[b * numBeams + filled] = flat[best[rank]];
          nextTokens[b * numBeams + filled] = token;
          nextIndices[b * numBeams + filled] = row;
          filled++;
        }
      }
      done[b] = hypotheses[b].isDone(flat[best[0]], curLen, r.promptLength);
    }
    beamScores = nextScores;
    sequences = nextIndices.map((row, i) => [...sequences[row], nextTokens[i]]);
    session.reorder(nextIndices);
    const stop = anyDone(r.stopping, { ids: sequences, promptLength: r.promptLength });
    if (done.every((d) => d) || stop.every((s) => s)) break;
    feed = nextTokens.map((t) => [t]);
  }
  const result = finalize(sequences, beamScores, hypotheses, done, r);
  if (r.options.outputScores) result.scores = stackSteps(keptScores);
  if (r.options.outputLogits) result.logits = stackSteps(keptLogits);
  return result;
}

/** Add the still-running beams as hypotheses and return the best ones, EOS-terminated and pad-filled (HF `finalize`). */
function finalize(sequences: number[][], beamScores: Float32Array, hypotheses: BeamHypotheses[], done: boolean[], r: ResolvedGeneration): GenerateResult {
  const numBeams = r.numBeams;
  hypotheses.forEach((h, b) => {
    if (done[b]) return;
    for (let j = 0; j < numBeams; j++) {
      const row = sequences[b * numBeams + j];
      h.add([...row], beamScores[b * numBeams + j], row.length - r.promptLength);
    }
  });
  const best: Hypothesis[] = [];
  for (const h of hypotheses) {
    // A stable ascending sort popped from the end, as HF: among equal scores the later-added wins.
    const sorted = [...h.beams].sort((a, b) => a.score - b.score);
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
  return { sequences: out, sequencesScores: best.map((h) => Math.fround(h.score)) };
}
