/**
 * Which files of a model repository glassformer needs. A repository often
 * holds the same weights several times (safetensors, PyTorch pickles, ONNX,
 * TensorFlow, Flax); only the config, tokenizer, sentence-transformers and
 * safetensors files are fetched, so a download is as small as the model.
 */
import { EntryNotFoundError, FormatError, PickleWeightsError } from '../errors.js';

export const CONFIG_FILES: readonly string[] = ['config.json', 'generation_config.json'];

/** The fast-tokenizer file and the configs around it (special tokens, chat template). */
export const TOKENIZER_FILES: readonly string[] = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'chat_template.json',
  'chat_template.jinja',
];

/** Vocabularies of "slow" tokenizers, needed only when a repository has no tokenizer.json. */
const SLOW_TOKENIZER_FILE = /^(vocab\.txt|vocab\.json|merges\.txt|added_tokens\.json|spiece\.model|sentencepiece\.bpe\.model|tokenizer\.model|[^/]+\.spm)$/;

/** sentence-transformers: the module list and the root configs beside the transformer. */
export const SENTENCE_TRANSFORMERS_FILES: readonly string[] = [
  'modules.json',
  'sentence_bert_config.json',
  'config_sentence_transformers.json',
];

/** A sentence-transformers module folder (`1_Pooling/`, `2_Dense/`): its config and safetensors weights. */
const SENTENCE_TRANSFORMERS_MODULE_FILE = /^\d+_[^/]+\/(config\.json|model\.safetensors)$/;

export const SAFETENSORS_WEIGHTS = 'model.safetensors';
export const SAFETENSORS_INDEX = 'model.safetensors.index.json';

/** Weight files in other formats: recognised so the error can say what the repository holds instead. */
const PICKLE_WEIGHTS = /(^|\/)(pytorch_model(-\d+-of-\d+)?\.bin|pytorch_model\.bin\.index\.json|[^/]+\.(pt|pth|ckpt))$/;
const OTHER_WEIGHTS = /(^|\/)(tf_model\.h5|flax_model\.msgpack|[^/]+\.onnx|[^/]+\.gguf)$/;

/**
 * A repository file name must stay inside the snapshot folder: relative, `/`
 * separated, no `..`. Names come from the server (the file list, a shard index),
 * so they are checked before they become paths.
 */
export function checkRepoFileName(name: string, source: string): string {
  const segments = name.split('/');
  if (
    name === '' ||
    name.startsWith('/') ||
    name.includes('\\') ||
    name.includes('\0') ||
    segments.some((s) => s === '' || s === '.' || s === '..')
  ) {
    throw new FormatError(source, `file name ${JSON.stringify(name)} is not a plain relative path inside the repository`);
  }
  return name;
}

export interface FileSelection {
  /** Files to fetch, in order: configs, tokenizer, sentence-transformers, then weights. */
  readonly files: readonly string[];
  /** `model.safetensors.index.json` when the weights are sharded: its shards are known only once it is read. */
  readonly weightIndex?: string;
}

export interface SelectOptions {
  /** The model id or folder, for error messages. */
  readonly modelId: string;
  /**
   * Refuse a repository without safetensors weights (default true): PickleWeightsError
   * when it has only pickles. With false (a tokenizer-only folder, `glassformer info`)
   * the other files are chosen and the weights, if any, left out.
   */
  readonly requireWeights?: boolean;
}

/**
 * Choose the files to fetch from the list of files in a repository (or folder).
 * When weights are required: PickleWeightsError when the only weights are
 * pickles, EntryNotFoundError when there are none.
 */
export function selectModelFiles(available: Iterable<string>, options: SelectOptions): FileSelection {
  const names = new Set(available);
  const present = (list: readonly string[]): string[] => list.filter((f) => names.has(f));
  const files = [...present(CONFIG_FILES), ...present(TOKENIZER_FILES)];
  if (!names.has('tokenizer.json')) files.push(...[...names].filter((n) => SLOW_TOKENIZER_FILE.test(n)).sort());
  if (names.has('modules.json')) {
    files.push(...present(SENTENCE_TRANSFORMERS_FILES.filter((f) => f !== 'modules.json')), 'modules.json');
    files.push(...[...names].filter((n) => SENTENCE_TRANSFORMERS_MODULE_FILE.test(n)).sort());
  }
  if (names.has(SAFETENSORS_WEIGHTS)) return { files: [...files, SAFETENSORS_WEIGHTS] };
  if (names.has(SAFETENSORS_INDEX)) return { files: [...files, SAFETENSORS_INDEX], weightIndex: SAFETENSORS_INDEX };
  if (options.requireWeights === false) return { files };
  const pickles = [...names].filter((n) => PICKLE_WEIGHTS.test(n)).sort();
  if (pickles.length > 0) throw pickleError(options.modelId, pickles);
  throw noWeightsError(options.modelId, [...names].filter((n) => OTHER_WEIGHTS.test(n)).sort());
}

export function pickleError(modelId: string, pickles: readonly string[]): PickleWeightsError {
  return new PickleWeightsError(
    `${modelId}: the only weights are PyTorch pickles (${pickles.join(', ')}). glassformer never unpickles: ` +
      'loading a pickle runs arbitrary code from the file. Convert the weights to safetensors with Python ' +
      '(`AutoModel.from_pretrained(path).save_pretrained(out, safe_serialization=True)`, or the Hub\'s "convert to ' +
      'safetensors" Space which opens a pull request with model.safetensors), then load that.',
  );
}

function noWeightsError(modelId: string, others: readonly string[]): EntryNotFoundError {
  const found = others.length > 0 ? `it holds only ${others.join(', ')}, which glassformer does not read` : 'it holds no weight files';
  return new EntryNotFoundError(
    `${modelId}: no ${SAFETENSORS_WEIGHTS} or ${SAFETENSORS_INDEX}; ${found}. glassformer loads safetensors weights only.`,
    { modelId, file: SAFETENSORS_WEIGHTS },
  );
}

/** The shard files named by a `model.safetensors.index.json`, in sorted order. */
export function shardsOfIndex(text: string, source: string): string[] {
  let index: unknown;
  try {
    index = JSON.parse(text);
  } catch (error) {
    throw new FormatError(source, `not valid JSON (${(error as Error).message})`);
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new FormatError(source, 'a sharded checkpoint index needs a "weight_map" object mapping tensor names to shard files');
  }
  const shards = new Set<string>();
  for (const [tensor, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string') throw new FormatError(source, `weight_map["${tensor}"] must be a shard file name, found ${JSON.stringify(shard)}`);
    shards.add(checkRepoFileName(shard, source));
  }
  return [...shards].sort();
}
