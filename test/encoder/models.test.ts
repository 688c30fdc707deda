import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { UnsupportedError, WeightError } from '../../src/errors.js';
import { parseModelConfig } from '../../src/io/config.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { loadBert, loadBertFolder, robertaPositionIds, type EncoderInputs } from '../../src/models/bert.js';
import { Hooks } from '../../src/nn/hooks.js';
import { linear, relu } from '../../src/ops/index.js';
import { concat, Tensor } from '../../src/tensor/tensor.js';
import { recorded } from './fixture.js';
import { BERT_CLASSIFICATION_FIXTURE, BERT_FIXTURE, temporaryFolder } from './shared.js';

type Json = Record<string, unknown>;

async function fixtureParts(dir: string): Promise<{ config: Json; weights: Map<string, Tensor> }> {
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Json;
  return { config, weights: await readSafetensors(nodeFileSystem, join(dir, 'model.safetensors')) };
}

/** Rename checkpoint tensors: each [from, to] prefix pair is tried in order. */
function rename(weights: Map<string, Tensor>, rules: [string, string][]): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, t] of weights) {
    const rule = rules.find(([from]) => name.startsWith(from));
    if (rule) out.set(rule[1] + name.slice(rule[0].length), t);
  }
  return out;
}

function inputsOf(run: Awaited<ReturnType<typeof recorded>>, withTypes = true): EncoderInputs {
  const t = (rows: number[][]) => Tensor.i32(rows.flat(), [rows.length, rows[0].length]);
  return { inputIds: t(run.inputs.input_ids), attentionMask: t(run.inputs.attention_mask), tokenTypeIds: withTypes ? t(run.inputs.token_type_ids) : undefined };
}

/** Largest difference at real-token rows of [batch, seq, …] tensors. */
function maxDiffAtValid(got: Tensor, expected: Tensor, mask: number[][]): number {
  const g = got.f32();
  const e = expected.f32();
  const [batch, seq] = expected.shape;
  const inner = expected.size / (batch * seq);
  let worst = 0;
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < seq; t++) {
      if (!mask[b][t]) continue;
      for (let j = 0; j < inner; j++) worst = Math.max(worst, Math.abs(g[(b * seq + t) * inner + j] - e[(b * seq + t) * inner + j]));
    }
  }
  return worst;
}

test('a sentence-transformers style checkpoint without the "bert." prefix loads as BertModel and matches the recorded states', async () => {
  const { config, weights } = await fixtureParts(BERT_FIXTURE);
  const run = await recorded(BERT_FIXTURE);
  const bare = rename(weights, [['bert.', '']]);
  const model = loadBert({ config: parseModelConfig({ ...config, architectures: ['BertModel'] }), weights: bare });
  assert.equal(model.head, 'base');
  const out = model.forward(inputsOf(run));
  assert.ok(maxDiffAtValid(out.lastHiddenState, run.expected.get('last_hidden_state')!, run.inputs.attention_mask) < 1e-5);
  assert.equal(out.poolerOutput, undefined);
});

test('RoBERTa: positions count from padding_idx + 1 (create_position_ids_from_input_ids)', () => {
  const ids = Tensor.i32([0, 31, 47, 2, 1, 1, 0, 5, 2, 1, 1, 1], [2, 6]);
  assert.deepEqual(Array.from(robertaPositionIds(ids, 1).data), [2, 3, 4, 5, 1, 1, 2, 3, 4, 1, 1, 1]);
});

test('RoBERTa names and shifted positions reproduce the recorded BERT MLM logits and classification logits', async () => {
  const run = await recorded(BERT_FIXTURE);
  for (const [dir, head] of [[BERT_FIXTURE, 'ForMaskedLM'], [BERT_CLASSIFICATION_FIXTURE, 'ForSequenceClassification']] as const) {
    const { config, weights } = await fixtureParts(dir);
    const renamed = rename(weights, [
      ['bert.pooler.dense.', 'classifier.dense.'],
      ['classifier.', 'classifier.out_proj.'],
      ['bert.', 'roberta.'],
      ['cls.predictions.transform.dense.', 'lm_head.dense.'],
      ['cls.predictions.transform.LayerNorm.', 'lm_head.layer_norm.'],
      ['cls.predictions.bias', 'lm_head.bias'],
    ]);
    // RoBERTa position p + padding_idx + 1 holds BERT position p (padding_idx 0 here, the fixture's pad id).
    const positions = weights.get('bert.embeddings.position_embeddings.weight')!;
    renamed.set('roberta.embeddings.position_embeddings.weight', concat([Tensor.zeros([1, 32]), positions], 0));
    const model = loadBert({
      config: parseModelConfig({ ...config, model_type: 'roberta', architectures: [`Roberta${head}`], max_position_embeddings: 65, pad_token_id: 0 }),
      weights: renamed,
    });
    const expected = (await recorded(dir)).expected;
    const out = model.forward(inputsOf(run));
    assert.ok(maxDiffAtValid(out.lastHiddenState, expected.get('last_hidden_state')!, run.inputs.attention_mask) < 1e-5);
    if (head === 'ForMaskedLM') assert.ok(maxDiffAtValid(out.logits!, expected.get('logits')!, run.inputs.attention_mask) < 1e-4);
    else out.logits!.f32().forEach((v, i) => assert.ok(Math.abs(v - expected.get('logits')!.f32()[i]) < 1e-5));
  }
});

