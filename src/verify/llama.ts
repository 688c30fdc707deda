/** Parity runner of the `llama/` fixture (LlamaForCausalLM; also any Llama-family folder laid out the same way). */
import { LlamaModel, parseLlamaConfig } from '../models/llama.js';
import { Weights } from '../nn/weights.js';
import { runCausalLMFixture } from './gpt2.js';
import type { Fixture, FixtureRun } from './types.js';

export async function runLlama(fixture: Fixture): Promise<FixtureRun> {
  const config = parseLlamaConfig(fixture.config, `${fixture.dir}/config.json`);
  const model = new LlamaModel(config, Weights.from(fixture.weights, `${fixture.dir}/model.safetensors`));
  return runCausalLMFixture(fixture, model);
}
