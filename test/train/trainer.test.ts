import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { LlamaModel, parseLlamaConfig } from '../../src/models/llama.js';
import { loadBert } from '../../src/models/bert.js';
import { Weights } from '../../src/nn/weights.js';
import { linear } from '../../src/ops/index.js';
import { loadFolderGenerator } from '../../src/tasks/generate.js';
import { backward, noGrad } from '../../src/tensor/autograd.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { curveCsv, curveSvg } from '../../src/train/curve.js';
import { bertParameterShapes, gpt2ParameterShapes, initParameters, llamaParameterShapes, marianParameterShapes } from '../../src/train/init.js';
import { parseModelConfig, type BartConfig, type BertConfig } from '../../src/io/config.js';
import { parseGpt2Config } from '../../src/models/gpt2.js';
import { crossEntropy } from '../../src/train/losses.js';
import { AdamW, SGD, clipGradNorm, learningRate, trainableParameters } from '../../src/train/optim.js';
import { Random } from '../../src/train/random.js';
import { llamaConfigJson, saveHfFolder } from '../../src/train/save.js';
import { causalLmLoss, classificationLoss, maskTokens, shiftRight } from '../../src/train/tasks.js';
import { trainByteLevelBpe } from '../../src/train/tokenizer-trainers.js';
import { Trainer } from '../../src/train/trainer.js';
import { HF_TINY } from '../helpers/shared.js';
import { WeightError } from '../../src/errors.js';

function tinyLlama(seed = 5, vocab = 40): { params: Map<string, Tensor>; model: LlamaModel; json: Record<string, unknown> } {
  const json = llamaConfigJson({ vocabSize: vocab, hiddenSize: 16, intermediateSize: 32, layers: 1, heads: 2, kvHeads: 1, maxPositions: 64, bosTokenId: 0, eosTokenId: 0, tieWordEmbeddings: true, initializerRange: 0.02 });
  const config = parseLlamaConfig(json);
  const params = initParameters(llamaParameterShapes(config), { std: 0.1, seed });
  return { params, model: new LlamaModel(config, Weights.from(params)), json };
}

test('one AdamW step of a Linear + softmax cross-entropy matches the update derived by hand', () => {
  const w = Tensor.from([[0.5, -0.25], [0.1, 0.3], [-0.4, 0.2]]).requireGrad(); // [3 classes, 2 inputs]
  const b = Tensor.from([0.05, -0.1, 0]).requireGrad();
  const x = Tensor.from([[1, 2]]);
  const loss = crossEntropy(linear(x, w, b), Tensor.i32([2]));
  backward(loss);
  // By hand: z = W·x + b, p = softmax(z), dz = p − onehot(2), dW = dz·xᵀ.
  const z = [0.5 - 0.5 + 0.05, 0.1 + 0.6 - 0.1, -0.4 + 0.4 + 0];
  const e = z.map(Math.exp);
  const p = e.map((v) => v / (e[0] + e[1] + e[2]));
  const dz = [p[0], p[1], p[2] - 1];
  assert.ok(Math.abs(loss.f32()[0] + Math.log(p[2])) < 1e-6);
  const lr = 0.1;
  const wd = 0.01;
  const before = [...w.f32()];
  new AdamW(new Map([['w', w], ['b', b]]), { weightDecay: wd }).step(lr);
  // Step 1: m = 0.1·g, v = 0.001·g², m̂ = g, v̂ = g², so p ← p(1 − lr·λ) − lr·g/(|g| + ε).
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 2; j++) {
      const g = dz[i] * [1, 2][j];
      const expected = before[i * 2 + j] * (1 - lr * wd) - (lr * g) / (Math.abs(g) + 1e-8);
      assert.ok(Math.abs(w.f32()[i * 2 + j] - expected) < 1e-6, `w[${i}][${j}] ${w.f32()[i * 2 + j]} vs ${expected}`);
    }
  }
});

