import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runTrain, trainCommand, type TrainArgs } from '../../src/cli/commands/train.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { loadFolderGenerator } from '../../src/tasks/generate.js';
import { sink } from '../helpers/streams.js';


const TEXT = [
  'In the beginning God created the heaven and the earth.',
  'And the earth was without form, and void; and darkness was upon the face of the deep.',
  'And God said, Let there be light: and there was light.',
].join('\n');

const BASE: TrainArgs = {
  text: '',
  out: '',
  vocabSize: 300,
  hiddenSize: 32,
  layers: 1,
  heads: 2,
  intermediateSize: 64,
  blockSize: 16,
  steps: 40,
  batchSize: 4,
  gradientAccumulation: 1,
  lr: 1e-2,
  warmup: 5,
  schedule: 'cosine',
  weightDecay: 0,
  seed: 1,
};

test('glassformer train: from scratch on a text file, then fine-tuning the saved folder', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-train-cli-'));
  try {
    const text = join(dir, 'corpus.txt');
    await writeFile(text, TEXT);
    const out = sink();
    const err = sink();
    const code = await runTrain({ ...BASE, text, out: join(dir, 'run') }, { stdout: out.stream, stderr: err.stream });
    assert.equal(code, 0, err.text());
    const result = JSON.parse(out.text()) as { model: string; steps: number; finalLoss: number };
    assert.equal(result.steps, 40);
    const curve = (await readFile(join(dir, 'run', 'loss.csv'), 'utf8')).trim().split('\n').slice(1).map((l) => Number(l.split(',')[1]));
    assert.equal(curve.length, 40);
    assert.ok(curve[39] < curve[0] / 2, `loss ${curve[0]} → ${curve[39]}`);
    const generator = await loadFolderGenerator(nodeFileSystem, result.model);
    assert.equal(generator.tokenizer.decode(generator.tokenizer.encode('And God said')), 'And God said');

    const tuned = sink();
    const { vocabSize: _v, hiddenSize: _h, layers: _l, heads: _n, intermediateSize: _i, ...training } = BASE;
    const refused = sink();
    assert.equal(await runTrain({ ...BASE, text, out: join(dir, 'tuned'), model: result.model }, { stdout: tuned.stream, stderr: refused.stream }), 3);
    assert.match(refused.text(), /--vocab-size, --hidden-size, --layers, --heads, --intermediate-size: only for training from scratch/);
    const tuneCode = await runTrain({ ...training, text, out: join(dir, 'tuned'), model: result.model, steps: 3 }, { stdout: tuned.stream, stderr: err.stream });
    assert.equal(tuneCode, 0, err.text());
    const again = await loadFolderGenerator(nodeFileSystem, JSON.parse(tuned.text()).model as string);
    assert.equal(again.model.vocabSize, generator.model.vocabSize);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('glassformer train: an empty text file and a bad flag are clear errors', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-train-cli-'));
  try {
    const text = join(dir, 'empty.txt');
    await writeFile(text, '\n\n');
    const err = sink();
    assert.equal(await runTrain({ ...BASE, text, out: join(dir, 'run') }, { stdout: sink().stream, stderr: err.stream }), 3);
    assert.match(err.text(), /empty\.txt: no text to train on/);
    const command = trainCommand().exitOverride().configureOutput({ writeErr: () => undefined });
    assert.throws(() => command.parse(['--text', text, '--out', dir, '--schedule', 'step'], { from: 'user' }), /--schedule must be cosine, linear or constant/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
