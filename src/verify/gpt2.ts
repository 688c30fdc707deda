/**
 * Parity runners of the decoder-only fixtures (`gpt2/`, and through
 * `runCausalLMFixture` also `llama/`): one prompt pass with a KV cache, the
 * incremental decode, an uncached pass over the full sequence, and every
 * recorded generate() run.
 */
import { generate, type GenerateResult } from '../generation/generate.js';
import { generationOptionsFromJson, type GenerateOptions } from '../generation/options.js';
import { parseGpt2Config, Gpt2Model } from '../models/gpt2.js';
import { idsTensor, type CausalLM } from '../nn/causal-lm.js';
import { KVCache } from '../nn/kv-cache.js';
import { Weights } from '../nn/weights.js';
import type { Tensor } from '../tensor/tensor.js';
import type { GenerativeModel } from '../generation/types.js';
import type { Fixture, FixtureRun, ValidPositions } from './types.js';

type Ids = number[][];

interface CausalInputs {
  input_ids: Ids;
  attention_mask: Ids;
  position_ids: Ids;
  incremental: {
    append_ids: Ids;
    step_position_ids: Ids[];
    full_input_ids: Ids;
    full_attention_mask: Ids;
    full_position_ids: Ids;
  };
  generate: Record<string, Record<string, unknown>>;
}

/** A fixture's generate kwargs (snake_case, as passed to HF) as glassformer options. */
export function generateKwargs(kwargs: Record<string, unknown>, run: string): GenerateOptions {
  return generationOptionsFromJson(kwargs, `inputs.json generate.${run}`);
}

/** Every recorded tensor and generate run of a decoder-only fixture. */
export async function runCausalLMFixture(fixture: Fixture, model: CausalLM & GenerativeModel): Promise<FixtureRun> {
  const inputs = fixture.inputs as unknown as CausalInputs;
  const tensors = new Map<string, Tensor>();
  const valid = new Map<string, ValidPositions>();
  const queries: ValidPositions = { axis: 1, mask: inputs.attention_mask };

  // The prompt pass, with a cache for the incremental steps.
  const cache = new KVCache(model.numLayers);
  const prompt = model.forward(idsTensor(inputs.input_ids), {
    attentionMask: idsTensor(inputs.attention_mask),
    positionIds: idsTensor(inputs.position_ids),
    cache,
  });
  prompt.hiddenStates.forEach((h, i) => tensors.set(`hidden_states.${i}`, h));
  prompt.attentions.forEach((a, i) => {
    tensors.set(`attentions.${i}`, a);
    valid.set(`attentions.${i}`, { axis: 2, mask: inputs.attention_mask });
  });
  tensors.set('last_hidden_state', prompt.hiddenStates[prompt.hiddenStates.length - 1]);
  tensors.set('logits', prompt.logits);
  for (const name of tensors.keys()) if (!valid.has(name)) valid.set(name, queries);
  cache.layers.forEach((kv, l) => {
    if (!kv) return;
    tensors.set(`cache.${l}.key`, kv.key);
    tensors.set(`cache.${l}.value`, kv.value);
    // Keys and values at padded positions of later layers come from artefact rows.
    valid.set(`cache.${l}.key`, { axis: 2, mask: inputs.attention_mask });
    valid.set(`cache.${l}.value`, { axis: 2, mask: inputs.attention_mask });
  });

  // One token at a time through the cache.
  const inc = inputs.incremental;
  let mask = inputs.attention_mask.map((row) => [...row]);
  inc.step_position_ids.forEach((positions, k) => {
    mask = mask.map((row) => [...row, 1]);
    const ids = inc.append_ids.map((row) => [row[k]]);
    const { logits } = model.forward(idsTensor(ids), { attentionMask: idsTensor(mask), positionIds: idsTensor(positions), cache });
    tensors.set(`incremental.step_logits.${k}`, logits);
  });
  const full = model.forward(idsTensor(inc.full_input_ids), {
    attentionMask: idsTensor(inc.full_attention_mask),
    positionIds: idsTensor(inc.full_position_ids),
  });
  tensors.set('incremental.full_logits', full.logits);
  valid.set('incremental.full_logits', { axis: 1, mask: inc.full_attention_mask });

  // generate(): the kwargs of each run over generation_config.json.
  const defaults = generationOptionsFromJson(JSON.parse(await fixture.fs.readText(fixture.fs.join(fixture.dir, 'generation_config.json'))) as Record<string, unknown>);
  const sequences: Record<string, number[][]> = {};
  const sequenceScores: Record<string, number[]> = {};
  for (const [run, kwargs] of Object.entries(inputs.generate)) {
    const result: GenerateResult = generate(
      model,
      { inputIds: inputs.input_ids, attentionMask: inputs.attention_mask },
      { ...generateKwargs(kwargs, run), outputScores: true, outputLogits: true },
      defaults,
    );
    sequences[run] = result.sequences;
    if (result.sequencesScores) sequenceScores[run] = result.sequencesScores;
    if (result.logits && fixture.expected.has(`generate.${run}.logits`)) tensors.set(`generate.${run}.logits`, result.logits);
    if (result.scores && fixture.expected.has(`generate.${run}.scores`)) tensors.set(`generate.${run}.scores`, result.scores);
  }
  return { tensors, valid, sequences, sequenceScores };
}

/** The gpt2 fixture (GPT2LMHeadModel). */
export async function runGpt2(fixture: Fixture): Promise<FixtureRun> {
  const config = parseGpt2Config(fixture.config, `${fixture.dir}/config.json`);
  const model = new Gpt2Model(config, Weights.from(fixture.weights, `${fixture.dir}/model.safetensors`));
  return runCausalLMFixture(fixture, model);
}
