import { ConfigError } from '../errors.js';
import { parseModelConfig } from '../io/config.js';
import { VanillaTransformer } from '../models/vanilla.js';
import { Weights } from '../nn/weights.js';
import { Tensor } from '../tensor/tensor.js';
import type { Fixture, FixtureRun, ValidPositions } from './types.js';

type Ids = number[][];

export function idsTensor(rows: Ids): Tensor {
  return Tensor.i32(rows.flat(), [rows.length, rows[0]?.length ?? 0]);
}

/** The 2017 Transformer fixture: one teacher-forced pass, every recorded intermediate. */
export async function runVanilla(fixture: Fixture): Promise<FixtureRun> {
  const config = parseModelConfig(fixture.config, `${fixture.dir}/config.json`);
  if (config.modelType !== 'vanilla_transformer_2017') {
    throw new ConfigError(`${fixture.dir}/config.json: model_type "${config.modelType}" is not the 2017 Transformer`);
  }
  const model = new VanillaTransformer(config, Weights.from(fixture.weights, `${fixture.dir}/model.safetensors`));
  const inputs = fixture.inputs as { src_ids: Ids; src_attention_mask: Ids; tgt_ids: Ids };
  const srcMask = idsTensor(inputs.src_attention_mask);
  const out = model.forward(idsTensor(inputs.src_ids), srcMask, idsTensor(inputs.tgt_ids));
  const tensors = new Map<string, Tensor>([
    ['src_embedded', out.srcEmbedded],
    ['tgt_embedded', out.tgtEmbedded],
    ['encoder_output', out.encoderOutput],
    ['decoder_output', out.decoderOutput],
    ['logits', out.logits],
  ]);
  out.encoderLayerOutputs.forEach((t, i) => tensors.set(`encoder.layer_outputs.${i}`, t));
  out.decoderLayerOutputs.forEach((t, i) => tensors.set(`decoder.layer_outputs.${i}`, t));
  // Padded source positions differ between PyTorch's paths; only real tokens are compared.
  const source: ValidPositions = { axis: 1, mask: inputs.src_attention_mask };
  const valid = new Map<string, ValidPositions>();
  for (const name of tensors.keys()) if (name.startsWith('encoder')) valid.set(name, source);
  return { tensors, valid };
}
