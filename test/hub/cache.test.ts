import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { EntryNotFoundError, FormatError, OfflineError, PickleWeightsError } from '../../src/errors.js';
import { selectModelFiles, shardsOfIndex } from '../../src/hub/files.js';
import { hubSettingsFromEnv, resolveModel } from '../../src/hub/node-resolve.js';
import { HF_TINY } from '../helpers/shared.js';
import { fixtureBytes, gitBlobSha, sha256 } from './fake-hub.js';

const ID = 'tiny-org/llama';
const COMMIT = '0123456789abcdef0123456789abcdef01234567';

async function temp(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-cache-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A cache exactly as Python's huggingface_hub leaves it after `snapshot_download`, built by hand. */
async function pythonCache(cacheDir: string): Promise<{ repo: string; snapshot: string }> {
  const repo = join(cacheDir, 'models--tiny-org--llama');
  const snapshot = join(repo, 'snapshots', COMMIT);
  await mkdir(join(repo, 'blobs'), { recursive: true });
  await mkdir(join(repo, 'refs'), { recursive: true });
  await mkdir(snapshot, { recursive: true });
  // Python also leaves its filelock files behind; they must not get in the way.
  await mkdir(join(cacheDir, '.locks', 'models--tiny-org--llama'), { recursive: true });
  for (const file of ['config.json', 'generation_config.json', 'model.safetensors']) {
    const bytes = fixtureBytes('llama', file);
    const etag = file.endsWith('.safetensors') ? sha256(bytes) : gitBlobSha(bytes);
    await writeFile(join(repo, 'blobs', etag), bytes);
    await symlink(join('..', '..', 'blobs', etag), join(snapshot, file));
    await writeFile(join(cacheDir, '.locks', 'models--tiny-org--llama', `${etag}.lock`), '');
  }
  // Python writes the ref without a trailing newline.
  await writeFile(join(repo, 'refs', 'main'), COMMIT);
  return { repo, snapshot };
}

test('a model in a Python-made cache resolves by id offline, by its models-- folder, and by its snapshot path', async (t) => {
  const cacheDir = await temp(t);
  const { repo, snapshot } = await pythonCache(cacheDir);
  const noNetwork = async (): Promise<Response> => assert.fail('no network when offline');
  assert.equal(await resolveModel(ID, { cacheDir, offline: true, env: {}, fetcher: noNetwork }), snapshot);
  assert.equal(await resolveModel(ID, { env: { HF_HUB_CACHE: cacheDir, HF_HUB_OFFLINE: 'true' }, fetcher: noNetwork }), snapshot);
  assert.equal(await resolveModel(ID, { cacheDir, offline: true, revision: COMMIT, env: {} }), snapshot);
  assert.equal(await resolveModel(repo, { env: {} }), snapshot);
  assert.equal(await resolveModel(snapshot, { env: {} }), snapshot);
});

test('offline, a missing revision, snapshot or weight blob is an OfflineError naming what is missing', async (t) => {
  const cacheDir = await temp(t);
  const { repo, snapshot } = await pythonCache(cacheDir);
  const offline = { cacheDir, offline: true, env: {} };
  await assert.rejects(resolveModel(ID, { ...offline, revision: 'v2' }), (error: unknown) => {
    assert.ok(error instanceof OfflineError);
    assert.match(error.message, /revision "v2" is not in the cache/);
    assert.match(error.message, /glassformer download tiny-org\/llama --revision v2/);
    return true;
  });
  await assert.rejects(resolveModel('tiny-org/other', offline), OfflineError);
  await assert.rejects(resolveModel(ID, { ...offline, revision: '../../../etc' }), FormatError);
  await assert.rejects(resolveModel(ID, { ...offline, revision: 'f'.repeat(40) }), /no snapshot/);
  // A blob deleted by hand leaves a dangling symlink: the file counts as missing.
  const weights = sha256(fixtureBytes('llama', 'model.safetensors'));
  await unlink(join(repo, 'blobs', weights));
  await assert.rejects(resolveModel(ID, offline), (error: unknown) => {
    assert.ok(error instanceof OfflineError);
    assert.equal(error.file, 'model.safetensors');
    assert.match(error.message, /model\.safetensors is not in the cache/);
    return true;
  });
  // Without requiring weights (as `glassformer info` asks) the snapshot is usable.
  assert.equal(await resolveModel(ID, { ...offline, requireWeights: false }), snapshot);
});

test('a plain folder resolves to itself; pickle-only folders, folders without config.json and unknown paths are refused', async (t) => {
  const dir = await temp(t);
  const llama = join(HF_TINY, 'llama');
  assert.equal(await resolveModel(llama, { env: {} }), llama);
  const pickled = join(dir, 'pickled');
  await mkdir(pickled);
  await copyFile(join(llama, 'config.json'), join(pickled, 'config.json'));
  await writeFile(join(pickled, 'pytorch_model.bin'), 'pickle');
  await assert.rejects(resolveModel(pickled, { env: {} }), PickleWeightsError);
  const noConfig = join(dir, 'no-config');
  await mkdir(noConfig);
  await copyFile(join(llama, 'model.safetensors'), join(noConfig, 'model.safetensors'));
  await assert.rejects(resolveModel(noConfig, { env: {} }), (e: unknown) => e instanceof EntryNotFoundError && e.file === 'config.json');
  await assert.rejects(resolveModel(join(dir, 'missing'), { env: {} }), /no such folder, and not a Hub model id/);
  await assert.rejects(resolveModel('not a model id!', { env: {} }), EntryNotFoundError);
  await assert.rejects(resolveModel(llama, { env: {}, revision: 'v2' }), /a plain folder has no revisions/);
});

test('the cache folder, endpoint, token and offline flag come from the environment variables huggingface_hub reads', () => {
  const home = homedir();
  assert.deepEqual(hubSettingsFromEnv({}), {
    cacheDir: join(home, '.cache', 'huggingface', 'hub'),
    endpoint: 'https://huggingface.co',
    token: undefined,
    offline: false,
    metadataTimeoutMs: 10_000,
    downloadTimeoutMs: 10_000,
  });
  assert.equal(hubSettingsFromEnv({ HF_HUB_DOWNLOAD_TIMEOUT: '2.5' }).downloadTimeoutMs, 2500);
  assert.throws(() => hubSettingsFromEnv({ HF_HUB_ETAG_TIMEOUT: 'soon' }), /HF_HUB_ETAG_TIMEOUT must be a positive number of seconds, found "soon"/);
  assert.equal(hubSettingsFromEnv({ XDG_CACHE_HOME: '/x' }).cacheDir, '/x/huggingface/hub');
  assert.equal(hubSettingsFromEnv({ HF_HOME: '~/hf' }).cacheDir, join(home, 'hf', 'hub'));
  assert.equal(hubSettingsFromEnv({ XDG_CACHE_HOME: '/x', HF_HOME: '/h' }).cacheDir, '/h/hub');
  assert.equal(hubSettingsFromEnv({ HF_HOME: '/h', HUGGINGFACE_HUB_CACHE: '/old' }).cacheDir, '/old');
  assert.equal(hubSettingsFromEnv({ HF_HOME: '/h', HUGGINGFACE_HUB_CACHE: '/old', HF_HUB_CACHE: '/c' }).cacheDir, '/c');
  assert.equal(hubSettingsFromEnv({ HF_ENDPOINT: 'http://127.0.0.1:9' }).endpoint, 'http://127.0.0.1:9');
  assert.equal(hubSettingsFromEnv({ HF_TOKEN: 'hf_x' }).token, 'hf_x');
  for (const yes of ['1', 'ON', 'yes', 'True']) assert.equal(hubSettingsFromEnv({ HF_HUB_OFFLINE: yes }).offline, true, yes);
  for (const no of ['0', 'false', '']) assert.equal(hubSettingsFromEnv({ HF_HUB_OFFLINE: no }).offline, false, no);
  assert.equal(hubSettingsFromEnv({ TRANSFORMERS_OFFLINE: '1' }).offline, true);
});

test('the files a model needs: config, tokenizer, sentence-transformers modules and safetensors, nothing else', () => {
  const opts = { modelId: 'org/m' };
  assert.deepEqual(
    selectModelFiles(
      ['README.md', 'config.json', 'model.safetensors', 'pytorch_model.bin', 'onnx/model.onnx', 'tokenizer.json', 'vocab.txt', 'tokenizer_config.json', 'special_tokens_map.json'],
      opts,
    ).files,
    ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'model.safetensors'],
  );
  // Without tokenizer.json the slow tokenizer's vocabulary is needed (Marian: sentencepiece models and vocab.json).
  assert.deepEqual(selectModelFiles(['config.json', 'source.spm', 'target.spm', 'vocab.json', 'model.safetensors'], opts).files, [
    'config.json',
    'source.spm',
    'target.spm',
    'vocab.json',
    'model.safetensors',
  ]);
  assert.deepEqual(
    selectModelFiles(
      ['config.json', 'modules.json', 'sentence_bert_config.json', '1_Pooling/config.json', '2_Normalize/README.md', 'model.safetensors', 'tokenizer.json'],
      opts,
    ).files,
    ['config.json', 'tokenizer.json', 'sentence_bert_config.json', 'modules.json', '1_Pooling/config.json', 'model.safetensors'],
  );
  const sharded = selectModelFiles(['config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors'], opts);
  assert.equal(sharded.weightIndex, 'model.safetensors.index.json');
  assert.throws(() => selectModelFiles(['config.json', 'pytorch_model.bin'], opts), PickleWeightsError);
  assert.throws(() => selectModelFiles(['config.json', 'onnx/model.onnx'], opts), /holds only onnx\/model\.onnx/);
  assert.deepEqual(selectModelFiles(['config.json', 'tokenizer.json'], { ...opts, requireWeights: false }).files, ['config.json', 'tokenizer.json']);
  assert.deepEqual(selectModelFiles(['config.json', 'pytorch_model.bin'], { ...opts, requireWeights: false }).files, ['config.json']);
});

test('file names from the server cannot leave the snapshot folder', () => {
  assert.deepEqual(shardsOfIndex(JSON.stringify({ weight_map: { a: 'm-2.safetensors', b: 'm-1.safetensors', c: 'm-1.safetensors' } }), 'index'), [
    'm-1.safetensors',
    'm-2.safetensors',
  ]);
  for (const bad of ['../../evil', '/etc/passwd', 'a/../../b', 'a\\b']) {
    assert.throws(() => shardsOfIndex(JSON.stringify({ weight_map: { w: bad } }), 'index'), FormatError, bad);
  }
  assert.throws(() => shardsOfIndex('{"weight_map": []}', 'index'), /weight_map/);
});
