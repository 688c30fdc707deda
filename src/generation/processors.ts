/**
 * Logits processors: small named functions that reshape the next-token scores
 * of every row before a token is chosen, each mirroring the Hugging Face
 * processor of the same name (transformers v4.47, `generation/logits_process.py`).
 * Scores are one Float32Array per row, changed in place; `ids` are the full
 * sequences so far (decoder-only: prompt with its left padding; seq2seq: the
 * decoder ids from the start token).
 */
import { ConfigError } from '../errors.js';

/** What a processor may look at besides the scores. */
export interface ProcessorContext {
  /** Every row's tokens so far, [rows][curLen]. */
  ids: readonly (readonly number[])[];
  /** Length of every row so far (the prompt or decoder start included). */
  curLen: number;
  /** Length of the prompt (decoder-only) or of the decoder start (seq2seq). */
  promptLength: number;
}

export interface LogitsProcessor {
  /** A stable name, e.g. `repetition_penalty`, `top_p` (what a trace shows per stage). */
  readonly name: string;
  apply(scores: Float32Array[], context: ProcessorContext): void;
}

function processor(name: string, apply: LogitsProcessor['apply']): LogitsProcessor {
  return { name, apply };
}

/** Softmax of one row in float64 (−∞ entries get probability 0). */
export function softmaxRow(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  const out = new Float64Array(row.length);
  if (max === -Infinity) return out;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += out[i] = Math.exp(row[i] - max);
  for (let i = 0; i < row.length; i++) out[i] /= sum;
  return out;
}

/** log_softmax of one row into a new Float32Array. */
export function logSoftmaxRow(row: Float32Array): Float32Array {
  // Indexed loops: V8 runs them 1.5–3× faster than for…of and map over a
  // 50257-wide row (a decode token's budget is a few milliseconds); same bits.
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  const logZ = max + Math.log(sum);
  const out = new Float32Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i] - logZ;
  return out;
}

/** log_softmax(row)[index] with logSoftmaxRow's bits, without the row of all the others. */
export function logSoftmaxAt(row: Float32Array, index: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  return Math.fround(row[index] - (max + Math.log(sum)));
}

/** Indices of a row sorted by value (stable, so ties keep index order). */
function argsort(values: ArrayLike<number>, descending: boolean): number[] {
  const idx = Array.from({ length: values.length }, (_, i) => i);
  return idx.sort((a, b) => (descending ? values[b] - values[a] : values[a] - values[b]) || a - b);
}

/**
 * CTRL's repetition penalty (Keskar et al. 2019, HF RepetitionPenaltyLogitsProcessor):
 * every distinct token already in the row — prompt and left padding included — has
 * its score divided by `penalty` when positive, multiplied when negative.
 */
export function repetitionPenalty(penalty: number): LogitsProcessor {
  if (!(penalty > 0)) throw new ConfigError(`repetition_penalty must be a positive number, found ${penalty}`);
  // PyTorch multiplies a float32 tensor by the penalty rounded to float32.
  const p = Math.fround(penalty);
  return processor('repetition_penalty', (scores, { ids }) => {
    scores.forEach((row, r) => {
      for (const token of new Set(ids[r])) {
        const s = row[token];
        row[token] = s < 0 ? s * p : s / p;
      }
    });
  });
}

/**
 * OpenAI-style presence and frequency penalties over the *generated* tokens only:
 * score −= presence·[count > 0] + frequency·count.
 */
export function presenceFrequencyPenalty(presence: number, frequency: number): LogitsProcessor {
  return processor('presence_frequency_penalty', (scores, { ids, promptLength }) => {
    scores.forEach((row, r) => {
      const counts = new Map<number, number>();
      for (const token of ids[r].slice(promptLength)) counts.set(token, (counts.get(token) ?? 0) + 1);
      for (const [token, count] of counts) row[token] -= presence + frequency * count;
    });
  });
}

/**
 * No n-gram may occur twice (Paulus et al. 2017; HF NoRepeatNGramLogitsProcessor):
 * a token that would complete an n-gram already in the row is banned.
 */
export function noRepeatNgram(n: number): LogitsProcessor {
  if (!Number.isInteger(n) || n <= 0) throw new ConfigError(`no_repeat_ngram_size must be a positive integer, found ${n}`);
  return processor('no_repeat_ngram', (scores, { ids, curLen }) => {
    if (curLen + 1 < n) return;
    scores.forEach((row, r) => {
      const seq = ids[r];
      const prefix = seq.slice(seq.length - n + 1).join(',');
      for (let i = 0; i + n <= seq.length; i++) {
        if (seq.slice(i, i + n - 1).join(',') === prefix) row[seq[i + n - 1]] = -Infinity;
      }
    });
  });
}

/**
 * Banned token sequences (HF NoBadWordsLogitsProcessor): a one-token entry is
 * always banned; for a longer one, its last token is banned when the row ends
 * with the rest. Entries equal to [eos] are dropped, as HF does.
 */
