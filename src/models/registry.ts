/**
 * The registry keyed by model_type: a model folder → the family's model, as
 * transformers' AutoModel does. Tokenizers are loaded beside it when the folder
 * has one; the models themselves take ids.
 */
import { UnsupportedError } from '../errors.js';
import type { GenerationConfig, ModelConfig } from '../io/config.js';
import { openModelFolder } from '../io/model-folder.js';
import type { FileSystem } from '../io/source.js';
import { Weights, type WeightsOptions } from '../nn/weights.js';
import { loadTokenizerWith } from '../tokenizers/load.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { BartModel, parseBartConfig } from './bart.js';
import { loadBert, type EncoderModel } from './bert.js';
import { Gpt2Model, parseGpt2Config } from './gpt2.js';
import { LLAMA_MODEL_TYPES, LlamaModel, parseLlamaConfig, type LlamaModelType } from './llama.js';
import { parseT5Config, T5Model } from './t5.js';
import { VanillaTransformer } from './vanilla.js';

/** The seed texts' three families, and the 2017 Transformer that started them. */
export type Pretrained =
  | { family: 'encoder-only'; model: EncoderModel }
  | { family: 'decoder-only'; model: Gpt2Model | LlamaModel }
  | { family: 'encoder-decoder'; model: T5Model | BartModel }
  | { family: 'vanilla'; model: VanillaTransformer };

export type LoadedModel = Pretrained & {
  dir: string;
  config: ModelConfig;
  generationConfig: GenerationConfig;
  /** The folder's tokenizer, when it has one (tokenizer.json, or vocab.txt / vocab.json + merges.txt). */
  tokenizer?: Tokenizer;
};

const ENCODERS = ['bert', 'roberta', 'xlm-roberta', 'distilbert'];
const ENCODER_DECODERS = ['t5', 'mt5', 'bart', 'marian'];

export const SUPPORTED_MODEL_TYPES: readonly string[] = [...ENCODERS, 'gpt2', ...LLAMA_MODEL_TYPES, ...ENCODER_DECODERS, 'vanilla_transformer_2017'];

/** Build the family's model from a parsed config and its checkpoint tensors. */
export function modelFromConfig(config: ModelConfig, weights: Weights): Pretrained {
  const raw = config.raw as Record<string, unknown>;
  const type = String(raw.model_type ?? config.modelType);
  if (ENCODERS.includes(type)) return { family: 'encoder-only', model: loadBert({ config, weights }) };
  if (type === 'gpt2') return { family: 'decoder-only', model: new Gpt2Model(parseGpt2Config(raw, config.file), weights) };
  if (LLAMA_MODEL_TYPES.includes(type as LlamaModelType)) {
    return { family: 'decoder-only', model: new LlamaModel(parseLlamaConfig(raw, config.file), weights) };
  }
  if (type === 't5' || type === 'mt5') return { family: 'encoder-decoder', model: new T5Model(parseT5Config(raw, config.file), weights) };
  if (type === 'bart' || type === 'marian') return { family: 'encoder-decoder', model: new BartModel(parseBartConfig(raw, config.file), weights) };
  if (config.modelType === 'vanilla_transformer_2017') return { family: 'vanilla', model: new VanillaTransformer(config, weights) };
  throw new UnsupportedError(`${config.file}: model_type "${type}" is not one glassformer runs; supported: ${SUPPORTED_MODEL_TYPES.join(', ')}`);
}

/**
 * Load a Hugging Face model folder: config.json, safetensors weights, generation_config.json and the tokenizer when present.
 * Local weights are read tensor by tensor as the layers ask for them (see Weights.from).
 */
export async function loadModel(fs: FileSystem, dir: string, options: WeightsOptions = {}): Promise<LoadedModel> {
  const folder = await openModelFolder(fs, dir);
  const checkpoint = folder.checkpoint;
  if (!checkpoint || !folder.weightsPath) throw new UnsupportedError(`${dir}: the folder has no weights`);
  const weights = Weights.from(checkpoint.canReadSync ? checkpoint : await checkpoint.loadAll(), folder.weightsPath, options);
  const pretrained = modelFromConfig(folder.config, weights);
  const hasTokenizer = Object.keys(folder.tokenizerFiles).some((f) => f === 'tokenizer.json' || f === 'vocab.txt' || f === 'vocab.json');
  const tokenizer = hasTokenizer
    ? await loadTokenizerWith(async (name) => {
        const path = fs.join(dir, name);
        return (await fs.exists(path)) ? fs.readText(path) : undefined;
      }, dir)
    : undefined;
  return { ...pretrained, dir, config: folder.config, generationConfig: folder.generationConfig, tokenizer };
}
