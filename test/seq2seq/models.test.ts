import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, ShapeError, UnsupportedError, WeightError } from '../../src/errors.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { BartModel, parseBartConfig } from '../../src/models/bart.js';
import { parseT5Config, T5Model } from '../../src/models/t5.js';
import { idsTensor } from '../../src/nn/encoder-decoder-cache.js';
import { Hooks, noHooks } from '../../src/nn/hooks.js';
import { relativePositionBucket, relativePositionBuckets } from '../../src/nn/relative-position.js';
import { Weights } from '../../src/nn/weights.js';
import { gather, Tensor, type Shape } from '../../src/tensor/tensor.js';

const shared = process.env.GLASSFORMER_SHARED ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../..', '../shared');
const fixtures = join(shared, 'fixtures', 'hf-tiny');
const readJson = (folder: string, file: string) => JSON.parse(readFileSync(join(fixtures, folder, file), 'utf8')) as Record<string, unknown>;

async function loadT5(folder = 't5') {
  const weights = await readSafetensors(nodeFileSystem, join(fixtures, folder, 'model.safetensors'));
  return { model: new T5Model(parseT5Config(readJson(folder, 'config.json')), Weights.from(weights, folder)), weights, inputs: readJson(folder, 'inputs.json') as { input_ids: number[][]; attention_mask: number[][]; decoder_input_ids: number[][] } };
}

const maxAbsDiff = (a: Tensor, b: Tensor) => {
  assert.deepEqual(a.shape, b.shape);
  const x = a.f32();
  const y = b.f32();
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
};

test('T5 relative position buckets equal the matrices Hugging Face recorded, and follow the bucket rules', () => {
  for (const folder of ['t5', 't5/gated-gelu']) {
    const extra = readJson(folder, 'expected.json').extra as Record<string, number[][]>;
    const encoder = extra.encoder_relative_position_bucket;
    const decoder = extra.decoder_relative_position_bucket;
    assert.deepEqual(relativePositionBuckets(encoder.length, encoder[0].length, { bidirectional: true, numBuckets: 32, maxDistance: 128 }), encoder);
    assert.deepEqual(relativePositionBuckets(decoder.length, decoder[0].length, { bidirectional: false, numBuckets: 32, maxDistance: 128 }), decoder);
  }
  const both = { bidirectional: true, numBuckets: 32, maxDistance: 128 };
  const past = { bidirectional: false, numBuckets: 32, maxDistance: 128 };
  assert.equal(relativePositionBucket(-3, both), 3, 'keys behind the query: the lower half');
  assert.equal(relativePositionBucket(3, both), 19, 'keys ahead: the upper half');
  assert.equal(relativePositionBucket(-1000, both), 15, 'far distances share the last bucket');
  assert.equal(relativePositionBucket(1000, both), 31);
  assert.equal(relativePositionBucket(5, past), 0, 'the decoder sees no future: every future key is bucket 0');
  assert.equal(relativePositionBucket(-15, past), 15);
  assert.equal(relativePositionBucket(-16, past), 16, 'from nb/2 on, logarithmic buckets');
  assert.equal(relativePositionBucket(-1000, past), 31);
  // A cached decoder step at position 3 sees keys 0..3 at distances 3, 2, 1, 0.
  assert.deepEqual(relativePositionBuckets(1, 4, past, 3), [[3, 2, 1, 0]]);
});

