import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { BertForMaskedLM, loadBert } from '../../src/models/bert.js';
import { LlamaModel, parseLlamaConfig } from '../../src/models/llama.js';
import { T5Model, parseT5Config } from '../../src/models/t5.js';
import { VanillaTransformer } from '../../src/models/vanilla.js';
import type { VanillaTransformerConfig } from '../../src/io/config.js';
import { seq2seqLoss } from '../../src/train/tasks.js';
import { attend } from '../../src/nn/attention.js';
import { Weights } from '../../src/nn/weights.js';
import { parseModelConfig } from '../../src/io/config.js';
import {
  add,
  causalMask,
  div,
  dropout,
  embedding,
  gelu,
  geluTanh,
  layerNorm,
  linear,
  logSoftmax,
  map,
  matmul,
  mul,
  normalizeL2,
  relu,
  repeatKv,
  rmsNorm,
  rotary,
  scale,
  silu,
  softmax,
  sub,
  tanh,
} from '../../src/ops/index.js';
import { RotaryEmbedding } from '../../src/nn/rotary.js';
import { backward, noGrad } from '../../src/tensor/autograd.js';
import { Tensor, concat, gather, stack } from '../../src/tensor/tensor.js';
import { crossEntropy, mseLoss } from '../../src/train/losses.js';
import { Random } from '../../src/train/random.js';
import { HF_TINY } from '../helpers/shared.js';
import { gradCheck, randn } from './gradcheck.js';

const r = new Random(1);
const param = (shape: number[], s = 1): Tensor => randn(shape, r, s).requireGrad();

test('matmul gradients: plain, transposed B, batched, and a batch that broadcasts', () => {
  gradCheck((a, b) => matmul(a, b), [param([3, 4]), param([4, 5])]);
  gradCheck((a, b) => matmul(a, b, { transposeB: true }), [param([2, 3, 4]), param([5, 4])]);
  gradCheck((a, b) => matmul(a, b), [param([2, 3, 3, 4]), param([2, 3, 4, 2])]);
  gradCheck((a, b) => matmul(a, b, { transposeB: true }), [param([2, 2, 3, 4]), param([1, 2, 5, 4])]);
  gradCheck((a, b) => matmul(a, b), [param([2, 3, 4]), param([4, 2])]);
});

test('linear gradients reach input, weight and bias', () => {
  gradCheck((x, w, b) => linear(x, w, b), [param([2, 3, 4]), param([5, 4]), param([5])]);
});

test('broadcasting binary ops reduce their gradients over the broadcast axes', () => {
  gradCheck(add, [param([2, 3, 4]), param([4])]);
  gradCheck(sub, [param([2, 1, 4]), param([3, 1])]);
  gradCheck(mul, [param([2, 3, 4]), param([2, 1, 4])]);
  const positive = randn([3, 4], r).f32().map((v) => 1.5 + Math.abs(v));
  gradCheck(div, [param([2, 3, 4]), new Tensor('f32', [3, 4], positive).requireGrad()]);
  gradCheck((x) => scale(x, -0.7), [param([3, 5])]);
});

test('activation gradients: gelu (erf), gelu tanh, silu, relu, tanh', () => {
  for (const f of [gelu, geluTanh, silu, tanh]) gradCheck(f, [param([4, 6], 2)]);
  // Keep relu's inputs away from the kink at 0, where no derivative exists.
  const x = new Tensor('f32', [12], Float32Array.from(randn([12], r).f32(), (v) => v + Math.sign(v) * 0.1)).requireGrad();
  gradCheck(relu, [x]);
});

test('L2 normalisation gradient', () => {
  gradCheck((x) => normalizeL2(x), [param([3, 5])]);
});

test('softmax and logSoftmax gradients', () => {
  gradCheck(softmax, [param([3, 7], 2)]);
  gradCheck(logSoftmax, [param([3, 7], 2)]);
});

test('layerNorm and rmsNorm gradients reach input and gains', () => {
  gradCheck((x, g, b) => layerNorm(x, g, b, 1e-5), [param([2, 3, 8]), param([8]), param([8])]);
  gradCheck((x, g) => layerNorm(x, g, undefined, 1e-5), [param([4, 8]), param([8])]);
  gradCheck((x, g) => rmsNorm(x, g, 1e-6), [param([2, 3, 8]), param([8])]);
});