export function noBadWords(badWordsIds: readonly (readonly number[])[], eosTokenIds: readonly number[]): LogitsProcessor {
  for (const seq of badWordsIds) {
    if (!Array.isArray(seq) || seq.length === 0 || seq.some((t) => !Number.isInteger(t) || t < 0)) {
      throw new ConfigError(`bad_words_ids must be a list of non-empty lists of token ids, found ${JSON.stringify(badWordsIds)}`);
    }
  }
  const words = badWordsIds.filter((seq) => !(seq.length === 1 && eosTokenIds.includes(seq[0])));
  return processor('no_bad_words', (scores, { ids }) => {
    scores.forEach((row, r) => {
      const seq = ids[r];
      for (const word of words) {
        const prefix = word.slice(0, -1);
        const tail = seq.slice(seq.length - prefix.length);
        if (prefix.length <= seq.length && prefix.every((t, i) => t === tail[i])) row[word[word.length - 1]] = -Infinity;
      }
    });
  });
}

/** EOS is banned while the sequence is shorter than `minLength` (prompt included; HF MinLengthLogitsProcessor). */
export function minLength(minLength: number, eosTokenIds: readonly number[]): LogitsProcessor {
  return processor('min_length', (scores, { curLen }) => {
    if (curLen >= minLength) return;
    for (const row of scores) for (const e of eosTokenIds) row[e] = -Infinity;
  });
}

/** EOS is banned until `minNewTokens` tokens were generated (HF MinNewTokensLengthLogitsProcessor). */
export function minNewTokens(count: number, eosTokenIds: readonly number[]): LogitsProcessor {
  return processor('min_new_tokens', (scores, { curLen, promptLength }) => {
    if (curLen - promptLength >= count) return;
    for (const row of scores) for (const e of eosTokenIds) row[e] = -Infinity;
  });
}

/** Force `bosTokenId` as the first generated token of an encoder-decoder (HF ForcedBOSTokenLogitsProcessor). */
export function forcedBos(bosTokenId: number): LogitsProcessor {
  return processor('forced_bos', (scores, { curLen }) => {
    if (curLen !== 1) return;
    for (const row of scores) {
      row.fill(-Infinity);
      row[bosTokenId] = 0;
    }
  });
}

/** At the last allowed step every score is −∞ except EOS, which is exactly 0 (HF ForcedEOSTokenLogitsProcessor). */
export function forcedEos(maxLength: number, eosTokenIds: readonly number[]): LogitsProcessor {
  return processor('forced_eos', (scores, { curLen }) => {
    if (curLen !== maxLength - 1) return;
    for (const row of scores) {
      row.fill(-Infinity);
      for (const e of eosTokenIds) row[e] = 0;
    }
  });
}

const F32_MAX = 3.4028234663852886e38;

/** NaN → 0 and ±∞ → ±finfo.max, so sampling never sees invalid numbers (HF InfNanRemoveLogitsProcessor). */
export function removeInvalidValues(): LogitsProcessor {
  return processor('remove_invalid_values', (scores) => {
    for (const row of scores) {
      for (let i = 0; i < row.length; i++) {
        if (Number.isNaN(row[i])) row[i] = 0;
        else if (row[i] === Infinity) row[i] = F32_MAX;
        else if (row[i] === -Infinity) row[i] = -F32_MAX;
      }
    }
  });
}

/** These tokens can never be generated (HF SuppressTokensLogitsProcessor). */
export function suppressTokens(tokens: readonly number[]): LogitsProcessor {
  return processor('suppress_tokens', (scores) => {
    for (const row of scores) for (const t of tokens) row[t] = -Infinity;
  });
}

/**
 * These tokens cannot be the first generated token (HF SuppressTokensAtBeginLogitsProcessor);
 * `offset` 1 moves that to the second when a forced BOS takes the first.
 */
export function suppressTokensAtBegin(tokens: readonly number[], offset = 0): LogitsProcessor {
  return processor('begin_suppress_tokens', (scores, { curLen, promptLength }) => {
    if (curLen !== promptLength + offset) return;
    for (const row of scores) for (const t of tokens) row[t] = -Infinity;
  });
}

/** Divide by the temperature: < 1 sharpens the distribution, > 1 flattens it (HF TemperatureLogitsWarper). */
export function temperature(t: number): LogitsProcessor {
  if (!(t > 0)) throw new ConfigError(`temperature must be a strictly positive number, found ${t} (use greedy decoding for temperature 0)`);
  const divisor = Math.fround(t);
  return processor('temperature', (scores) => {
    for (const row of scores) for (let i = 0; i < row.length; i++) row[i] /= divisor;
  });
}

/** Keep the k highest scores (ties with the k-th kept), −∞ elsewhere (HF TopKLogitsWarper). */
export function topK(k: number, minTokensToKeep = 1): LogitsProcessor {
  if (!Number.isInteger(k) || k <= 0) throw new ConfigError(`top_k must be a positive integer, found ${k}`);
  return processor('top_k', (scores) => {
    for (const row of scores) {
      const keep = Math.min(Math.max(k, minTokensToKeep), row.length);
      const threshold = Float32Array.from(row).sort()[row.length - keep];
      for (let i = 0; i < row.length; i++) if (row[i] < threshold) row[i] = -Infinity;
    }
  });
}

