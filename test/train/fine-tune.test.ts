import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { runTrain, type TrainArgs } from '../../src/cli/commands/train.js';
import { ConfigError, FormatError, UnsupportedError } from '../../src/errors.js';
import { parseModelConfig } from '../../src/io/config.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { loadBert, loadBertFolder, readFolderWeights } from '../../src/models/bert.js';
import { classify } from '../../src/tasks/classify.js';
import { embed, readSentenceEncoderConfig } from '../../src/tasks/embed.js';
import { loadFolderTokenizer } from '../../src/tasks/encoder-folder.js';
import { loadSeq2Seq, translate } from '../../src/tasks/translate.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { classificationSetup, labelSet, maskedLmSetup, readJsonLines } from '../../src/train/fine-tune.js';
import { HF_TINY, REPO } from '../helpers/shared.js';
import { sink } from '../helpers/streams.js';


async function checkpoint(dir: string): Promise<{ raw: Record<string, unknown>; file: string; tensors: Map<string, Tensor> }> {
  const file = join(dir, 'config.json');
  return { raw: JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>, file, tensors: (await readFolderWeights(nodeFileSystem, dir)).weights };
}

const IDS = Tensor.i32([2, 17, 33, 90, 5, 3, 2, 44, 61, 3, 0, 0], [2, 6]);
const MASK = Tensor.i32([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0], [2, 6]);

function maxDifference(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  const x = a.f32();
  const y = b.f32();
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
}