test('embedding scatters gradients back into repeated rows', () => {
  const ids = Tensor.i32([1, 3, 1, 0, 3, 3], [2, 3]);
  gradCheck((w) => embedding(w, ids), [param([5, 4])]);
  const w = param([5, 4]);
  backward(embedding(w, ids), Tensor.full([2, 3, 4], 1));
  assert.deepEqual(Array.from(w.grad!.f32().filter((_, i) => i % 4 === 0)), [1, 2, 0, 3, 0]);
});

test('attention with a causal mask: gradients to q, k and v', () => {
  const mask = causalMask(4, 4);
  gradCheck((q, k, v) => attend(q, k, v, { scale: 0.5, mask }).z, [param([1, 2, 4, 3]), param([1, 2, 4, 3]), param([1, 2, 4, 3])]);
});

test('rotary and repeatKv gradients', () => {
  const rope = new RotaryEmbedding(6, 10000, null, 32);
  const { cos, sin } = rope.cosSin(Tensor.i32([0, 1, 2, 5, 3, 4, 7, 9], [2, 4]));
  gradCheck((x) => rotary(x, cos, sin), [param([2, 3, 4, 6])]);
  gradCheck((x) => repeatKv(x, 3), [param([2, 2, 3, 4])]);
});

test('dropout passes gradients through the kept elements, scaled by 1/(1 − p)', () => {
  const x = param([200]);
  const y = dropout(x, 0.25, new Random(3));
  const kept = Array.from(y.f32()).filter((v) => v !== 0).length;
  assert.ok(kept > 120 && kept < 180, `kept ${kept} of 200`);
  gradCheck((t) => dropout(t, 0.25, new Random(3)), [x]);
  x.grad = undefined;
  const again = dropout(x, 0.25, new Random(3));
  backward(again, Tensor.full([200], 1));
  const g = x.grad!.f32();
  for (let i = 0; i < 200; i++) assert.equal(g[i], again.f32()[i] === 0 ? 0 : Math.fround(1 / 0.75));
});

test('Tensor method gradients: reshape, permute, transpose, slice, at, concat, stack, gather', () => {
  gradCheck((x) => x.reshape([4, 6]).permute([1, 0]), [param([2, 3, 4])]);
  gradCheck((x) => x.transpose(0, 2).slice(1, 1, 3), [param([2, 3, 4])]);
  gradCheck((x) => x.at(1), [param([3, 4])]);
  gradCheck((a, b) => concat([a, b], 1), [param([2, 3, 2]), param([2, 1, 2])]);
  gradCheck((a, b) => stack([a, b]), [param([2, 3]), param([2, 3])]);
  gradCheck((x) => gather(x, 1, [2, 0, 2]), [param([2, 3, 2])]);
});

test('cross-entropy with ignore index and label smoothing, and MSE', () => {
  const labels = Tensor.i32([2, -100, 0, 4, 1, -100], [2, 3]);
  gradCheck((x) => crossEntropy(x, labels), [param([2, 3, 5], 2)]);
  gradCheck((x) => crossEntropy(x, labels, { labelSmoothing: 0.1 }), [param([2, 3, 5], 2)]);
  gradCheck((p, t) => mseLoss(p, t), [param([3, 4]), param([3, 4])]);
  // Against the formula: −log softmax at the label, averaged over counted positions.
  const logits = Tensor.from([[1, 2, 3], [0, 0, 0]]);
  const expected = (-Math.log(Math.exp(3) / (Math.exp(1) + Math.exp(2) + Math.exp(3))) + Math.log(3)) / 2;
  assert.ok(Math.abs(crossEntropy(logits, Tensor.i32([2, 1])).f32()[0] - expected) < 1e-6);
  const smoothed = 0.9 * expected + 0.1 * ((6 - 3 * Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3))) / -3 + Math.log(3)) / 2;
  assert.ok(Math.abs(crossEntropy(logits, Tensor.i32([2, 1]), { labelSmoothing: 0.1 }).f32()[0] - smoothed) < 1e-5);
  assert.equal(crossEntropy(logits, Tensor.i32([-100, -100])).f32()[0], 0);
});

test('without a tensor that requires gradients, ops record nothing', () => {
  const a = randn([3, 4], r);
  const b = randn([4, 4], r);
  const y = softmax(add(matmul(a, b), a));
  assert.equal(y.requiresGrad, false);
  assert.equal(y.gradNode, undefined);
  const p = param([4, 4]);
  assert.equal(noGrad(() => matmul(a, p)).gradNode, undefined);
  assert.notEqual(matmul(a, p).gradNode, undefined);
  assert.throws(() => map(p, (v) => v * 2), /no gradient rule/);
});

