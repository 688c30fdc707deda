/**
 * The embedding job: texts → one vector each (Reimers & Gurevych 2019,
 * Sentence-BERT). A sentence-transformers folder says how: `modules.json`
 * lists the pipeline (Transformer → Pooling → [Dense] → [Normalize]),
 * `1_Pooling/config.json` the pooling, `sentence_bert_config.json` the maximum
 * length and lower-casing, `config_sentence_transformers.json` the prompts
 * ("query: ", "passage: ") and the similarity function. A plain model folder
 * gets mean pooling, as sentence-transformers does when it wraps one.
 */
import { ConfigError, ShapeError, UnsupportedError } from '../errors.js';
import { Checkpoint } from '../io/checkpoint.js';
import type { FileSystem } from '../io/source.js';
import { loadBertFolder, type EncoderModel, type LoadOptions } from '../models/bert.js';
import { Linear } from '../nn/linear.js';
import { Weights } from '../nn/weights.js';
import { activation } from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import { checkPoolingMode, cosineSimilarity, normalizeL2, pool, POOLING_MODES, type PoolingMode } from './pooling.js';
import { chunks, encodeBatch, type EncoderTokenizer } from './text-batch.js';

export type { PoolingMode } from './pooling.js';

/** sentence-transformers' `Dense` module: activation(linear(x)) on the pooled vector. */
export interface DenseModule {
  linear: Linear;
  act: (x: Tensor) => Tensor;
}

export type SimilarityFunction = 'cosine' | 'dot' | 'euclidean' | 'manhattan';

/** How a model turns token states into a text vector. */
export interface SentenceEncoderConfig {
  pooling: PoolingMode[];
  /** Whether a Normalize module follows (unit-length vectors). */
  normalize: boolean;
  dense: DenseModule[];
  /** Tokens per text, special tokens included (sentence_bert_config.json max_seq_length). */
  maxSeqLength: number | null;
  /** sentence_bert_config.json do_lower_case: lower-case the text before tokenizing. */
  doLowerCase: boolean;
  /** Named prompts prepended to the text, e.g. {query: "query: ", passage: "passage: "}. */
  prompts: Record<string, string>;
  defaultPromptName: string | null;
  /** false: prompt tokens take no part in pooling (instructor-style models). */
  includePrompt: boolean;
  similarity: SimilarityFunction;
  /** Where the settings came from, for messages. */
  source: string;
}

type Json = Record<string, unknown>;