/**
 * Nucleus sampling (Holtzman et al. 2019; HF TopPLogitsWarper): keep the smallest
 * set of most likely tokens whose probability reaches `p`. HF sorts ascending and
 * removes tokens whose cumulative probability is ≤ 1 − p, always keeping the
 * `minTokensToKeep` most likely.
 */
export function topP(p: number, minTokensToKeep = 1): LogitsProcessor {
  if (!(p >= 0 && p <= 1)) throw new ConfigError(`top_p must be a number in [0, 1], found ${p}`);
  return processor('top_p', (scores) => {
    for (const row of scores) {
      const probs = softmaxRow(row);
      const order = argsort(row, false);
      let cumulative = 0;
      const remove: number[] = [];
      order.forEach((token, rank) => {
        cumulative += probs[token];
        if (cumulative <= 1 - p && rank < order.length - minTokensToKeep) remove.push(token);
      });
      for (const token of remove) row[token] = -Infinity;
    }
  });
}

/**
 * Min-p sampling (Nguyen et al. 2024; HF MinPLogitsWarper): drop tokens whose
 * probability is below `minP` times the top token's probability.
 */
export function minP(minP: number, minTokensToKeep = 1): LogitsProcessor {
  if (!(minP >= 0 && minP <= 1)) throw new ConfigError(`min_p must be a number in [0, 1], found ${minP}`);
  return processor('min_p', (scores) => {
    for (const row of scores) {
      const probs = softmaxRow(row);
      const top = Math.max(...probs);
      const order = argsort(row, true);
      order.forEach((token, rank) => {
        if (rank >= minTokensToKeep && probs[token] < minP * top) row[token] = -Infinity;
      });
    }
  });
}

/**
 * Locally typical sampling (Meister et al. 2022; HF TypicalLogitsWarper): rank
 * tokens by how far their surprisal is from the entropy, and keep the closest
 * ones until their probability mass reaches `mass`.
 */
export function typicalP(mass: number, minTokensToKeep = 1): LogitsProcessor {
  if (!(mass > 0 && mass < 1)) throw new ConfigError(`typical_p must be a number in (0, 1), found ${mass}`);
  return processor('typical_p', (scores) => {
    for (const row of scores) {
      const logp = logSoftmaxRow(row);
      let entropy = 0;
      for (const l of logp) if (l !== -Infinity) entropy -= l * Math.exp(l);
      const shifted = Float64Array.from(logp, (l) => Math.abs(-l - entropy));
      const order = argsort(shifted, false);
      let cumulative = 0;
      let lastIndex = 0;
      for (const token of order) {
        cumulative += Math.exp(logp[token]);
        if (cumulative < mass) lastIndex++;
      }
      lastIndex = Math.min(lastIndex, row.length - 1);
      const limit = shifted[order[lastIndex]];
      order.forEach((token, rank) => {
        if (rank >= minTokensToKeep && shifted[token] > limit) row[token] = -Infinity;
      });
    }
  });
}

/** Drop tokens below a probability floor, keeping the `minTokensToKeep` best (shared by ε- and η-sampling). */
function cutBelow(row: Float32Array, probs: Float64Array, floor: number, minTokensToKeep: number): void {
  const kth = Float32Array.from(row).sort()[row.length - Math.min(minTokensToKeep, row.length)];
  for (let i = 0; i < row.length; i++) if (probs[i] < floor && row[i] < kth) row[i] = -Infinity;
}

/** ε-sampling (Hewitt et al. 2022; HF EpsilonLogitsWarper): drop tokens with probability below ε. */
export function epsilonCutoff(epsilon: number, minTokensToKeep = 1): LogitsProcessor {
  if (!(epsilon > 0 && epsilon < 1)) throw new ConfigError(`epsilon_cutoff must be a number in (0, 1), found ${epsilon}`);
  return processor('epsilon_cutoff', (scores) => {
    for (const row of scores) cutBelow(row, softmaxRow(row), epsilon, minTokensToKeep);
  });
}

/** η-sampling (Hewitt et al. 2022; HF EtaLogitsWarper): the floor is min(η, √η·exp(−entropy)). */
export function etaCutoff(eta: number, minTokensToKeep = 1): LogitsProcessor {
  if (!(eta > 0 && eta < 1)) throw new ConfigError(`eta_cutoff must be a number in (0, 1), found ${eta}`);
  return processor('eta_cutoff', (scores) => {
    for (const row of scores) {
      const probs = softmaxRow(row);
      let entropy = 0;
      for (const p of probs) if (p > 0) entropy -= p * Math.log(p);
      cutBelow(row, probs, Math.min(eta, Math.sqrt(eta) * Math.exp(-entropy)), minTokensToKeep);
    }
  });
}

/** Turn the final scores back into log-probabilities (HF LogitNormalization, `renormalize_logits`). */
export function renormalize(): LogitsProcessor {
  return processor('renormalize', (scores) => {
    scores.forEach((row, r) => scores[r].set(logSoftmaxRow(row)));
  });
}