test('DistilBERT names build the same encoder, MLM head and a ReLU pre-classifier head', async () => {
  const run = await recorded(BERT_FIXTURE);
  const { config, weights } = await fixtureParts(BERT_FIXTURE);
  const bert = loadBert({ config: parseModelConfig(config), weights });
  const reference = bert.forward(inputsOf(run, false)); // token type 0 everywhere
  const renamed = rename(weights, [
    ['bert.embeddings.', 'distilbert.embeddings.'],
    ['cls.predictions.transform.dense.', 'vocab_transform.'],
    ['cls.predictions.transform.LayerNorm.', 'vocab_layer_norm.'],
    ['cls.predictions.bias', 'vocab_projector.bias'],
  ]);
  const layerNames: [string, string][] = [
    ['attention.self.query', 'attention.q_lin'],
    ['attention.self.key', 'attention.k_lin'],
    ['attention.self.value', 'attention.v_lin'],
    ['attention.output.dense', 'attention.out_lin'],
    ['attention.output.LayerNorm', 'sa_layer_norm'],
    ['intermediate.dense', 'ffn.lin1'],
    ['output.dense', 'ffn.lin2'],
    ['output.LayerNorm', 'output_layer_norm'],
  ];
  for (const [name, t] of weights) {
    const m = /^bert\.encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$/.exec(name);
    if (!m) continue;
    const [, i, part, kind] = m;
    const target = layerNames.find(([from]) => from === part)![1];
    renamed.set(`distilbert.transformer.layer.${i}.${target}.${kind}`, t);
  }
  // DistilBERT has no token types: BERT's type-0 row is folded into every position row.
  const type0 = weights.get('bert.embeddings.token_type_embeddings.weight')!.slice(0, 0, 1);
  const positions = weights.get('bert.embeddings.position_embeddings.weight')!;
  renamed.delete('distilbert.embeddings.token_type_embeddings.weight');
  renamed.set('distilbert.embeddings.position_embeddings.weight', Tensor.f32(positions.f32().map((v, i) => v + type0.f32()[i % 32]), [64, 32]));
  const distilConfig = { model_type: 'distilbert', architectures: ['DistilBertForMaskedLM'], vocab_size: 128, dim: 32, n_layers: 2, n_heads: 4, hidden_dim: 64, activation: 'gelu', max_position_embeddings: 64, pad_token_id: 0 };
  const distil = loadBert({ config: parseModelConfig(distilConfig), weights: renamed });
  const out = distil.forward(inputsOf(run, false));
  assert.ok(maxDiffAtValid(out.lastHiddenState, reference.lastHiddenState, run.inputs.attention_mask) < 1e-5);
  assert.ok(maxDiffAtValid(out.logits!, reference.logits!, run.inputs.attention_mask) < 1e-4);
  assert.throws(() => distil.forward(inputsOf(run, true)), /no token type embeddings/);

  const w1 = Tensor.f32(Array.from({ length: 32 * 32 }, (_, i) => Math.sin(i)), [32, 32]);
  const w2 = Tensor.f32(Array.from({ length: 3 * 32 }, (_, i) => Math.cos(i)), [3, 32]);
  renamed.set('pre_classifier.weight', w1).set('pre_classifier.bias', Tensor.full([32], 0.1)).set('classifier.weight', w2).set('classifier.bias', Tensor.f32([1, 2, 3]));
  const classifier = loadBert({ config: parseModelConfig({ ...distilConfig, architectures: ['DistilBertForSequenceClassification'], id2label: { 0: 'a', 1: 'b', 2: 'c' } }), weights: renamed });
  const h0 = reference.lastHiddenState.slice(1, 0, 1).reshape([2, 32]);
  const expected = linear(relu(linear(h0, w1, Tensor.full([32], 0.1))), w2, Tensor.f32([1, 2, 3]));
  classifier.forward(inputsOf(run, false)).logits!.f32().forEach((v, i) => assert.ok(Math.abs(v - expected.f32()[i]) < 1e-5));
});

test('BertForTokenClassification scores every token with `classifier` on the final hidden states', async () => {
  const run = await recorded(BERT_FIXTURE);
  const { config, weights } = await fixtureParts(BERT_FIXTURE);
  const w = Tensor.f32(Array.from({ length: 5 * 32 }, (_, i) => Math.sin(i * 0.7)), [5, 32]);
  const b = Tensor.f32([0.1, -0.2, 0.3, 0, 0.5]);
  weights.set('classifier.weight', w).set('classifier.bias', b);
  const model = loadBert({ config: parseModelConfig({ ...config, architectures: ['BertForTokenClassification'], num_labels: 5 }), weights });
  assert.equal(model.head, 'token-classification');
  const logits = model.forward(inputsOf(run)).logits!;
  assert.deepEqual(logits.shape, [2, 12, 5]);
  const expected = linear(run.expected.get('last_hidden_state')!, w, b);
  assert.ok(maxDiffAtValid(logits, expected, run.inputs.attention_mask) < 1e-5);
});

