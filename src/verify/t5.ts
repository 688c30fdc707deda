/**
 * Parity runners of the encoder-decoder fixtures (t5, t5/gated-gelu; bart and
 * marian reuse `runEncoderDecoderFixture`): one teacher-forced pass with every
 * recorded intermediate, the decoder fed again one token at a time through its
 * cache, and every recorded generate() run.
 */
import { FormatError } from '../errors.js';
import { generate } from '../generation/generate.js';
import { generationOptionsFromJson, type GenerateOptions } from '../generation/options.js';
import type { GenerativeModel } from '../generation/types.js';
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
export async function runEncoderDecoderFixture(fixture: Fixture, model: EncoderDecoderModel & GenerativeModel): Promise<FixtureRun> {
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
  const generated = await runGenerations(fixture, model, inputs);
  for (const [name, t] of generated.tensors) tensors.set(name, t);
  return { tensors, valid, sequences: generated.sequences, sequenceScores: generated.sequenceScores };
}

/** Keys of config.json that HF's `GenerationConfig.from_model_config` carries over when there is no generation_config.json. */
const MODEL_CONFIG_GENERATION_KEYS = ['pad_token_id', 'bos_token_id', 'eos_token_id', 'decoder_start_token_id', 'forced_bos_token_id', 'forced_eos_token_id', 'bad_words_ids'];

/** generation_config.json of the fixture as generate() defaults (or the generation keys of config.json). */
async function generationDefaults(fixture: Fixture): Promise<GenerateOptions> {
  const path = fixture.fs.join(fixture.dir, 'generation_config.json');
  if (await fixture.fs.exists(path)) {
    const text = await fixture.fs.readText(path);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new FormatError(path, `not valid JSON (${(error as Error).message})`);
    }
    return generationOptionsFromJson(json as Record<string, unknown>, path);
  }
  const keys = Object.fromEntries(MODEL_CONFIG_GENERATION_KEYS.filter((k) => fixture.config[k] !== undefined).map((k) => [k, fixture.config[k]]));
  return generationOptionsFromJson(keys, `${fixture.dir}/config.json`);
}

/**
 * Every generate() run of inputs.json: its kwargs over generation_config.json,
 * on input_ids + attention_mask, keeping each step's raw logits and processed scores.
 */
async function runGenerations(fixture: Fixture, model: GenerativeModel, inputs: Seq2SeqInputs): Promise<Required<Pick<FixtureRun, 'tensors' | 'sequences' | 'sequenceScores'>>> {
  const runs = (fixture.inputs.generate ?? {}) as Record<string, Record<string, unknown>>;
  const defaults = await generationDefaults(fixture);
  const tensors = new Map<string, Tensor>();
  const sequences: Record<string, number[][]> = {};
  const sequenceScores: Record<string, number[]> = {};
  for (const [name, kwargs] of Object.entries(runs)) {
    const options = { ...generationOptionsFromJson(kwargs, `${fixture.dir}/inputs.json generate.${name}`), outputScores: true, outputLogits: true };
    const result = generate(model, { inputIds: inputs.input_ids, attentionMask: inputs.attention_mask }, options, defaults);
    sequences[name] = result.sequences;
    if (result.sequencesScores) sequenceScores[name] = result.sequencesScores;
    if (result.logits) tensors.set(`generate.${name}.logits`, result.logits);
    if (result.scores) tensors.set(`generate.${name}.scores`, result.scores);
  }
  return { tensors, sequences, sequenceScores };
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
