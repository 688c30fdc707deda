/**
 * Parity runners of the encoder-decoder fixtures (t5, t5/gated-gelu; bart and
 * marian reuse `runEncoderDecoderFixture`): one teacher-forced pass with every
 * recorded intermediate, the decoder fed again one token at a time through its
 * cache, and every recorded generate() run.
 */
import { FormatError } from '../errors.js';
import { T5Model, parseT5Config } from '../models/t5.js';
import { idsTensor, type EncoderDecoderModel } from '../nn/encoder-decoder-cache.js';
import { relativePositionBuckets } from '../nn/relative-position.js';
import { Weights } from '../nn/weights.js';
import { Tensor } from '../tensor/tensor.js';
import type { Fixture, FixtureRun, ValidPositions } from './types.js';

type Ids = number[][];

interface Seq2SeqInputs {
  input_ids: Ids;
  attention_mask: Ids;
  decoder_input_ids: Ids;
}

function readInputs(fixture: Fixture): Seq2SeqInputs {
  const inputs = fixture.inputs as Partial<Seq2SeqInputs>;
  for (const key of ['input_ids', 'attention_mask', 'decoder_input_ids'] as const) {
    if (!Array.isArray(inputs[key])) throw new FormatError(`${fixture.dir}/inputs.json`, `field "${key}" must be a list of token id lists`);
  }
  return inputs as Seq2SeqInputs;
}

/** Forward, incremental and generate tensors of any encoder-decoder model on a fixture. */
export function runEncoderDecoderFixture(fixture: Fixture, model: EncoderDecoderModel): FixtureRun {
  const inputs = readInputs(fixture);
  const ids = idsTensor(inputs.input_ids);
  const mask = idsTensor(inputs.attention_mask);
  const decoderIds = idsTensor(inputs.decoder_input_ids);
  const tensors = new Map<string, Tensor>();

  const encoder = model.encode(ids, mask);
  encoder.hiddenStates.forEach((t, i) => tensors.set(`encoder.hidden_states.${i}`, t));
  encoder.attentions.forEach((t, i) => tensors.set(`encoder.attentions.${i}`, t));
  tensors.set('encoder.last_hidden_state', encoder.output);
  if (encoder.positionBias) tensors.set('encoder.position_bias', encoder.positionBias);

  const decoder = model.decode(decoderIds, model.startCache(encoder.output, mask));
  decoder.hiddenStates.forEach((t, i) => tensors.set(`decoder.hidden_states.${i}`, t));
  decoder.attentions.forEach((t, i) => tensors.set(`decoder.attentions.${i}`, t));
  decoder.crossAttentions.forEach((t, i) => tensors.set(`decoder.cross_attentions.${i}`, t));
  tensors.set('decoder.last_hidden_state', decoder.hiddenStates[decoder.hiddenStates.length - 1]);
  if (decoder.positionBias) tensors.set('decoder.position_bias', decoder.positionBias);
  tensors.set('logits', decoder.logits);

  // The same decoder ids again, one position at a time through the KV cache.
  const cache = model.startCache(encoder.output, mask);
  for (let k = 0; k < decoderIds.shape[1]; k++) {
    tensors.set(`incremental.step_logits.${k}`, model.decode(decoderIds.slice(1, k, k + 1), cache).logits);
  }

  // Padded source positions are artefacts in the reference (README): compare real tokens only.
  const valid = new Map<string, ValidPositions>();
  for (const name of tensors.keys()) {
    if (name.startsWith('encoder.hidden_states') || name === 'encoder.last_hidden_state') valid.set(name, { axis: 1, mask: inputs.attention_mask });
    if (name.startsWith('encoder.attentions')) valid.set(name, { axis: 2, mask: inputs.attention_mask });
  }
  return { tensors, valid };
}

/** expected.json `extra.*_relative_position_bucket` against glassformer's bucket function; returns mismatch descriptions. */
export function checkRelativePositionBuckets(fixture: Fixture, model: T5Model): string[] {
  const extra = (fixture.expectedJson.extra ?? {}) as Record<string, number[][] | undefined>;
  const problems: string[] = [];
  for (const [name, bidirectional] of [
    ['encoder_relative_position_bucket', true],
    ['decoder_relative_position_bucket', false],
  ] as const) {
    const expected = extra[name];
    if (!expected) {
      problems.push(`${name}: not in expected.json extra`);
      continue;
    }
    const options = { bidirectional, numBuckets: model.config.relativeAttentionNumBuckets, maxDistance: model.config.relativeAttentionMaxDistance };
    const got = relativePositionBuckets(expected.length, expected[0].length, options);
    expected.forEach((row, i) =>
      row.forEach((bucket, j) => {
        if (got[i][j] !== bucket) problems.push(`${name}[${i}][${j}]: expected ${bucket}, got ${got[i][j]}`);
      }),
    );
  }
  return problems;
}

export function loadT5Fixture(fixture: Fixture): T5Model {
  const config = parseT5Config(fixture.config, `${fixture.dir}/config.json`);
  return new T5Model(config, Weights.from(fixture.weights, `${fixture.dir}/model.safetensors`));
}

/** The t5 fixture runner; the bucket matrices of expected.json `extra` must match exactly too. */
export async function runT5(fixture: Fixture): Promise<FixtureRun> {
  const model = loadT5Fixture(fixture);
  const problems = checkRelativePositionBuckets(fixture, model);
  if (problems.length > 0) throw new FormatError(`${fixture.dir}/expected.json`, `relative position buckets differ: ${problems.slice(0, 5).join('; ')}`);
  return runEncoderDecoderFixture(fixture, model);
}
