/** A model folder → the TraceableModel of its family, keyed by config.json `model_type`. */
import { UnsupportedError } from '../../errors.js';
import { readModelConfig } from '../../io/config.js';
import type { FileSystem } from '../../io/source.js';
import { BartModel } from '../../models/bart.js';
import { Gpt2Model, parseGpt2Config } from '../../models/gpt2.js';
import { LlamaModel, parseLlamaConfig } from '../../models/llama.js';
import { loadBert, readFolderWeights } from '../../models/bert.js';
import { T5Model } from '../../models/t5.js';
import { VanillaTransformer } from '../../models/vanilla.js';
import { Weights } from '../../nn/weights.js';
import type { TraceableModel } from '../types.js';
import { BertTraceable } from './bert.js';
import { Gpt2Traceable, LlamaTraceable } from './decoder.js';
import { BartTraceable, T5Traceable } from './seq2seq.js';
import { VanillaTraceable } from './vanilla.js';

export { BertTraceable } from './bert.js';
export { Gpt2Traceable, LlamaTraceable } from './decoder.js';
export { BartTraceable, T5Traceable } from './seq2seq.js';
export { VanillaTraceable } from './vanilla.js';

/** Load a model folder (config.json + model.safetensors, or shards) for tracing. */
export async function loadTraceable(fs: FileSystem, dir: string): Promise<TraceableModel> {
  const config = await readModelConfig(fs, fs.join(dir, 'config.json'));
  const { weights, file } = await readFolderWeights(fs, dir);
  const w = Weights.from(weights, file);
  switch (config.modelType) {
    case 'bert':
    case 'roberta':
    case 'xlm-roberta':
    case 'distilbert':
      return new BertTraceable(loadBert({ config, weights: w }));
    case 't5':
    case 'mt5':
      return new T5Traceable(new T5Model(config, w));
    case 'bart':
    case 'marian':
      return new BartTraceable(new BartModel(config, w));
    case 'gpt2':
      return new Gpt2Traceable(new Gpt2Model(parseGpt2Config(config.raw, config.file), w));
    case 'llama':
    case 'mistral':
    case 'qwen2':
    case 'qwen3':
      return new LlamaTraceable(new LlamaModel(parseLlamaConfig(config.raw, config.file), w));
    case 'vanilla_transformer_2017':
      return new VanillaTraceable(new VanillaTransformer(config, w));
    default:
      throw new UnsupportedError(
        `${dir}/config.json: tracing does not cover model_type "${(config as { modelType: string }).modelType}" yet; supported: bert, roberta, xlm-roberta, distilbert, gpt2, llama, mistral, qwen2, qwen3, t5, mt5, bart, marian, vanilla_transformer_2017`,
      );
  }
}