test('SGD with momentum follows torch.optim.SGD', () => {
  const p = Tensor.from([1, -2]).requireGrad();
  const sgd = new SGD(new Map([['p', p]]), { momentum: 0.9 });
  p.grad = Tensor.from([0.5, 1]);
  sgd.step(0.1);
  p.grad = Tensor.from([0.5, 1]);
  sgd.step(0.1);
  // buffer 0.5 then 0.9·0.5 + 0.5 = 0.95: 1 − 0.05 − 0.095.
  assert.ok(Math.abs(p.f32()[0] - 0.855) < 1e-6);
  assert.ok(Math.abs(p.f32()[1] - (-2 - 0.1 - 0.19)) < 1e-6);
});

test('learning-rate schedules: linear warm-up, then cosine or linear decay as HF', () => {
  const s = { peakLr: 1, warmupSteps: 10, totalSteps: 110 };
  assert.equal(learningRate(0, { ...s, kind: 'cosine' }), 0);
  assert.equal(learningRate(5, { ...s, kind: 'cosine' }), 0.5);
  assert.equal(learningRate(10, { ...s, kind: 'cosine' }), 1);
  assert.ok(Math.abs(learningRate(60, { ...s, kind: 'cosine' }) - 0.5) < 1e-12);
  assert.ok(Math.abs(learningRate(110, { ...s, kind: 'cosine' })) < 1e-12);
  assert.ok(Math.abs(learningRate(35, { ...s, kind: 'linear' }) - 0.75) < 1e-12);
});

test('clipping scales all gradients together to the global norm', () => {
  const a = Tensor.from([0]).requireGrad();
  const b = Tensor.from([0]).requireGrad();
  a.grad = Tensor.from([3]);
  b.grad = Tensor.from([4]);
  const norm = clipGradNorm(new Map([['a', a], ['b', b]]), 1);
  assert.equal(norm, 5);
  assert.ok(Math.abs(a.grad.f32()[0] - 0.6) < 1e-6 && Math.abs(b.grad.f32()[0] - 0.8) < 1e-6);
});

test('gradient accumulation over two micro-batches equals one batch of both', () => {
  const rows = [
    [1, 5, 7, 9, 2],
    [3, 4, 8, 8, 6],
  ];
  const grads = (accumulate: boolean): Float32Array[] => {
    const { params, model } = tinyLlama();
    const trainer = new Trainer(params, rows, causalLmLoss(model), {
      steps: 1,
      batchSize: accumulate ? 1 : 2,
      gradientAccumulation: accumulate ? 2 : 1,
      learningRate: 0,
      warmupSteps: 0,
      schedule: 'constant',
    });
    trainer.step();
    return [...params.values()].map((p) => p.grad!.f32());
  };
  const one = grads(false);
  const two = grads(true);
  one.forEach((g, i) => g.forEach((v, j) => assert.ok(Math.abs(v - two[i][j]) < 1e-6, `param ${i}[${j}]: ${v} vs ${two[i][j]}`)));
});

test('overfitting a tiny batch drives the causal-LM loss near zero', () => {
  const { params, model } = tinyLlama();
  const rows = [
    [3, 14, 15, 9, 26, 5, 35, 8],
    [2, 7, 18, 28, 18, 28, 4, 5],
  ];
  const trainer = new Trainer(params, rows, causalLmLoss(model), { steps: 150, batchSize: 2, learningRate: 3e-2, warmupSteps: 5, weightDecay: 0 });
  const first = trainer.step().loss;
  while (trainer.state.step < 150) trainer.step();
  const last = trainer.state.history.at(-1)!.loss;
  assert.ok(first > 3.5, `initial loss ${first} should be near ln(40) = 3.69`);
  assert.ok(last < 0.05, `final loss ${last}`);
});

