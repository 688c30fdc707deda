import assert from 'node:assert/strict';
import { mkdtemp, readFile, symlink, writeFile, mkdir, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fromPretrained, loadModel, nodeFileSystem } from '../../src/index.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { compareTensors } from '../../src/verify/index.js';
import { HF_TINY, REPO } from '../helpers/shared.js';

const FAMILIES: Record<string, string> = {
  bert: 'encoder-only',
  'bert/classification': 'encoder-only',
  gpt2: 'decoder-only',
  llama: 'decoder-only',
  t5: 'encoder-decoder',
  't5/gated-gelu': 'encoder-decoder',
  bart: 'encoder-decoder',
  marian: 'encoder-decoder',
  vanilla: 'vanilla',
};

test('loadModel picks each fixture family by its config.json model_type', async () => {
  for (const [dir, family] of Object.entries(FAMILIES)) {
    const loaded = await loadModel(nodeFileSystem, join(HF_TINY, dir));
    assert.equal(loaded.family, family, dir);
    assert.equal(loaded.tokenizer, undefined, `${dir} has no tokenizer`);
  }
});

test('a decoder loaded by the registry gives the logits Hugging Face recorded', async () => {
  const loaded = await loadModel(nodeFileSystem, join(HF_TINY, 'llama'));
  assert.equal(loaded.family, 'decoder-only');
  if (loaded.family !== 'decoder-only') return;
  const inputs = JSON.parse(await readFile(join(HF_TINY, 'llama', 'inputs.json'), 'utf8')) as { input_ids: number[][] };
  const expected = (await readSafetensors(nodeFileSystem, join(HF_TINY, 'llama', 'expected.safetensors'))).get('logits');
  assert.ok(expected);
  // Row 0 has no padding: its logits need no mask or position ids beyond the defaults.
  const row = inputs.input_ids[0];
  const out = loaded.model.forward(Tensor.i32(row, [1, row.length]));
  assert.ok(compareTensors('logits', out.logits, expected.slice(0, 0, 1)).pass);
});

test('fromPretrained resolves a folder laid out like the Python cache, offline, with its tokenizer', async () => {
  const cache = await mkdtemp(join(tmpdir(), 'glassformer-pretrained-'));
  const repo = join(cache, 'models--glassformer--numbers-marian');
  const snapshot = join(repo, 'snapshots', 'abc123');
  await mkdir(snapshot, { recursive: true });
  await mkdir(join(repo, 'refs'));
  await writeFile(join(repo, 'refs', 'main'), 'abc123');
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) {
    await copyFile(join(REPO, 'models', 'numbers-marian', f), join(snapshot, `blob-${f}`));
    await symlink(`blob-${f}`, join(snapshot, f));
  }
  const loaded = await fromPretrained('glassformer/numbers-marian', { cacheDir: cache, offline: true });
  assert.equal(loaded.family, 'encoder-decoder');
  assert.ok(loaded.tokenizer);
  assert.deepEqual(loaded.tokenizer.decode(loaded.tokenizer.encode('forty-two').ids, { skipSpecialTokens: true }).replace(/\s/g, ''), 'forty-two');
});

test('an unknown model_type is refused with the list of supported ones', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-unknown-'));
  await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'mamba', hidden_size: 8 }));
  await writeFile(join(dir, 'model.safetensors'), new Uint8Array(0));
  await assert.rejects(loadModel(nodeFileSystem, dir), /mamba/);
});
