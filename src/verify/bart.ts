/** Parity runner of the bart and marian fixtures (the shared encoder-decoder run is in ./t5.ts). */
import { BartModel, parseBartConfig } from '../models/bart.js';
import { Weights } from '../nn/weights.js';
import { runEncoderDecoderFixture } from './t5.js';
import type { Fixture, FixtureRun } from './types.js';

export function loadBartFixture(fixture: Fixture): BartModel {
  const config = parseBartConfig(fixture.config, `${fixture.dir}/config.json`);
  return new BartModel(config, Weights.from(fixture.weights, `${fixture.dir}/model.safetensors`));
}

export async function runBart(fixture: Fixture): Promise<FixtureRun> {
  return runEncoderDecoderFixture(fixture, loadBartFixture(fixture));
}
