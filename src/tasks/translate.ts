/**
 * The translation job, and what it shares with summarization: load an
 * encoder-decoder folder (T5, mT5, BART, Marian), turn texts into a right-padded
 * batch, generate, and decode the generated ids back to text — what
 * transformers' `pipeline("translation_en_to_de")` does.
 *
 * T5 was trained with a text prefix naming the task ("translate English to
 * German: "), read from config.json `task_specific_params` when the model has
 * them; those entries also carry the task's decoding settings (num_beams,
 * max_length …), which become the defaults of the call, as in the pipeline.
 */
import { ConfigError, FormatError, UnsupportedError } from '../errors.js';
import { generate } from '../generation/generate.js';
import { generationOptionsFromJson, type GenerateOptions } from '../generation/options.js';
import type { Checkpoint } from '../io/checkpoint.js';
import { openModelFolder } from '../io/model-folder.js';
import type { FileSystem } from '../io/source.js';
import { BartModel, parseBartConfig, type BartConfig } from '../models/bart.js';
import { parseT5Config, T5Model, type T5Config } from '../models/t5.js';
import { Weights } from '../nn/weights.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { loadFolderTokenizer } from './encoder-folder.js';

const ENCODER_DECODER_TYPES = ['t5', 'mt5', 'bart', 'marian'];