describe('fine-tuning setups', () => {
  test('a masked-LM folder becomes a classifier: the encoder kept, the pooler and classifier new, the MLM head dropped', async () => {
    const source = await checkpoint(join(HF_TINY, 'bert'));
    const setup = classificationSetup(source, ['spam', 'ham', 'eggs', 'ham'], { seed: 3 });
    assert.deepEqual(setup.newlyInitialized, ['bert.pooler.dense.weight', 'bert.pooler.dense.bias', 'classifier.weight', 'classifier.bias']);
    assert.deepEqual(setup.config.architectures, ['BertForSequenceClassification']);
    assert.deepEqual(setup.config.id2label, { 0: 'eggs', 1: 'ham', 2: 'spam' });
    assert.deepEqual(setup.config.label2id, { eggs: 0, ham: 1, spam: 2 });
    assert.equal(setup.labels.indexOf('spam'), 2);
    assert.ok(![...setup.params.keys()].some((name) => name.startsWith('cls.')), 'the MLM head is not part of a classifier');
    assert.deepEqual(setup.params.get('classifier.weight')?.shape, [3, 32]);
    const bias = setup.params.get('classifier.bias')!.f32();
    assert.ok(bias.every((v) => v === 0), 'biases start at zero (HF _init_weights)');
    const weight = setup.params.get('classifier.weight')!.f32();
    const std = Math.sqrt(weight.reduce((s, v) => s + v * v, 0) / weight.length);
    assert.ok(std > 0.2 && std < 0.4, `classifier weights drawn from N(0, initializer_range²), 0.3 in this config: std ${std}`);

    const original = loadBert({ config: parseModelConfig(source.raw), weights: source.tensors }, { head: 'base' });
    const expected = original.forward({ inputIds: IDS, attentionMask: MASK }).lastHiddenState;
    const out = setup.model.forward({ inputIds: IDS, attentionMask: MASK });
    assert.ok(maxDifference(out.lastHiddenState, expected) === 0, 'the encoder is the checkpoint');
    assert.deepEqual(out.logits?.shape, [2, 3]);
  });

  test('a classifier keeps its head when the labels are its classes, and gives the checkpoint\'s logits', async () => {
    const source = await checkpoint(join(HF_TINY, 'bert', 'classification'));
    const setup = classificationSetup(source, ['LABEL_2', 0, 'LABEL_1'], { seed: 1 });
    assert.deepEqual(setup.newlyInitialized, []);
    assert.equal(setup.labels.indexOf('LABEL_2'), 2);
    assert.equal(setup.labels.indexOf(1), 1);
    const original = loadBert({ config: parseModelConfig(source.raw), weights: source.tensors });
    const expected = original.forward({ inputIds: IDS, attentionMask: MASK }).logits!;
    assert.equal(maxDifference(setup.model.forward({ inputIds: IDS, attentionMask: MASK }).logits!, expected), 0);

    assert.throws(() => classificationSetup(source, ['LABEL_1', 'positive'], { seed: 1 }), (e: unknown) => e instanceof ConfigError && /"positive" is not one of the head's classes.*--new-head/.test(e.message));
    assert.throws(() => classificationSetup(source, [3], { seed: 1 }), ConfigError);
    const fresh = classificationSetup(source, ['positive', 'negative'], { seed: 1, newHead: true });
    assert.deepEqual(fresh.newlyInitialized, ['classifier.weight', 'classifier.bias']);
    assert.deepEqual(fresh.config.id2label, { 0: 'negative', 1: 'positive' });
  });

  test('label sets: integer labels are class indices, names are sorted, mixtures and a single class are refused', async () => {
    const ints = labelSet([0, 3, 1], undefined, 'f');
    assert.deepEqual(ints.id2label, { 0: 'LABEL_0', 1: 'LABEL_1', 2: 'LABEL_2', 3: 'LABEL_3' });
    assert.equal(ints.indexOf(3), 3);
    assert.throws(() => labelSet(['a', 1], undefined, 'f'), ConfigError);
    const source = await checkpoint(join(HF_TINY, 'bert'));
    assert.throws(() => classificationSetup(source, ['only', 'only'], { seed: 1 }), (e: unknown) => e instanceof ConfigError && /at least two/.test(e.message));
  });

  test('a bare encoder (sentence-transformers folder) gets a masked-LM head under the base-model prefix', async () => {
    const source = await checkpoint(join(REPO, 'models', 'kjv-bert'));
    assert.ok(source.tensors.has('embeddings.word_embeddings.weight'), 'kjv-bert is saved as a bare BertModel');
    const setup = maskedLmSetup(source, 1);
    assert.ok(setup.params.has('bert.embeddings.word_embeddings.weight'));
    assert.ok(![...setup.params.keys()].some((name) => name.includes('pooler')), 'BertForMaskedLM has no pooler');
    assert.deepEqual(setup.newlyInitialized, [
      'cls.predictions.transform.dense.weight',
      'cls.predictions.transform.dense.bias',
      'cls.predictions.transform.LayerNorm.weight',
      'cls.predictions.transform.LayerNorm.bias',
      'cls.predictions.bias',
    ]);
    assert.deepEqual(setup.model.forward({ inputIds: IDS, attentionMask: MASK }).logits?.shape, [2, 6, 2048]);
  });

  test('a folder of another family is refused with its model_type named', async () => {
    const source = await checkpoint(join(HF_TINY, 'gpt2'));
    assert.throws(() => classificationSetup(source, ['a', 'b'], { seed: 1 }), (e: unknown) => e instanceof UnsupportedError && /model_type "gpt2"/.test(e.message));
  });

  test('JSON lines: errors name the file and line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'glassformer-jsonl-'));
    try {
      const file = join(dir, 'data.jsonl');
      await writeFile(file, '{"text": "a", "label": 1}\n\n{"text": oops}\n');
      await assert.rejects(readJsonLines(nodeFileSystem, file), (e: unknown) => e instanceof FormatError && /data\.jsonl.*line 3 is not JSON/.test(e.message));
      await writeFile(file, '[1, 2]\n');
      await assert.rejects(readJsonLines(nodeFileSystem, file), (e: unknown) => e instanceof FormatError && /line 1 must be a JSON object/.test(e.message));
      await writeFile(file, '\n \n');
      await assert.rejects(readJsonLines(nodeFileSystem, file), (e: unknown) => e instanceof FormatError && /no examples/.test(e.message));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

const TRAINING: Omit<TrainArgs, 'out'> = {
  blockSize: 32,
  steps: 30,
  batchSize: 8,
  gradientAccumulation: 1,
  lr: 1e-3,
  warmup: 3,
  schedule: 'cosine',
  weightDecay: 0,
  seed: 1,
};

const DIVINE = ['the lord is my shepherd', 'god so loved the world', 'praise the lord in his temple', 'the spirit of god moved', 'bless the lord o my soul', 'god is our refuge and strength'];
const EARTHLY = ['and the waters covered the earth', 'the king went out to battle', 'the sheep were in the field', 'he came to the city at night', 'they sat down to eat bread', 'the river ran through the land'];

interface Result {
  task: string;
  model: string;
  steps: number;
  eval: { before: { loss: number; accuracy?: number }; after: { loss: number; accuracy?: number } };
  labels?: Record<string, string>;
}

describe('glassformer train --task', () => {
  test('classification: a shipped encoder learns two classes, and the saved folder classifies as the run reported', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'glassformer-ft-cls-'));
    try {
      const data = join(dir, 'train.jsonl');
      const lines = [...DIVINE.map((text) => ({ text, label: 'divine' })), ...EARTHLY.map((text) => ({ text, label: 'earthly' }))];
      await writeFile(data, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
      const out = sink();
      const err = sink();
      const code = await runTrain({ ...TRAINING, task: 'classification', model: join(REPO, 'models', 'kjv-bert'), data, out: join(dir, 'run') }, { stdout: out.stream, stderr: err.stream });
      assert.equal(code, 0, err.text());
      const result = JSON.parse(out.text()) as Result;
      assert.equal(result.steps, 30);
      assert.deepEqual(result.labels, { 0: 'divine', 1: 'earthly' });
      assert.ok(result.eval.after.loss < result.eval.before.loss / 4, `loss ${result.eval.before.loss} → ${result.eval.after.loss}`);
      assert.ok(result.eval.after.accuracy! > result.eval.before.accuracy!, JSON.stringify(result.eval));

      const model = await loadBertFolder(nodeFileSystem, result.model);
      const tokenizer = await loadFolderTokenizer(nodeFileSystem, result.model);
      let right = 0;
      for (const l of lines) if (classify(model, tokenizer, l.text)[0].label === l.label) right++;
      assert.equal(right / lines.length, result.eval.after.accuracy, 'the saved folder scores what the run reported');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('seq2seq: the shipped Marian model fine-tuned on new pairs, saved, reloaded and translating', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'glassformer-ft-s2s-'));
    try {
      const data = join(dir, 'pairs.jsonl');
      const pairs = [['twenty one', '21'], ['forty two', '42'], ['one hundred', '100'], ['seven', '7'], ['ninety nine', '99'], ['thirteen', '13']];
      await writeFile(data, pairs.map(([source, target]) => JSON.stringify({ source, target })).join('\n'));
      const out = sink();
      const err = sink();
      const code = await runTrain({ ...TRAINING, steps: 10, task: 'seq2seq', model: join(REPO, 'models', 'numbers-marian'), data, out: join(dir, 'run') }, { stdout: out.stream, stderr: err.stream });
      assert.equal(code, 0, err.text());
      const result = JSON.parse(out.text()) as Result;
      assert.ok(result.eval.after.loss < result.eval.before.loss, JSON.stringify(result.eval));
      const pipeline = await loadSeq2Seq(nodeFileSystem, result.model);
      assert.deepEqual(await translate(pipeline, pairs.map(([source]) => source)), pairs.map(([, target]) => target));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('masked-lm: held-out loss falls and the saved folder loads as BertForMaskedLM', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'glassformer-ft-mlm-'));
    try {
      const text = join(dir, 'verses.txt');
      await writeFile(text, [...DIVINE, ...EARTHLY].join('\n'));
      const out = sink();
      const err = sink();
      const code = await runTrain({ ...TRAINING, steps: 15, lr: 2e-3, task: 'masked-lm', model: join(REPO, 'models', 'kjv-bert'), text, out: join(dir, 'run') }, { stdout: out.stream, stderr: err.stream });
      assert.equal(code, 0, err.text());
      const result = JSON.parse(out.text()) as Result;
      assert.ok(result.eval.after.loss < result.eval.before.loss, JSON.stringify(result.eval));
      const model = await loadBertFolder(nodeFileSystem, result.model);
      assert.equal(model.head, 'masked-lm');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('sentence-embedding: in-batch negatives on question/answer pairs, and the saved sentence-transformers folder embeds as the run reported', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'glassformer-ft-se-'));
    try {
      const data = join(dir, 'pairs.jsonl');
      const pairs = [
        ['who led israel out of egypt', 'moses led the people out of egypt'],
        ['who built the ark', 'noah built an ark of gopher wood'],
        ['who killed goliath', 'david slew the giant with a stone'],
        ['where was jesus born', 'he was born in bethlehem of judaea'],
        ['who was sold into egypt', 'joseph was sold by his brethren'],
        ['who was swallowed by a fish', 'jonah was in the belly of the fish'],
      ];
      await writeFile(data, pairs.map(([anchor, positive]) => JSON.stringify({ anchor, positive })).join('\n'));
      const out = sink();
      const err = sink();
      const code = await runTrain({ ...TRAINING, steps: 15, lr: 5e-4, task: 'sentence-embedding', model: join(REPO, 'models', 'kjv-bert'), data, out: join(dir, 'run') }, { stdout: out.stream, stderr: err.stream });
      assert.equal(code, 0, err.text());
      const result = JSON.parse(out.text()) as Result & { eval: { before: { recallAt1: number }; after: { recallAt1: number } } };
      assert.ok(result.eval.after.loss < result.eval.before.loss, JSON.stringify(result.eval));
      assert.ok(result.eval.after.recallAt1 >= result.eval.before.recallAt1, JSON.stringify(result.eval));

      const model = await loadBertFolder(nodeFileSystem, result.model);
      const tokenizer = await loadFolderTokenizer(nodeFileSystem, result.model);
      const settings = await readSentenceEncoderConfig(nodeFileSystem, result.model);
      assert.deepEqual(settings.pooling, ['mean']);
      assert.equal(settings.normalize, true);
      const anchors = embed(model, tokenizer, pairs.map(([a]) => a), { settings });
      const positives = embed(model, tokenizer, pairs.map(([, p]) => p), { settings });
      const cos = (a: Float32Array, b: Float32Array): number => a.reduce((s, v, k) => s + v * b[k], 0);
      const hits = anchors.filter((a, i) => positives.every((p, j) => j === i || cos(a, p) < cos(a, positives[i]))).length;
      assert.equal(hits / pairs.length, result.eval.after.recallAt1, 'the saved folder ranks as the run reported');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('flags that do not fit the task are refused with the flag named', async () => {
    const cases: [Partial<TrainArgs>, RegExp][] = [
      [{ task: 'classification', model: join(REPO, 'models', 'kjv-bert') }, /--task classification needs --data/],
      [{ task: 'classification', model: join(REPO, 'models', 'kjv-bert'), data: 'x.jsonl', text: 'y.txt' }, /--text is for causal-lm and masked-lm/],
      [{ task: 'masked-lm', text: 'y.txt' }, /--task masked-lm needs --model/],
      [{ task: 'seq2seq', model: 'm', data: 'x', hiddenSize: 64 }, /--hidden-size: only for training a causal LM from scratch/],
      [{ task: 'masked-lm', model: 'm', text: 'y', newHead: true }, /--new-head is for --task classification/],
      [{ text: 'y', evalData: 'z' }, /--eval-data: not offered for causal-lm/],
      [{ task: 'sentence-embedding', model: join(HF_TINY, 'bert') }, /--task sentence-embedding needs --data/],
    ];
    for (const [args, message] of cases) {
      const err = sink();
      assert.equal(await runTrain({ ...TRAINING, out: join(tmpdir(), 'unused'), ...args }, { stdout: sink().stream, stderr: err.stream }), 3, err.text());
      assert.match(err.text(), message);
    }
  });
});
