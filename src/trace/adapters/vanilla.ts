/** The 2017 Transformer (src/models/vanilla.ts) as a TraceableModel. */
import { ConfigError, ShapeError } from '../../errors.js';
import { readModelConfig } from '../../io/config.js';
import type { FileSystem } from '../../io/source.js';
import { Checkpoint } from '../../io/checkpoint.js';
import { VanillaTransformer } from '../../models/vanilla.js';
import type { HookPoints } from '../../nn/hooks.js';
import { Weights } from '../../nn/weights.js';
import type { Tensor } from '../../tensor/tensor.js';
import { idsTensor, onesLike } from '../inputs.js';
import type { ModelDescription, ReadOut, TraceableModel, TraceInputs } from '../types.js';

export class VanillaTraceable implements TraceableModel {
  readonly description: ModelDescription;
  readonly readOut: ReadOut;

  constructor(readonly model: VanillaTransformer) {
    const c = model.config;
    const stack = { heads: c.nhead, kvHeads: c.nhead, dModel: c.dModel, dHead: c.dModel / c.nhead };
    this.description = {
      family: 'encoder-decoder',
      modelType: c.modelType,
      summary: `the 2017 Transformer (torch.nn.Transformer): ${c.normFirst ? 'pre' : 'post'}-norm, ${c.activation}, sinusoidal positions`,
      norm: c.normFirst ? 'pre' : 'post',
      positions: 'sinusoidal',
      vocabSize: c.tgtVocabSize,
      stacks: [
        { prefix: 'encoder.', layers: c.numEncoderLayers, ...stack, crossAttention: false, causal: false, input: 'inputIds' },
        { prefix: 'decoder.', layers: c.numDecoderLayers, ...stack, crossAttention: true, causal: true, input: 'decoderInputIds' },
      ],
      lensStack: 'decoder.',
      specialTokens: { bos: c.bosTokenId, eos: [c.eosTokenId], pad: c.padTokenId, decoderStart: c.bosTokenId },
    };
    // nn.Transformer's final decoder norm, then the generator.
    const norm = model.decoderNorm;
    this.readOut = {
      kind: 'linear',
      norm: norm ? { kind: 'layer', weight: norm.weight, bias: norm.bias, eps: norm.eps } : null,
      weight: model.generator.weight,
      bias: model.generator.bias,
      scale: 1,
    };
  }

  static async load(fs: FileSystem, dir: string): Promise<VanillaTraceable> {
    const configPath = fs.join(dir, 'config.json');
    const config = await readModelConfig(fs, configPath);
    if (config.modelType !== 'vanilla_transformer_2017') throw new ConfigError(`${configPath}: model_type "${config.modelType}" is not the 2017 Transformer`);
    const weightsPath = fs.join(dir, 'model.safetensors');
    return new VanillaTraceable(new VanillaTransformer(config, await Weights.fromCheckpoint(await Checkpoint.open(fs, weightsPath), weightsPath)));
  }

  run(inputs: TraceInputs, hooks: HookPoints): Tensor {
    if (!inputs.decoderInputIds) {
      throw new ShapeError('the 2017 Transformer is an encoder-decoder: give decoderInputIds (starting with bos) as well as inputIds');
    }
    const src = idsTensor('inputIds', inputs.inputIds);
    const mask = idsTensor('attentionMask', inputs.attentionMask ?? onesLike(inputs.inputIds));
    return this.model.forward(src, mask, idsTensor('decoderInputIds', inputs.decoderInputIds), hooks).logits;
  }
}