/** An encoder-decoder model folder without its tokenizer: the model and its decoding defaults. */
export interface EncoderDecoderFolder {
  readonly dir: string;
  readonly model: T5Model | BartModel;
  readonly config: T5Config | BartConfig;
  /** config.json's model_type as written (t5, mt5, bart, marian). */
  readonly modelType: string;
  /** generation_config.json (or the generation keys of config.json) as generate() defaults. */
  readonly generationDefaults: GenerateOptions;
  /** config.json `task_specific_params`, e.g. {"translation_en_to_de": {"prefix": "translate English to German: ", "num_beams": 4}}. */
  readonly taskParams: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

/** An encoder-decoder model with what it needs to work on text. */
export interface Seq2SeqPipeline extends EncoderDecoderFolder {
  readonly tokenizer: Tokenizer;
}

function readTaskParams(raw: Record<string, unknown>, file: string): Record<string, Record<string, unknown>> {
  const params = raw.task_specific_params;
  if (params === undefined || params === null) return {};
  if (typeof params !== 'object' || Array.isArray(params)) throw new ConfigError(`${file}: field "task_specific_params" must be an object of tasks, found ${JSON.stringify(params)}`);
  return params as Record<string, Record<string, unknown>>;
}

/** Generation settings a config.json may carry (HF `GenerationConfig.from_model_config` copies them). */
const CONFIG_GENERATION_KEYS = [
  'max_length', 'min_length', 'early_stopping', 'do_sample', 'num_beams', 'num_beam_groups', 'diversity_penalty', 'temperature', 'top_k', 'top_p',
  'typical_p', 'repetition_penalty', 'length_penalty', 'no_repeat_ngram_size', 'encoder_no_repeat_ngram_size', 'bad_words_ids',
  'num_return_sequences', 'remove_invalid_values', 'exponential_decay_length_penalty', 'suppress_tokens', 'begin_suppress_tokens', 'forced_decoder_ids',
];

/** generate() defaults of a folder without generation_config.json: config.json's generation keys and the family's special tokens. */
function generationDefaultsFromConfig(raw: Record<string, unknown>, config: T5Config | BartConfig): GenerateOptions {
  const json: Record<string, unknown> = Object.fromEntries(CONFIG_GENERATION_KEYS.filter((k) => raw[k] !== undefined).map((k) => [k, raw[k]]));
  Object.assign(json, {
    pad_token_id: config.padTokenId,
    bos_token_id: config.bosTokenId,
    eos_token_id: config.eosTokenId,
    decoder_start_token_id: config.decoderStartTokenId,
  });
  if (config.modelType === 'bart' || config.modelType === 'marian') Object.assign(json, { forced_bos_token_id: config.forcedBosTokenId, forced_eos_token_id: config.forcedEosTokenId });
  return generationOptionsFromJson(json, `${config.file} (generation keys)`);
}

/**
 * Load the model of a Hugging Face encoder-decoder folder: config.json,
 * model.safetensors (or a sharded set) and generation_config.json when present.
 * For ids in, ids out (a tokenizer is not needed).
 */
export async function loadEncoderDecoder(fs: FileSystem, dir: string): Promise<EncoderDecoderFolder> {
  const folder = await openModelFolder(fs, dir, { modelTypes: { names: ENCODER_DECODER_TYPES, kind: 'an encoder-decoder' } });
  const raw = folder.config.raw as Record<string, unknown>;
  const modelType = String(raw.model_type);
  const weights = await Weights.fromCheckpoint(folder.checkpoint as Checkpoint, folder.weightsPath ?? dir);
  let model: T5Model | BartModel;
  let config: T5Config | BartConfig;
  if (modelType === 't5' || modelType === 'mt5') {
    config = parseT5Config(raw, folder.configPath);
    model = new T5Model(config, weights);
  } else {
    config = parseBartConfig(raw, folder.configPath);
    model = new BartModel(config, weights);
  }
  const generationDefaults =
    folder.generationConfigPath !== null
      ? generationOptionsFromJson(folder.generationConfig.raw, folder.generationConfigPath)
      : generationDefaultsFromConfig(raw, config);
  return { dir, model, config, modelType, generationDefaults, taskParams: readTaskParams(raw, folder.configPath) };
}

/** Load an encoder-decoder folder with its tokenizer (tokenizer.json and the transformers config files). */
export async function loadSeq2Seq(fs: FileSystem, dir: string): Promise<Seq2SeqPipeline> {
  const folder = await loadEncoderDecoder(fs, dir);
  if (!(await fs.exists(fs.join(dir, 'tokenizer.json'))) && (await fs.exists(fs.join(dir, 'source.spm')))) {
    throw new FormatError(
      dir,
      'this Marian folder has only SentencePiece files (source.spm, target.spm), which glassformer does not read; ' +
        'it needs a tokenizer.json beside them (the Xenova/opus-mt-* repositories on the Hub include one)',
    );
  }
  const tokenizer = await loadFolderTokenizer(fs, dir);
  return { ...folder, tokenizer };
}

/** Generate for a padded batch and return each row's sequence (decoder start first). */
function generateIds(pipeline: Seq2SeqPipeline, batch: { inputIds: number[][]; attentionMask: number[][] }, options: GenerateOptions): number[][] {
  const decode = (ids: number[]) => pipeline.tokenizer.decode(ids, { skipSpecialTokens: true });
  return generate(pipeline.model, batch, options, pipeline.generationDefaults, { decode }).sequences;
}

/** Decoding settings of a text job: generate() options, plus the text prefix. */
export interface Seq2SeqTextOptions extends GenerateOptions {
  /** Text put before every input; default: the task's prefix (see translate / summarize). '' for none. */
  prefix?: string;
  /** Inputs encoded and decoded together; default 8. */
  batchSize?: number;
}

/** One generated output: its text and the ids generate() returned (decoder start first). */
export interface Seq2SeqOutput {
  text: string;
  ids: number[];
}

/** What a job asks for: the text prefix and the task's own decoding defaults. */
export interface TaskSetup {
  prefix: string;
  /** Options from config.json task_specific_params (num_beams, max_length …). */
  defaults: GenerateOptions;
}

/** The task_specific_params entry `task`, split into its prefix and its generate() defaults. */
export function taskSetup(pipeline: Seq2SeqPipeline, task: string, fallbackPrefix: string): TaskSetup {
  const entry = pipeline.taskParams[task];
  if (!entry) return { prefix: fallbackPrefix, defaults: {} };
  const { prefix, ...settings } = entry;
  if (prefix !== undefined && typeof prefix !== 'string') {
    throw new ConfigError(`${pipeline.dir}/config.json: task_specific_params.${task}.prefix must be a string, found ${JSON.stringify(prefix)}`);
  }
  return { prefix: prefix ?? '', defaults: generationOptionsFromJson(settings, `${pipeline.dir}/config.json task_specific_params.${task}`) };
}

/** Right-pad token id lists with `padId`: ids and attention mask [batch][longest]. */
export function padRight(rows: readonly (readonly number[])[], padId: number): { inputIds: number[][]; attentionMask: number[][] } {
  const longest = Math.max(...rows.map((r) => r.length));
  return {
    inputIds: rows.map((r) => [...r, ...new Array<number>(longest - r.length).fill(padId)]),
    attentionMask: rows.map((r) => [...new Array<number>(r.length).fill(1), ...new Array<number>(longest - r.length).fill(0)]),
  };
}

/**
 * The text path of every seq2seq job: prefix and tokenize each text (with the
 * tokenizer's special tokens, e.g. T5's closing `</s>`), right-pad a batch,
 * generate, and decode each sequence without special tokens.
 */
export async function generateText(pipeline: Seq2SeqPipeline, texts: readonly string[], setup: TaskSetup, options: Seq2SeqTextOptions = {}): Promise<Seq2SeqOutput[]> {
  const { prefix = setup.prefix, batchSize = 8, ...generateOptions } = options;
  if (texts.length === 0) return [];
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new ConfigError(`batchSize must be a positive integer, found ${batchSize}`);
  if ((generateOptions.numReturnSequences ?? pipeline.generationDefaults.numReturnSequences ?? 1) !== 1) {
    throw new ConfigError('the text jobs return one text per input; numReturnSequences must be 1 (use generate() for several sequences per input)');
  }
  const padId = pipeline.config.padTokenId;
  if (padId === null) throw new ConfigError(`${pipeline.dir}/config.json: pad_token_id is needed to pad a batch of inputs`);
  const outputs: Seq2SeqOutput[] = [];
  for (let start = 0; start < texts.length; start += batchSize) {
    const rows = texts.slice(start, start + batchSize).map((text) => pipeline.tokenizer.encode(prefix + text, { addSpecialTokens: true }).ids);
    const sequences = generateIds(pipeline, padRight(rows, padId), { ...setup.defaults, ...generateOptions });
    for (const ids of sequences) outputs.push({ ids, text: pipeline.tokenizer.decode(ids, { skipSpecialTokens: true, cleanUpTokenizationSpaces: false }) });
  }
  return outputs;
}

export interface TranslateOptions extends Seq2SeqTextOptions {
  /** Source language, an ISO 639 code ("en") or an English name ("English"). */
  src?: string;
  /** Target language, likewise. */
  tgt?: string;
}

/** "en" → "English" (T5's prompts name languages in English); names pass through. */
export function languageName(language: string): string {
  if (!/^[a-z]{2,3}(-[A-Za-z0-9]+)?$/.test(language)) return language;
  let name: string | undefined;
  try {
    name = new Intl.DisplayNames(['en'], { type: 'language' }).of(language);
  } catch {
    name = undefined;
  }
  if (!name || name === language) throw new ConfigError(`unknown language code "${language}"; give an ISO 639 code such as "en" or a name such as "English"`);
  return name;
}

/** The ISO code of a language given as a code or an English name ("German" → "de"), for task names. */
function languageCode(language: string): string {
  if (/^[a-z]{2,3}$/.test(language)) return language;
  const names = new Intl.DisplayNames(['en'], { type: 'language' });
  for (const code of ['en', 'de', 'fr', 'ro', 'es', 'it', 'pt', 'nl', 'ru', 'zh', 'ja', 'ko', 'ar', 'hi', 'tr', 'pl', 'sv', 'fi', 'cs']) {
    if (names.of(code)?.toLowerCase() === language.toLowerCase()) return code;
  }
  return language;
}

/**
 * How this model translates: T5 takes a prefix naming both languages
 * (task_specific_params `translation_<src>_to_<tgt>` when present, otherwise
 * "translate <Src> to <Tgt>: "); a multilingual Marian model takes the target
 * token `>>tgt<<` in front of the text; a one-pair Marian model needs neither.
 */
export function translationSetup(pipeline: Seq2SeqPipeline, src: string | undefined, tgt: string | undefined): TaskSetup {
  const type = pipeline.modelType;
  if (type === 't5' || type === 'mt5') {
    if (src === undefined && tgt === undefined) {
      // transformers' pipeline("translation") falls back to the model's first translation task.
      const first = Object.keys(pipeline.taskParams).find((k) => /^translation_.+_to_.+$/.test(k));
      if (!first) throw new ConfigError(`${pipeline.dir}: this T5 model has no translation task in config.json task_specific_params; give src and tgt (e.g. --src en --tgt de)`);
      return taskSetup(pipeline, first, '');
    }
    if (src === undefined || tgt === undefined) throw new ConfigError(`T5 translation needs both src and tgt languages (got src ${src ?? 'none'}, tgt ${tgt ?? 'none'})`);
    return taskSetup(pipeline, `translation_${languageCode(src)}_to_${languageCode(tgt)}`, `translate ${languageName(src)} to ${languageName(tgt)}: `);
  }
  if (type === 'marian') {
    if (src === undefined && tgt === undefined) return { prefix: '', defaults: {} };
    const token = tgt === undefined ? undefined : `>>${tgt}<<`;
    if (token !== undefined && pipeline.tokenizer.tokenToId(token) !== undefined) return { prefix: `${token} `, defaults: {} };
    throw new UnsupportedError(
      `${pipeline.dir}: this Marian model has no ${token ?? 'target-language'} token, so it translates the one language pair it was trained on; ` +
        'its languages cannot be chosen (or checked) here — leave out src and tgt',
    );
  }
  throw new UnsupportedError(`${pipeline.dir}: model_type "${type}" is not a translation model; use a T5 or Marian checkpoint`);
}

/** Translate one text (→ string) or several (→ strings, same order). */
export async function translate(pipeline: Seq2SeqPipeline, text: string, options?: TranslateOptions): Promise<string>;
export async function translate(pipeline: Seq2SeqPipeline, texts: readonly string[], options?: TranslateOptions): Promise<string[]>;
export async function translate(pipeline: Seq2SeqPipeline, input: string | readonly string[], options: TranslateOptions = {}): Promise<string | string[]> {
  const { src, tgt, ...rest } = options;
  const outputs = await generateText(pipeline, typeof input === 'string' ? [input] : input, translationSetup(pipeline, src, tgt), rest);
  return typeof input === 'string' ? outputs[0].text : outputs.map((o) => o.text);
}
