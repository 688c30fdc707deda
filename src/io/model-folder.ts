/**
 * A model folder as `save_pretrained` writes it (or as it is downloaded from
 * the Hub): config.json, generation_config.json, tokenizer files and the
 * weights, either model.safetensors or a sharded set behind
 * model.safetensors.index.json.
 */
import { FormatError, PickleWeightsError, UnsupportedError, WeightError } from '../errors.js';
import { Checkpoint } from './checkpoint.js';
import {
  generationConfigFromModelConfig,
  parseModelConfig,
  readConfigJson,
  readGenerationConfig,
  type GenerationConfig,
  type ModelConfig,
} from './config.js';
import type { FileSystem } from './source.js';

/** Tokenizer files a folder may hold, in the order a tokenizer loader would prefer them. */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'vocab.txt',
  'vocab.json',
  'merges.txt',
  'tokenizer.model',
  'spiece.model',
  'sentencepiece.bpe.model',
  'source.spm',
  'target.spm',
] as const;

export type TokenizerFile = (typeof TOKENIZER_FILES)[number];

export const SAFETENSORS_WEIGHTS = 'model.safetensors';
export const SAFETENSORS_INDEX = 'model.safetensors.index.json';

/** Weight files of other frameworks: recognised only to explain why they are not read. */
const REFUSED_WEIGHTS: Readonly<Record<string, string>> = {
  'pytorch_model.bin': 'a PyTorch pickle',
  'pytorch_model.bin.index.json': 'a sharded PyTorch pickle',
  'tf_model.h5': 'a TensorFlow checkpoint',
  'flax_model.msgpack': 'a Flax checkpoint',
  'model.ckpt.index': 'a TensorFlow checkpoint',
};

export interface ModelFolder {
  readonly dir: string;
  readonly configPath: string;
  readonly config: ModelConfig;
  /** null when the folder has no generation_config.json and `generationConfig` came from config.json. */
  readonly generationConfigPath: string | null;
  readonly generationConfig: GenerationConfig;
  /** model.safetensors or model.safetensors.index.json; null only with `{ requireWeights: false }`. */
  readonly weightsPath: string | null;
  readonly checkpoint: Checkpoint | null;
  /** The tokenizer files present, by file name → path. */
  readonly tokenizerFiles: Readonly<Partial<Record<TokenizerFile, string>>>;
}

export interface OpenModelFolderOptions {
  /** Allow a folder without weights (e.g. tokenizer and config only). Default true: weights are required. */
  readonly requireWeights?: boolean;
  /**
   * Refuse a config.json whose model_type is not one of `names` (UnsupportedError,
   * "is not `kind` glassformer runs"), before the rest of the config is parsed
   * or the weights are looked for: a job that runs one family says so first.
   */
  readonly modelTypes?: { readonly names: readonly string[]; readonly kind: string };
}

function checkModelType(json: unknown, path: string, accepted: OpenModelFolderOptions['modelTypes']): void {
  if (!accepted) return;
  const modelType = (json as { model_type?: unknown } | null)?.model_type;
  if (typeof modelType === 'string' && accepted.names.includes(modelType)) return;
  throw new UnsupportedError(
    `${path}: model_type ${JSON.stringify(modelType ?? null)} is not ${accepted.kind} glassformer runs; supported: ${accepted.names.join(', ')}`,
  );
}

/**
 * The folder's safetensors weights (single file or sharded index); weights in
 * other formats are refused with the reason, and a folder without weights is a
 * WeightError unless `requireWeights` is false (then null).
 */
export async function findWeights(fs: FileSystem, dir: string, requireWeights: true): Promise<string>;
export async function findWeights(fs: FileSystem, dir: string, requireWeights: boolean): Promise<string | null>;
export async function findWeights(fs: FileSystem, dir: string, requireWeights: boolean): Promise<string | null> {
  for (const name of [SAFETENSORS_WEIGHTS, SAFETENSORS_INDEX]) {
    const path = fs.join(dir, name);
    if (await fs.exists(path)) return path;
  }
  const entries = await fs.list(dir);
  const refused = entries.filter((name) => Object.hasOwn(REFUSED_WEIGHTS, name));
  if (refused.length > 0) {
    const name = refused[0];
    const ErrorClass = name.startsWith('pytorch_model.bin') ? PickleWeightsError : UnsupportedError;
    throw new ErrorClass(
      `${fs.join(dir, name)}: the weights are ${REFUSED_WEIGHTS[name]}, which glassformer does not read ` +
        '(unpickling can run arbitrary code). Convert them to safetensors, e.g. in Python: ' +
        'AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True), ' +
        'or use the Hub repository\'s model.safetensors if it has one',
    );
  }
  if (!requireWeights) return null;
  throw new WeightError(`${dir}: no weights found: expected ${SAFETENSORS_WEIGHTS} or ${SAFETENSORS_INDEX} (the folder holds ${entries.join(', ') || 'nothing'})`);
}

/** Read a model folder's configs, locate its tokenizer files and open (headers only) its weights. */
export async function openModelFolder(fs: FileSystem, dir: string, options: OpenModelFolderOptions = {}): Promise<ModelFolder> {
  const configPath = fs.join(dir, 'config.json');
  if (!(await fs.exists(configPath))) {
    if (!(await fs.exists(dir))) throw new FormatError(dir, 'no such model folder (no config.json to read)');
    throw new FormatError(dir, 'not a model folder: it has no config.json');
  }
  const json = await readConfigJson(fs, configPath);
  checkModelType(json, configPath, options.modelTypes);
  const config = parseModelConfig(json, configPath);
  const generationPath = fs.join(dir, 'generation_config.json');
  const hasGeneration = await fs.exists(generationPath);
  const generationConfig = hasGeneration ? await readGenerationConfig(fs, generationPath) : generationConfigFromModelConfig(config);
  const weightsPath = await findWeights(fs, dir, options.requireWeights ?? true);
  const checkpoint = weightsPath === null ? null : await Checkpoint.open(fs, weightsPath);
  const tokenizerFiles: Partial<Record<TokenizerFile, string>> = {};
  for (const name of TOKENIZER_FILES) {
    const path = fs.join(dir, name);
    if (await fs.exists(path)) tokenizerFiles[name] = path;
  }
  return {
    dir,
    configPath,
    config,
    generationConfigPath: hasGeneration ? generationPath : null,
    generationConfig,
    weightsPath,
    checkpoint,
    tokenizerFiles,
  };
}