/** The fixture's weights cut to one layer, every tensor a parameter. */
async function oneLayer(family: string, layerPattern: RegExp): Promise<Map<string, Tensor>> {
  const all = await readSafetensors(nodeFileSystem, join(HF_TINY, family, 'model.safetensors'));
  const kept = new Map<string, Tensor>();
  for (const [name, t] of all) if (!layerPattern.test(name)) kept.set(name, t.to('f32').clone().requireGrad());
  return kept;
}

/** Finite differences on a few sampled elements of every parameter of a whole model. */
function checkModel(params: Map<string, Tensor>, loss: () => Tensor): void {
  const list = [...params.values()];
  gradCheck(() => loss(), list, { samples: 3, h: 5e-3, atol: 5e-4, rtol: 3e-2 });
}

test('a whole 1-layer Llama: every parameter gradient of the LM loss matches finite differences', async () => {
  const params = await oneLayer('llama', /layers\.[1-9]/);
  const config = parseLlamaConfig({ ...JSON.parse(await nodeFileSystem.readText(join(HF_TINY, 'llama', 'config.json'))), num_hidden_layers: 1 });
  const model = new LlamaModel(config, Weights.from(params));
  const ids = Tensor.i32([5, 17, 3, 99, 42, 7, 8, 1], [2, 4]);
  const labels = Tensor.i32([17, 3, 99, -100, 7, 8, 1, 2], [2, 4]);
  checkModel(params, () => crossEntropy(model.forward(ids).logits, labels));
});

test('a whole 1-layer BERT with its MLM head: every parameter gradient matches finite differences', async () => {
  const params = await oneLayer('bert', /layer\.[1-9]/);
  const json = { ...JSON.parse(await nodeFileSystem.readText(join(HF_TINY, 'bert', 'config.json'))), num_hidden_layers: 1 };
  const model = loadBert({ config: parseModelConfig(json), weights: params });
  assert.ok(model instanceof BertForMaskedLM);
  const inputIds = Tensor.i32([2, 10, 4, 11, 3, 2, 12, 13, 3, 0], [2, 5]);
  const attentionMask = Tensor.i32([1, 1, 1, 1, 1, 1, 1, 1, 1, 0], [2, 5]);
  const labels = Tensor.i32([-100, -100, 20, -100, -100, -100, 30, -100, -100, -100], [2, 5]);
  checkModel(params, () => crossEntropy(model.forward({ inputIds, attentionMask }).logits!, labels));
});

test('a whole 1-layer T5 with teacher forcing: every parameter gradient (relative position bias included) matches finite differences', async () => {
  const params = await oneLayer('t5', /block\.[1-9]/);
  const json = { ...JSON.parse(await nodeFileSystem.readText(join(HF_TINY, 't5', 'config.json'))), num_layers: 1, num_decoder_layers: 1 };
  const model = new T5Model(parseT5Config(json), Weights.from(params));
  const loss = seq2seqLoss(model, { padId: 0, decoderStartTokenId: 0 });
  const batch = [
    { source: [5, 9, 22, 1], target: [7, 31, 1] },
    { source: [40, 3, 1], target: [8, 1] },
  ];
  checkModel(params, () => loss(batch).loss);
  assert.ok(params.get('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight')!.grad!.f32().some((v) => v !== 0));
});

test('a whole 1-layer 2017 Transformer: gradients reach the fused in_proj weights, and training updates what the forward pass reads', async () => {
  const params = await oneLayer('vanilla', /layers\.[1-9]/);
  const json = { ...JSON.parse(await nodeFileSystem.readText(join(HF_TINY, 'vanilla', 'config.json'))), num_encoder_layers: 1, num_decoder_layers: 1 };
  params.get('pos_encoding')!.requireGrad(false);
  const model = new VanillaTransformer(parseModelConfig(json) as VanillaTransformerConfig, Weights.from(params));
  const loss = seq2seqLoss({ forward: (ids, mask, dec) => ({ decoder: { logits: model.forward(ids, mask, dec).logits } }) }, { padId: 0, decoderStartTokenId: 1 });
  const batch = [
    { source: [5, 9, 22, 2], target: [7, 31, 2] },
    { source: [40, 3, 2], target: [8, 2] },
  ];
  checkModel(new Map([...params].filter(([, t]) => t.requiresGrad)), () => loss(batch).loss);
  const inProj = params.get('transformer.encoder.layers.0.self_attn.in_proj_weight')!;
  const before = noGrad(() => loss(batch).loss.f32()[0]);
  (inProj.data as Float32Array).fill(0);
  assert.notEqual(noGrad(() => loss(batch).loss.f32()[0]), before);
});