test('hook points: encoder resid_pre is the recorded hidden state, cross-attention patterns have the source as keys, and a patch changes the logits', async () => {
  const { model, inputs } = await loadT5();
  const expected = await readSafetensors(nodeFileSystem, join(fixtures, 't5', 'expected.safetensors'));
  const seen = new Map<string, Tensor>();
  const hooks = new Hooks().add(/./, (t, name) => void seen.set(name, t));
  const ids = idsTensor(inputs.input_ids);
  const mask = idsTensor(inputs.attention_mask);
  const decoderIds = idsTensor(inputs.decoder_input_ids);
  const plain = model.forward(ids, mask, decoderIds, hooks);
  const shapeOf = (name: string): Shape | undefined => seen.get(name)?.shape;
  // Row 0 has no padding; the recorded values agree to float32 rounding.
  const firstRow = (t: Tensor | undefined) => (t as Tensor).slice(0, 0, 1);
  assert.ok(maxAbsDiff(firstRow(seen.get('encoder.blocks.1.resid_pre')), firstRow(expected.get('encoder.hidden_states.1'))) < 1e-4);
  assert.deepEqual(shapeOf('decoder.blocks.0.cross_attn.pattern'), [2, 4, 6, 18]);
  assert.deepEqual(shapeOf('decoder.blocks.1.attn.q'), [2, 4, 6, 8]);
  assert.deepEqual(shapeOf('encoder.position_bias'), [1, 4, 18, 18]);
  for (const name of ['encoder.tokens', 'encoder.embed', 'encoder.blocks.0.ln1', 'encoder.blocks.0.mlp.post', 'encoder.ln_final', 'decoder.blocks.0.ln_cross', 'decoder.blocks.1.resid_mid_cross', 'decoder.ln_final', 'logits']) {
    assert.ok(seen.has(name), `hook ${name} was called`);
  }
  const ablated = model.forward(ids, mask, decoderIds, new Hooks().add('decoder.blocks.0.cross_attn.out', (t) => Tensor.zeros(t.shape)));
  assert.ok(maxAbsDiff(plain.decoder.logits, ablated.decoder.logits) > 1e-3, 'removing cross-attention changes the logits');
});

test('a decoding session repeats each input expandBy times, steps through the cache and reorders rows', async () => {
  const { model, inputs } = await loadT5();
  const session = model.startSession({ inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, expandBy: 2 });
  const start = session.step([[0], [0], [0], [0]]); // [4, vocab]
  assert.deepEqual(start.shape, [4, 128]);
  const row = (t: Tensor, r: number) => t.slice(0, r, r + 1);
  assert.equal(maxAbsDiff(row(start, 0), row(start, 1)), 0);
  assert.ok(maxAbsDiff(row(start, 0), row(start, 2)) > 1e-3, 'rows of different inputs differ');
  // The same as a teacher-forced pass over [start, 97] for input 0 and [start, 90] for input 1.
  session.reorder([2, 3, 0, 1]);
  const second = session.step([[90], [90], [97], [97]]);
  const full = model.forward(idsTensor(inputs.input_ids), idsTensor(inputs.attention_mask), idsTensor([[0, 97], [0, 90]])).decoder.logits;
  assert.ok(maxAbsDiff(row(second, 2), full.slice(0, 0, 1).slice(1, 1, 2).reshape([1, 128])) < 1e-5);
  assert.ok(maxAbsDiff(row(second, 0), full.slice(0, 1, 2).slice(1, 1, 2).reshape([1, 128])) < 1e-5);
  assert.throws(() => session.step([[1]]), ShapeError);
});

test('a session with hooks shows the encoder once and every decoding step', async () => {
  const { model, inputs } = await loadT5();
  const calls: { name: string; shape: Shape }[] = [];
  const hooks = new Hooks().add(/(encoder\.blocks\.0\.attn|decoder\.blocks\.1\.cross_attn)\.pattern$/, (t, name) => void calls.push({ name, shape: t.shape }));
  const session = model.startSession({ inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, expandBy: 1 }, hooks);
  session.step([[0], [0]]);
  session.step([[97], [90]]);
  assert.deepEqual(calls, [
    { name: 'encoder.blocks.0.attn.pattern', shape: [2, 4, 18, 18] },
    { name: 'decoder.blocks.1.cross_attn.pattern', shape: [2, 4, 1, 18] },
    { name: 'decoder.blocks.1.cross_attn.pattern', shape: [2, 4, 1, 18] },
  ]);
});