async function readJson(fs: FileSystem, path: string): Promise<unknown> {
  const text = await fs.readText(path);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${path}: not valid JSON (${(error as Error).message})`);
  }
}

async function readJsonObject(fs: FileSystem, path: string): Promise<Json> {
  const value = await readJson(fs, path);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`${path}: must be a JSON object`);
  return value as Json;
}

/** The pooling modes switched on in a `1_Pooling/config.json`. */
export function parsePoolingConfig(raw: Json, file: string): { modes: PoolingMode[]; includePrompt: boolean } {
  const flag: Record<PoolingMode, string> = {
    cls: 'pooling_mode_cls_token',
    max: 'pooling_mode_max_tokens',
    mean: 'pooling_mode_mean_tokens',
    mean_sqrt_len: 'pooling_mode_mean_sqrt_len_tokens',
    weightedmean: 'pooling_mode_weightedmean_tokens',
    lasttoken: 'pooling_mode_lasttoken',
  };
  const modes = POOLING_MODES.filter((m) => {
    const v = raw[flag[m]];
    if (v !== undefined && typeof v !== 'boolean') throw new ConfigError(`${file}: field "${flag[m]}" must be true or false, found ${JSON.stringify(v)}`);
    return v === true;
  });
  if (modes.length === 0) throw new ConfigError(`${file}: no pooling mode is switched on (${Object.values(flag).join(', ')})`);
  const includePrompt = raw.include_prompt ?? true;
  if (typeof includePrompt !== 'boolean') throw new ConfigError(`${file}: field "include_prompt" must be true or false`);
  return { modes, includePrompt };
}

/** `torch.nn.modules.activation.Tanh` and friends → an activation. */
function denseActivation(name: unknown, file: string): (x: Tensor) => Tensor {
  const known: Record<string, string | null> = {
    'torch.nn.modules.linear.Identity': null,
    'torch.nn.modules.activation.Tanh': 'tanh',
    'torch.nn.modules.activation.ReLU': 'relu',
    'torch.nn.modules.activation.GELU': 'gelu',
    'torch.nn.modules.activation.SiLU': 'silu',
  };
  if (typeof name !== 'string' || !(name in known)) {
    throw new UnsupportedError(`${file}: Dense activation_function ${JSON.stringify(name)} is not supported; supported: ${Object.keys(known).join(', ')}`);
  }
  const act = known[name];
  return act === null ? (x) => x : activation(act);
}

async function loadDense(fs: FileSystem, dir: string): Promise<DenseModule> {
  const configFile = fs.join(dir, 'config.json');
  const config = await readJsonObject(fs, configFile);
  const inFeatures = config.in_features;
  const outFeatures = config.out_features;
  if (typeof inFeatures !== 'number' || typeof outFeatures !== 'number') {
    throw new ConfigError(`${configFile}: "in_features" and "out_features" must be numbers`);
  }
  const weightsFile = fs.join(dir, 'model.safetensors');
  if (!(await fs.exists(weightsFile))) throw new UnsupportedError(`${dir}: the Dense module has no model.safetensors (pytorch_model.bin is not read)`);
  const w = await Weights.fromCheckpoint(await Checkpoint.open(fs, weightsFile), weightsFile);
  return {
    linear: Linear.load(w, 'linear', inFeatures, outFeatures, config.bias !== false),
    act: denseActivation(config.activation_function ?? 'torch.nn.modules.activation.Tanh', configFile),
  };
}

const TRANSFORMER = 'sentence_transformers.models.Transformer';
const POOLING = 'sentence_transformers.models.Pooling';
const NORMALIZE = 'sentence_transformers.models.Normalize';
const DENSE = 'sentence_transformers.models.Dense';

/** A model folder without modules.json: mean pooling, no normalisation (sentence-transformers' default wrapping). */
export function defaultSentenceEncoderConfig(source: string): SentenceEncoderConfig {
  return {
    pooling: ['mean'],
    normalize: false,
    dense: [],
    maxSeqLength: null,
    doLowerCase: false,
    prompts: {},
    defaultPromptName: null,
    includePrompt: true,
    similarity: 'cosine',
    source,
  };
}

/** Read the sentence-transformers files of a folder; a folder without modules.json gets the defaults. */
export async function readSentenceEncoderConfig(fs: FileSystem, dir: string): Promise<SentenceEncoderConfig> {
  const modulesFile = fs.join(dir, 'modules.json');
  if (!(await fs.exists(modulesFile))) return defaultSentenceEncoderConfig(dir);
  const modules = await readJson(fs, modulesFile);
  if (!Array.isArray(modules)) throw new ConfigError(`${modulesFile}: must be a list of modules`);
  const config = defaultSentenceEncoderConfig(modulesFile);
  let pooling: PoolingMode[] | null = null;
  for (const [i, m] of modules.entries()) {
    const type = (m as Json | null)?.type;
    const path = (m as Json | null)?.path;
    if (typeof type !== 'string' || typeof path !== 'string') throw new ConfigError(`${modulesFile}: module ${i} needs string "type" and "path"`);
    const moduleDir = path === '' ? dir : fs.join(dir, path);
    if (type === TRANSFORMER) {
      if (i !== 0 || path !== '') throw new UnsupportedError(`${modulesFile}: the Transformer module must come first with path "" (found index ${i}, path "${path}")`);
    } else if (type === POOLING) {
      const file = fs.join(moduleDir, 'config.json');
      const parsed = parsePoolingConfig(await readJsonObject(fs, file), file);
      pooling = parsed.modes;
      config.includePrompt = parsed.includePrompt;
    } else if (type === NORMALIZE) {
      config.normalize = true;
    } else if (type === DENSE) {
      config.dense.push(await loadDense(fs, moduleDir));
    } else {
      throw new UnsupportedError(`${modulesFile}: module type "${type}" is not supported; supported: ${[TRANSFORMER, POOLING, DENSE, NORMALIZE].join(', ')}`);
    }
  }
  if (pooling === null) throw new ConfigError(`${modulesFile}: no ${POOLING} module; sentence-transformers would not know how to pool`);
  config.pooling = pooling;
  await readSentenceBertConfig(fs, dir, config);
  await readPromptsConfig(fs, dir, config);
  return config;
}

async function readSentenceBertConfig(fs: FileSystem, dir: string, config: SentenceEncoderConfig): Promise<void> {
  const file = fs.join(dir, 'sentence_bert_config.json');
  if (!(await fs.exists(file))) return;
  const raw = await readJsonObject(fs, file);
  if (raw.max_seq_length !== undefined && raw.max_seq_length !== null) {
    if (!Number.isSafeInteger(raw.max_seq_length) || (raw.max_seq_length as number) < 1) {
      throw new ConfigError(`${file}: field "max_seq_length" must be a positive integer, found ${JSON.stringify(raw.max_seq_length)}`);
    }
    config.maxSeqLength = raw.max_seq_length as number;
  }
  if (raw.do_lower_case !== undefined) {
    if (typeof raw.do_lower_case !== 'boolean') throw new ConfigError(`${file}: field "do_lower_case" must be true or false`);
    config.doLowerCase = raw.do_lower_case;
  }
}

async function readPromptsConfig(fs: FileSystem, dir: string, config: SentenceEncoderConfig): Promise<void> {
  const file = fs.join(dir, 'config_sentence_transformers.json');
  if (!(await fs.exists(file))) return;
  const raw = await readJsonObject(fs, file);
  if (raw.prompts !== undefined && raw.prompts !== null) {
    if (typeof raw.prompts !== 'object' || Array.isArray(raw.prompts)) throw new ConfigError(`${file}: field "prompts" must map names to prompt strings`);
    for (const [name, prompt] of Object.entries(raw.prompts as Json)) {
      if (typeof prompt !== 'string') throw new ConfigError(`${file}: prompt "${name}" must be a string, found ${JSON.stringify(prompt)}`);
      config.prompts[name] = prompt;
    }
  }
  if (raw.default_prompt_name !== undefined && raw.default_prompt_name !== null) {
    const name = raw.default_prompt_name;
    if (typeof name !== 'string' || !(name in config.prompts)) {
      throw new ConfigError(`${file}: default_prompt_name ${JSON.stringify(name)} is not one of the prompts (${Object.keys(config.prompts).join(', ') || 'none'})`);
    }
    config.defaultPromptName = name;
  }
  if (raw.similarity_fn_name !== undefined && raw.similarity_fn_name !== null) {
    const fn = raw.similarity_fn_name;
    if (fn !== 'cosine' && fn !== 'dot' && fn !== 'euclidean' && fn !== 'manhattan') {
      throw new ConfigError(`${file}: similarity_fn_name ${JSON.stringify(fn)} must be cosine, dot, euclidean or manhattan`);
    }
    config.similarity = fn;
  }
}

export interface EmbedOptions {
  /** Override the folder's pooling (one mode or several, concatenated). */
  pooling?: PoolingMode | PoolingMode[];
  /** Override whether vectors are scaled to unit length. */
  normalize?: boolean;
  /** A prompt by name from config_sentence_transformers.json, e.g. "query". */
  promptName?: string;
  /** A literal prompt prepended to every text (wins over promptName). */
  prompt?: string;
  /** Texts per forward pass (default 32). */
  batchSize?: number;
}

/**
 * An encoder with its tokenizer and its sentence-transformers settings: the
 * thing a user embeds texts with.
 */
export class Embedder {
  constructor(
    readonly model: EncoderModel,
    readonly tokenizer: EncoderTokenizer,
    readonly settings: SentenceEncoderConfig = defaultSentenceEncoderConfig('defaults'),
  ) {}

  /** A model folder (weights, config.json, tokenizer, and the sentence-transformers files when present). */
  static async fromFolder(fs: FileSystem, dir: string, tokenizer: EncoderTokenizer, options: LoadOptions = {}): Promise<Embedder> {
    const [model, settings] = await Promise.all([loadBertFolder(fs, dir, { head: 'base', ...options }), readSentenceEncoderConfig(fs, dir)]);
    return new Embedder(model, tokenizer, settings);
  }

  /** Width of the vectors this embedder returns. */
  get dimension(): number {
    const dense = this.settings.dense.at(-1);
    return dense ? dense.linear.weight.shape[0] : this.model.config.hiddenSize * this.settings.pooling.length;
  }

  /** Tokens per text: the folder's max_seq_length, capped by the model's position table. */
  get maxLength(): number {
    const c = this.model.config;
    const positions = c.modelType === 'roberta' || c.modelType === 'xlm-roberta' ? c.maxPositionEmbeddings - (c.padTokenId ?? 1) - 1 : c.maxPositionEmbeddings;
    return Math.min(this.settings.maxSeqLength ?? positions, positions);
  }

  /** The prompt text for these options: literal, by name, the default prompt, or none. */
  promptFor(options: EmbedOptions): string {
    if (options.prompt !== undefined) return options.prompt;
    const name = options.promptName ?? this.settings.defaultPromptName;
    if (name === null || name === undefined) return '';
    const prompt = this.settings.prompts[name];
    if (prompt === undefined) {
      throw new ConfigError(`prompt "${name}" is not defined by ${this.settings.source}; defined: ${Object.keys(this.settings.prompts).join(', ') || 'none'}`);
    }
    return prompt;
  }

  /** One vector per text, in the order given. */
  embed(texts: readonly string[], options: EmbedOptions = {}): Float32Array[] {
    const modes = options.pooling === undefined ? this.settings.pooling : [options.pooling].flat().map((m) => checkPoolingMode(m, 'embed'));
    const normalize = options.normalize ?? this.settings.normalize;
    const prompt = this.promptFor(options);
    // include_prompt=false: [CLS] and the prompt's tokens are left out of pooling (the prompt encoding minus its final [SEP]).
    const skipFirst = prompt && !this.settings.includePrompt ? this.tokenizer.encodeBatch([this.prepare(prompt)], { padding: false, truncation: false })[0].ids.length - 1 : 0;
    const padId = this.model.config.padTokenId ?? 0;
    // Like sentence-transformers, batch texts of similar length together to waste little on padding.
    const order = texts.map((_, i) => i).sort((a, b) => texts[b].length - texts[a].length);
    const out = new Array<Float32Array>(texts.length);
    for (const indices of chunks(order, options.batchSize ?? 32)) {
      const batch = encodeBatch(this.tokenizer, indices.map((i) => this.prepare(prompt + texts[i])), { maxLength: this.maxLength, padId });
      const hidden = this.model.forward(batch.inputs).lastHiddenState; // [batch, seq, d]
      const pooled = pool(hidden, batch.inputs.attentionMask, modes, skipFirst);
      indices.forEach((textIndex, row) => {
        let v = pooled[row];
        for (const dense of this.settings.dense) v = dense.act(dense.linear.forward(Tensor.f32(v, [1, v.length]))).f32();
        out[textIndex] = normalize ? normalizeL2(v) : v;
      });
    }
    return out;
  }

  /** The model's similarity function (similarity_fn_name) between two of its vectors; distances are negated, as sentence-transformers does. */
  similarity(a: Float32Array, b: Float32Array): number {
    return similarity(a, b, this.settings.similarity);
  }

  private prepare(text: string): string {
    return this.settings.doLowerCase ? text.toLowerCase() : text;
  }
}

/** sentence-transformers' similarity functions: cosine, dot product, and negated euclidean / manhattan distance. */
export function similarity(a: Float32Array, b: Float32Array, fn: SimilarityFunction): number {
  if (a.length !== b.length) throw new ShapeError(`similarity of vectors of ${a.length} and ${b.length} dimensions`);
  switch (fn) {
    case 'cosine':
      return cosineSimilarity(a, b);
    case 'dot':
      return a.reduce((sum, x, i) => sum + x * b[i], 0);
    case 'euclidean':
      return -Math.sqrt(a.reduce((sum, x, i) => sum + (x - b[i]) ** 2, 0));
    case 'manhattan':
      return -a.reduce((sum, x, i) => sum + Math.abs(x - b[i]), 0);
  }
}

/** Embed texts with a model and tokenizer: `embed(texts, {pooling, normalize})` in one call. */
export function embed(model: EncoderModel, tokenizer: EncoderTokenizer, texts: readonly string[], options: EmbedOptions & { settings?: SentenceEncoderConfig } = {}): Float32Array[] {
  return new Embedder(model, tokenizer, options.settings).embed(texts, options);
}
