import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { readModelConfig } from '../../src/io/config.js';
import { VanillaTransformer } from '../../src/models/vanilla.js';
import { Hooks } from '../../src/nn/hooks.js';
import { Weights } from '../../src/nn/weights.js';
import { sinusoidalInterleaved } from '../../src/nn/positional.js';
import { compareTensors, formatReport, verifyFolder } from '../../src/verify/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { HF_TINY } from '../helpers/shared.js';

const DIR = join(HF_TINY, 'vanilla');

test('the 2017 Transformer reproduces every tensor PyTorch recorded', async () => {
  const report = await verifyFolder(nodeFileSystem, DIR);
  assert.ok(report.pass, formatReport(report));
  assert.equal(report.tensors.length, 9);
});

test('the stored positional encoding is the paper sinusoid', async () => {
  const weights = await readSafetensors(nodeFileSystem, join(DIR, 'model.safetensors'));
  const stored = weights.get('pos_encoding');
  assert.ok(stored);
  const computed = sinusoidalInterleaved(stored.shape[0], stored.shape[1]);
  assert.ok(compareTensors('pos_encoding', computed, stored).maxAbsDiff < 1e-6);
});

test('hooks see every intermediate and a replaced tensor changes the output', async () => {
  const config = await readModelConfig(nodeFileSystem, join(DIR, 'config.json'));
  assert.equal(config.modelType, 'vanilla_transformer_2017');
  const weights = await readSafetensors(nodeFileSystem, join(DIR, 'model.safetensors'));
  const model = new VanillaTransformer(config, Weights.from(weights));
  const src = Tensor.i32([5, 6, 7, 2], [1, 4]);
  const mask = Tensor.i32([1, 1, 1, 1], [1, 4]);
  const tgt = Tensor.i32([1, 9, 10], [1, 3]);
  const seen = new Map<string, readonly number[]>();
  const recorder = new Hooks().add(/./, (t, name) => void seen.set(name, t.shape));
  const base = model.forward(src, mask, tgt, recorder);
  assert.deepEqual(seen.get('encoder.blocks.1.attn.pattern'), [1, 4, 4, 4]);
  assert.deepEqual(seen.get('decoder.blocks.0.cross_attn.pattern'), [1, 4, 3, 4]);
  assert.deepEqual(seen.get('decoder.blocks.0.attn.q'), [1, 4, 3, 8]);
  assert.deepEqual(seen.get('decoder.blocks.1.mlp.pre'), [1, 3, 64]);
  assert.deepEqual(seen.get('logits'), [1, 3, 112]);
  // Causal: the first target position attends only to itself, in every head.
  let pattern: Tensor | undefined;
  model.forward(src, mask, tgt, new Hooks().add('decoder.blocks.0.attn.pattern', (t) => void (pattern = t)));
  assert.ok(pattern);
  for (let h = 0; h < 4; h++) assert.deepEqual([pattern.get(0, h, 0, 0), pattern.get(0, h, 0, 1), pattern.get(0, h, 0, 2)], [1, 0, 0]);

  const ablated = new Hooks().add(/^decoder\.blocks\.\d+\.cross_attn\.pattern$/, (t) => Tensor.zeros(t.shape));
  const out = model.forward(src, mask, tgt, ablated);
  assert.ok(compareTensors('logits', out.logits, base.logits).maxAbsDiff > 1e-3, 'ablating cross-attention must change the logits');
});