test('a checkpoint resumes exactly: N steps straight equal N/2, save, load, N/2', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-ckpt-'));
  try {
    const rows = Array.from({ length: 7 }, (_, i) => Array.from({ length: 6 }, (_, j) => (i * 11 + j * 5) % 40));
    const options = { steps: 8, batchSize: 3, learningRate: 1e-2, warmupSteps: 2, maxGradNorm: 1, seed: 9 };
    const straight = tinyLlama();
    await new Trainer(straight.params, rows, causalLmLoss(straight.model), options).train();

    const first = tinyLlama();
    const a = new Trainer(first.params, rows, causalLmLoss(first.model), { ...options, steps: 8 });
    while (a.state.step < 4) a.step();
    await a.save(join(dir, 'checkpoint'));
    // A different starting point, fully overwritten by the checkpoint.
    const second = tinyLlama(99);
    const b = new Trainer(second.params, rows, causalLmLoss(second.model), options);
    await b.resume(join(dir, 'checkpoint'));
    assert.equal(b.state.step, 4);
    await b.train();
    for (const [name, p] of straight.params) assert.deepEqual(second.params.get(name)!.f32(), p.f32(), name);
    // A checkpoint of another model is refused by name, not loaded half-way.
    const other = tinyLlama(5, 41);
    const c = new Trainer(other.params, rows, causalLmLoss(other.model), options);
    await assert.rejects(c.resume(join(dir, 'checkpoint')), (e: unknown) => e instanceof WeightError && /"model\.embed_tokens\.weight" with 656 values, found 640 values/.test(e.message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a trained model saved as an HF folder reloads with the same logits, names and shapes as HF writes them', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-save-'));
  try {
    const bpe = trainByteLevelBpe(['In the beginning God created the heaven and the earth.'], { vocabSize: 270, specialTokens: ['<|endoftext|>'] });
    const { params, model, json } = tinyLlama(5, 270);
    const rows = [[5, 80, 90, 100, 33, 60]];
    const trainer = new Trainer(params, rows, causalLmLoss(model), { steps: 3, batchSize: 1, learningRate: 1e-2 });
    await trainer.train();
    await saveHfFolder(dir, { config: json, params, tokenizer: bpe.json, generationConfig: { bos_token_id: 0, eos_token_id: 0 } });
    const loaded = await loadFolderGenerator(nodeFileSystem, dir);
    const ids = Tensor.i32(rows[0], [1, 6]);
    const before = noGrad(() => model.forward(ids).logits.f32());
    assert.deepEqual(loaded.model.forward(ids).logits.f32(), before);
    assert.deepEqual(loaded.tokenizer.decode(loaded.tokenizer.encode('In the beginning')), 'In the beginning');
    // Tied lm_head is left out, as save_pretrained does; every name is one the hf-tiny Llama fixture uses.
    const saved = await readSafetensors(nodeFileSystem, join(dir, 'model.safetensors'));
    assert.equal(saved.has('lm_head.weight'), false);
    const fixture = await readSafetensors(nodeFileSystem, join(HF_TINY, 'llama', 'model.safetensors'));
    for (const name of saved.keys()) assert.ok(fixture.has(name.replace('layers.0', 'layers.1')) || fixture.has(name), name);
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const fixtureConfig = JSON.parse(await readFile(join(HF_TINY, 'llama', 'config.json'), 'utf8')) as Record<string, unknown>;
    // The fixture sets a pad token; HF leaves pad_token_id out when it is None, as here.
    assert.deepEqual(Object.keys(config).sort(), Object.keys(fixtureConfig).filter((k) => k !== 'pad_token_id').sort());
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('fresh Llama, GPT-2, BERT MLM and Marian parameters have exactly the names and shapes of the HF checkpoints', async () => {
  for (const [family, shapesOf] of [
    ['llama', (json: Record<string, unknown>) => llamaParameterShapes(parseLlamaConfig(json))],
    ['gpt2', (json: Record<string, unknown>) => gpt2ParameterShapes(parseGpt2Config(json))],
    ['bert', (json: Record<string, unknown>) => bertParameterShapes(parseModelConfig(json) as BertConfig, { prefix: 'bert', mlmHead: true })],
    ['marian', (json: Record<string, unknown>) => marianParameterShapes(parseModelConfig(json) as BartConfig)],
  ] as const) {
    const fixtureConfig = JSON.parse(await readFile(join(HF_TINY, family, 'config.json'), 'utf8')) as Record<string, unknown>;
    const shapes = shapesOf(fixtureConfig);
    const fixture = await readSafetensors(nodeFileSystem, join(HF_TINY, family, 'model.safetensors'));
    assert.deepEqual([...shapes.keys()].sort(), [...fixture.keys()].sort(), family);
    for (const [name, shape] of shapes) assert.deepEqual([...shape], [...fixture.get(name)!.shape], name);
  }
});

test('MLM masking picks 15% of non-special tokens and replaces 80/10/10, seeded', () => {
  const rows = [Array.from({ length: 20000 }, (_, i) => 5 + (i % 50))];
  rows[0][0] = 1;
  const o = { maskTokenId: 4, vocabSize: 60, specialIds: new Set([1]) };
  const { inputs, labels } = maskTokens(rows, new Random(3), o);
  const chosen = labels[0].flatMap((l, i) => (l === -100 ? [] : [i]));
  assert.equal(labels[0][0], -100);
  assert.ok(Math.abs(chosen.length / 20000 - 0.15) < 0.01, `${chosen.length} chosen`);
  const masked = chosen.filter((i) => inputs[0][i] === 4).length / chosen.length;
  const kept = chosen.filter((i) => inputs[0][i] === rows[0][i]).length / chosen.length;
  assert.ok(Math.abs(masked - 0.8) < 0.03, `masked ${masked}`);
  assert.ok(kept > 0.08 && kept < 0.13, `kept ${kept}`);
  assert.deepEqual(maskTokens(rows, new Random(3), o), { inputs, labels });
});

test('shift_right puts the decoder start first and turns −100 into padding', () => {
  assert.deepEqual(shiftRight([7, 8, 1, -100], 0, 0), [0, 7, 8, 1]);
  assert.deepEqual(shiftRight([7, -100, 1], 2, 5), [2, 7, 5]);
});

test('the loss curve is written as CSV numbers and an SVG line', () => {
  const points = [
    { step: 1, loss: 4, lr: 0.1 },
    { step: 2, loss: 2, lr: 0.1 },
  ];
  assert.equal(curveCsv(points), 'step,loss,lr\n1,4,0.1\n2,2,0.1\n');
  assert.match(curveSvg(points), /<path d="M[\d.]+,[\d.]+ L[\d.]+,[\d.]+"/);
});

test('fine-tuning a pretrained BERT classifier with its embeddings and first layer frozen', async () => {
  const dir = join(HF_TINY, 'bert', 'classification');
  const json = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const loaded = await readSafetensors(nodeFileSystem, join(dir, 'model.safetensors'));
  const params = new Map([...loaded].map(([name, t]) => [name, t.to('f32').clone().requireGrad()]));
  const trainable = trainableParameters(params, (name) => name.includes('embeddings') || name.includes('layer.0.'));
  const model = loadBert({ config: parseModelConfig(json), weights: params });
  const frozenBefore = params.get('bert.encoder.layer.0.attention.self.query.weight')!.f32().slice();
  // Three toy classes told apart by which id the sentence holds.
  const examples = Array.from({ length: 24 }, (_, i) => ({ ids: [2, 10 + (i % 7), 40 + (i % 3), 3], label: i % 3 }));
  const trainer = new Trainer(trainable, examples, classificationLoss(model, 0), { steps: 60, batchSize: 8, learningRate: 1e-2, warmupSteps: 5 });
  const first = trainer.step().loss;
  while (trainer.state.step < 60) trainer.step();
  const last = trainer.state.history.at(-1)!.loss;
  assert.ok(last < first / 4, `loss ${first} → ${last}`);
  assert.deepEqual(params.get('bert.encoder.layer.0.attention.self.query.weight')!.f32(), frozenBefore);
  assert.equal(params.get('bert.embeddings.word_embeddings.weight')!.grad, undefined);
  assert.ok(trainable.has('classifier.weight') && !trainable.has('bert.encoder.layer.0.output.dense.weight'));
});

test('the progress line shows step, loss and tokens/s on a terminal and nothing otherwise', async () => {
  const rows = [[1, 2, 3, 4]];
  for (const isTTY of [true, false]) {
    let written = '';
    const { params, model } = tinyLlama();
    const progress = { isTTY, write: (text: string) => (written += text) };
    await new Trainer(params, rows, causalLmLoss(model), { steps: 2, batchSize: 1, learningRate: 1e-3, progress }).train();
    if (isTTY) assert.match(written, /\r.* 2\/2 {2}loss \d+\.\d{4} {2}lr .* \d+ tokens\/s \n$/);
    else assert.equal(written, '');
  }
});
