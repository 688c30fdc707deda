/**
 * The options of `generate()`, with Hugging Face `GenerationConfig` (v4.47)
 * meanings under camelCase names, and `generation_config.json` read into the
 * same shape so that a model folder's file supplies the defaults.
 */
import { ConfigError, UnsupportedError } from '../errors.js';

export interface GenerateOptions {
  /** Tokens to generate at most, not counting the prompt. Takes precedence over maxLength. */
  maxNewTokens?: number;
  /** Total length at most, prompt (or decoder start) included; HF default 20. */
  maxLength?: number;
  /** EOS is banned until the sequence (prompt included) is this long. */
  minLength?: number;
  /** EOS is banned until this many tokens were generated. */
  minNewTokens?: number;
  /** Draw tokens from the processed distribution instead of taking the argmax. */
  doSample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  typicalP?: number;
  epsilonCutoff?: number;
  etaCutoff?: number;
  /** Seed of the sampling generator: the same seed gives the same tokens. */
  seed?: number;
  repetitionPenalty?: number;
  /** OpenAI-style: subtracted once from every token already generated. */
  presencePenalty?: number;
  /** OpenAI-style: subtracted per occurrence of every token already generated. */
  frequencyPenalty?: number;
  noRepeatNgramSize?: number;
  badWordsIds?: number[][];
  suppressTokens?: number[];
  beginSuppressTokens?: number[];
  removeInvalidValues?: boolean;
  renormalizeLogits?: boolean;
  eosTokenId?: number | number[] | null;
  padTokenId?: number | null;
  bosTokenId?: number | null;
  decoderStartTokenId?: number | null;
  forcedBosTokenId?: number | null;
  forcedEosTokenId?: number | number[] | null;
  numBeams?: number;
  lengthPenalty?: number;
  earlyStopping?: boolean | 'never';
  numReturnSequences?: number;
  /** Stop a row once its generated text contains one of these (needs a `decode` function). */
  stopStrings?: string | string[];
  /** Stop every row after this many seconds. */
  maxTime?: number;
  /** Keep each step's processed scores, [steps, rows, vocab]. */
  outputScores?: boolean;
  /** Keep each step's raw logits, [steps, rows, vocab]. */
  outputLogits?: boolean;
}

type Key = keyof GenerateOptions;

/** generation_config.json key → option, for every key glassformer honours. */
const JSON_KEYS: Record<string, Key> = {
  max_new_tokens: 'maxNewTokens',
  max_length: 'maxLength',
  min_length: 'minLength',
  min_new_tokens: 'minNewTokens',
  do_sample: 'doSample',
  temperature: 'temperature',
  top_k: 'topK',
  top_p: 'topP',
  min_p: 'minP',
  typical_p: 'typicalP',
  epsilon_cutoff: 'epsilonCutoff',
  eta_cutoff: 'etaCutoff',
  repetition_penalty: 'repetitionPenalty',
  no_repeat_ngram_size: 'noRepeatNgramSize',
  bad_words_ids: 'badWordsIds',
  suppress_tokens: 'suppressTokens',
  begin_suppress_tokens: 'beginSuppressTokens',
  remove_invalid_values: 'removeInvalidValues',
  renormalize_logits: 'renormalizeLogits',
  eos_token_id: 'eosTokenId',
  pad_token_id: 'padTokenId',
  bos_token_id: 'bosTokenId',
  decoder_start_token_id: 'decoderStartTokenId',
  forced_bos_token_id: 'forcedBosTokenId',
  forced_eos_token_id: 'forcedEosTokenId',
  num_beams: 'numBeams',
  length_penalty: 'lengthPenalty',
  early_stopping: 'earlyStopping',
  num_return_sequences: 'numReturnSequences',
  stop_strings: 'stopStrings',
  max_time: 'maxTime',
  output_scores: 'outputScores',
  output_logits: 'outputLogits',
};

/** Keys that change nothing about which tokens come out. */
const INERT_KEYS = new Set([
  'transformers_version',
  '_from_model_config',
  'use_cache',
  'return_dict_in_generate',
  'output_attentions',
  'output_hidden_states',
  'cache_implementation',
  'cache_config',
  'return_legacy_cache',
  'num_assistant_tokens',
  'num_assistant_tokens_schedule',
  'assistant_confidence_threshold',
  'is_assistant',
  'trust_remote_code',
  'compile_config',
  'disable_compile',
]);

/** Keys of features glassformer does not implement, with the value that means "off". */
const UNSUPPORTED_KEYS: Record<string, unknown> = {
  num_beam_groups: 1,
  diversity_penalty: 0,
  penalty_alpha: null,
  guidance_scale: null,
  encoder_repetition_penalty: 1,
  encoder_no_repeat_ngram_size: 0,
  exponential_decay_length_penalty: null,
  forced_decoder_ids: null,
  sequence_bias: null,
  constraints: null,
  force_words_ids: null,
  watermarking_config: null,
  low_memory: null,
  prompt_lookup_num_tokens: null,
  dola_layers: null,
  token_healing: false,
};

/**
 * generation_config.json → options. Keys glassformer does not implement are an
 * error when set to anything but their "off" value, so a model's intended
 * decoding is never silently changed.
 */
export function generationOptionsFromJson(json: Record<string, unknown>, file = 'generation_config.json'): GenerateOptions {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    const option = JSON_KEYS[key];
    if (option) {
      if (value !== null) out[option] = value;
      continue;
    }
    if (key in UNSUPPORTED_KEYS) {
      if (value !== null && value !== undefined && JSON.stringify(value) !== JSON.stringify(UNSUPPORTED_KEYS[key])) {
        throw new UnsupportedError(`${file}: "${key}": ${JSON.stringify(value)} is not supported (only ${JSON.stringify(UNSUPPORTED_KEYS[key])})`);
      }
      continue;
    }
    if (!INERT_KEYS.has(key) && !key.startsWith('output_') && !key.endsWith('_token_id')) {
      throw new UnsupportedError(`${file}: unknown generation option "${key}"`);
    }
  }
  return out as GenerateOptions;
}

const OPTION_KEYS = new Set<string>([...Object.values(JSON_KEYS), 'seed', 'presencePenalty', 'frequencyPenalty']);

/** Reject misspelt or unknown options by name (e.g. `top_p` instead of `topP`). */
export function checkOptionNames(options: object, what: string): void {
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) {
      const camel = JSON_KEYS[key];
      throw new ConfigError(`${what}: unknown option "${key}"${camel ? ` (did you mean "${camel}"?)` : ''}`);
    }
  }
}

/** A token id or list of them as a list (null/undefined → []). */
export function tokenList(ids: number | readonly number[] | null | undefined): number[] {
  if (ids === null || ids === undefined) return [];
  return typeof ids === 'number' ? [ids] : [...ids];
}