test('hooks see every named intermediate of the encoder and may replace one', async () => {
  const run = await recorded(BERT_FIXTURE);
  const { config, weights } = await fixtureParts(BERT_FIXTURE);
  const model = loadBert({ config: parseModelConfig(config), weights });
  const seen = new Map<string, readonly number[]>();
  const hooks = new Hooks().add(() => true, (t, name) => void seen.set(name, t.shape));
  model.forward(inputsOf(run), { hooks });
  for (const name of ['tokens', 'embed', 'type_embed', 'pos_embed', 'ln_embed', 'blocks.0.resid_pre', 'blocks.0.attn.q', 'blocks.0.attn.scores', 'blocks.0.attn.pattern', 'blocks.0.attn.z', 'blocks.0.attn.out', 'blocks.0.resid_mid', 'blocks.0.ln1', 'blocks.0.mlp.pre', 'blocks.0.mlp.post', 'blocks.0.mlp.out', 'blocks.0.ln2', 'blocks.1.resid_post', 'mlm.transform', 'logits']) {
    assert.ok(seen.has(name), `hook ${name} not called`);
  }
  assert.deepEqual(seen.get('blocks.1.attn.pattern'), [2, 4, 12, 12]);
  assert.deepEqual(seen.get('blocks.0.mlp.pre'), [2, 12, 64]);
  // Zeroing layer 1's attention output changes the logits.
  const ablated = model.forward(inputsOf(run), { hooks: new Hooks().add('blocks.1.attn.out', (t) => Tensor.zeros(t.shape)) }).logits!;
  const clean = model.forward(inputsOf(run)).logits!;
  assert.ok(ablated.f32().some((v, i) => Math.abs(v - clean.f32()[i]) > 1e-3));
});

test('unsupported heads, position types, missing tensors and over-long inputs are refused with clear errors', async () => {
  const { config, weights } = await fixtureParts(BERT_FIXTURE);
  assert.throws(() => loadBert({ config: parseModelConfig({ ...config, architectures: ['BertForQuestionAnswering'] }), weights }), (e: unknown) => e instanceof UnsupportedError && /BertForQuestionAnswering/.test(e.message));
  assert.equal(loadBert({ config: parseModelConfig({ ...config, architectures: ['BertForQuestionAnswering'] }), weights }, { head: 'base' }).head, 'base');
  assert.throws(() => loadBert({ config: parseModelConfig({ ...config, position_embedding_type: 'relative_key' }), weights }), /position_embedding_type "relative_key" is not supported/);
  const partial = new Map(weights);
  partial.delete('bert.encoder.layer.1.output.dense.weight');
  assert.throws(() => loadBert({ config: parseModelConfig(config), weights: partial, weightsName: 'm.safetensors' }), (e: unknown) => e instanceof WeightError && /m.safetensors: tensor "bert.encoder.layer.1.output.dense.weight" is missing/.test(e.message));
  assert.throws(() => loadBert({ config: parseModelConfig(config), weights: new Map([['x', Tensor.zeros([1])]]) }), /neither "bert.embeddings.word_embeddings.weight" nor "embeddings.word_embeddings.weight"/);
  const model = loadBert({ config: parseModelConfig(config), weights });
  assert.throws(() => model.forward({ inputIds: Tensor.i32(new Array(65).fill(5), [1, 65]) }), /position id 64 is beyond the 64 learned positions/);
  assert.throws(() => model.forward({ inputIds: Tensor.i32([5, 6], [1, 2]), attentionMask: Tensor.i32([1, 1, 1], [1, 3]) }), /attention_mask must be \[1, 2\]/);
});

test('a sharded checkpoint (model.safetensors.index.json) loads to the same model as the single file', async () => {
  const run = await recorded(BERT_FIXTURE);
  const { config, weights } = await fixtureParts(BERT_FIXTURE);
  const dir = await temporaryFolder('sharded');
  const names = [...weights.keys()].sort();
  const shards = [names.slice(0, 10), names.slice(10)];
  const weightMap: Record<string, string> = {};
  for (const [i, shard] of shards.entries()) {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    await writeSafetensors(nodeFileSystem, join(dir, file), Object.fromEntries(shard.map((n) => [n, weights.get(n)!])));
    for (const n of shard) weightMap[n] = file;
  }
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  const model = await loadBertFolder(nodeFileSystem, dir);
  const logits = model.forward(inputsOf(run)).logits!;
  assert.ok(maxDiffAtValid(logits, run.expected.get('logits')!, run.inputs.attention_mask) < 1e-4);
  const empty = await temporaryFolder('empty');
  await writeFile(join(empty, 'config.json'), JSON.stringify(config));
  await assert.rejects(loadBertFolder(nodeFileSystem, empty), /no weights found: expected model.safetensors or model.safetensors.index.json/);
});