test('reordering rows within their own input reuses the cross-attention keys and values; moving rows across inputs copies them', async () => {
  const { model, inputs } = await loadT5();
  const mask = idsTensor(inputs.attention_mask);
  const encoded = model.encode(idsTensor(inputs.input_ids), mask).output;
  const rows = [0, 0, 1, 1];
  const cache = model.startCache(gather(encoded, 0, rows), gather(mask, 0, rows), noHooks, rows);
  const kept = cache.select([1, 0, 3, 2]);
  assert.equal(kept.cross[0].key, cache.cross[0].key, 'beams moving within their input share the tensors');
  const moved = cache.select([2, 2, 0]);
  assert.deepEqual(moved.sources, [1, 1, 0]);
  assert.equal(maxAbsDiff(moved.cross[1].value.slice(0, 2, 3), cache.cross[1].value.slice(0, 0, 1)), 0);
  assert.equal(maxAbsDiff(moved.encoderMask.slice(0, 0, 1), cache.encoderMask.slice(0, 2, 3)), 0);
  assert.throws(() => cache.select([4]), ShapeError);
});

test('reorder (each beam-search step) gives what select gives, reordering the self-attention cache in place', async () => {
  const { model, inputs } = await loadT5();
  const mask = idsTensor(inputs.attention_mask);
  const encoded = model.encode(idsTensor(inputs.input_ids), mask).output;
  const rows = [0, 0, 1, 1];
  const start = () => {
    const cache = model.startCache(gather(encoded, 0, rows), gather(mask, 0, rows), noHooks, rows);
    model.decode(idsTensor([[0], [0], [0], [0]]), cache);
    model.decode(idsTensor([[5], [6], [7], [8]]), cache);
    return cache;
  };
  const order = [1, 1, 3, 2];
  const selected = start().select(order);
  const before = start();
  const self = before.self;
  const reordered = before.reorder(order);
  assert.equal(reordered.self, self, 'the same KV cache, reordered in place');
  assert.deepEqual(reordered.sources, selected.sources);
  for (let layer = 0; layer < self.layers.length; layer++) {
    assert.equal(maxAbsDiff(reordered.self.layers[layer]?.key as Tensor, selected.self.layers[layer]?.key as Tensor), 0);
    assert.equal(maxAbsDiff(reordered.self.layers[layer]?.value as Tensor, selected.self.layers[layer]?.value as Tensor), 0);
  }
  const next = idsTensor([[9], [9], [9], [9]]);
  assert.equal(maxAbsDiff(model.decode(next, reordered).logits, model.decode(next, selected).logits), 0);
});

test('bad checkpoints and configs are refused with the field or tensor named', async () => {
  const { weights } = await loadT5();
  const config = parseT5Config(readJson('t5', 'config.json'));
  const missing = new Map(weights);
  missing.delete('decoder.block.1.layer.2.DenseReluDense.wo.weight');
  assert.throws(() => new T5Model(config, Weights.from(missing, 't5')), (e: unknown) => e instanceof WeightError && /decoder\.block\.1\.layer\.2\.DenseReluDense\.wo\.weight/.test(e.message));
  const untied = parseT5Config({ ...readJson('t5', 'config.json'), tie_word_embeddings: false });
  assert.throws(() => new T5Model(untied, Weights.from(weights, 't5')), (e: unknown) => e instanceof WeightError && /lm_head\.weight/.test(e.message));
  assert.throws(() => parseT5Config(readJson('bart', 'config.json')), ConfigError);
  assert.throws(() => parseBartConfig({ ...readJson('bart', 'config.json'), normalize_before: true }), UnsupportedError);

  const marianWeights = await readSafetensors(nodeFileSystem, join(fixtures, 'marian', 'model.safetensors'));
  const marian = new BartModel(parseBartConfig(readJson('marian', 'config.json')), Weights.from(marianWeights, 'marian'));
  const long = idsTensor([new Array<number>(65).fill(5)]);
  assert.throws(() => marian.encode(long, idsTensor([new Array<number>(65).fill(1)])), (e: unknown) => e instanceof ConfigError && /max_position_embeddings/.test(e.message));
});

test('every tensor of the fixture checkpoints is read by the model', async () => {
  for (const folder of ['t5', 't5/gated-gelu', 'bart', 'marian']) {
    const weights = Weights.from(await readSafetensors(nodeFileSystem, join(fixtures, folder, 'model.safetensors')), folder);
    const raw = readJson(folder, 'config.json');
    if (folder.startsWith('t5')) new T5Model(parseT5Config(raw), weights);
    else new BartModel(parseBartConfig(raw), weights);
    assert.deepEqual(weights.unused(), [], folder);
  }
});
