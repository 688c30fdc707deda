import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import {
  EntryNotFoundError,
  GatedModelError,
  HubError,
  IntegrityError,
  ModelNotFoundError,
  OfflineError,
  PickleWeightsError,
} from '../../src/errors.js';
import { readSafetensors, serializeSafetensors } from '../../src/io/safetensors.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { HubClient } from '../../src/hub/client.js';
import { modelInfo } from '../../src/hub/info.js';
import { FileLock, type DownloadProgress } from '../../src/hub/node-cache.js';
import { resolveModel, type ResolveOptions } from '../../src/hub/node-resolve.js';
import { HF_TINY } from '../helpers/shared.js';
import { FakeHub, fixtureBytes, gitBlobSha, sha256, type FakeRepo } from './fake-hub.js';

const commitOf = (name: string): string => createHash('sha1').update(name).digest('hex');
const ID = 'tiny-org/gpt2';
const COMMIT = commitOf('gpt2 main');
const WEIGHTS = fixtureBytes('gpt2', 'model.safetensors');
const CONFIG = fixtureBytes('gpt2', 'config.json');

/** gpt2 as a Hub repository would hold it: the safetensors beside files glassformer must not fetch. */
function gpt2Repo(extra: Partial<FakeRepo> = {}): FakeRepo {
  return {
    commit: COMMIT,
    files: {
      'config.json': CONFIG,
      'generation_config.json': fixtureBytes('gpt2', 'generation_config.json'),
      'model.safetensors': WEIGHTS,
      'pytorch_model.bin': Buffer.from('PK\x03\x04 a pickle glassformer must never fetch'),
      'tf_model.h5': Buffer.from('HDF5'),
      'README.md': Buffer.from('# tiny gpt2\n'),
    },
    ...extra,
  };
}

async function setup(t: TestContext, repos: Record<string, FakeRepo>): Promise<{ hub: FakeHub; cacheDir: string; options: ResolveOptions }> {
  const hub = await FakeHub.start(repos);
  const cacheDir = await mkdtemp(join(tmpdir(), 'glassformer-hub-'));
  t.after(async () => {
    await hub.close();
    await rm(cacheDir, { recursive: true, force: true });
  });
  // Explicit endpoint and an empty environment: the tests never read or change the real HF_* variables.
  return { hub, cacheDir, options: { endpoint: hub.endpoint, cacheDir, env: {}, attempts: 3 } };
}

const repoDir = (cacheDir: string, id = ID): string => join(cacheDir, `models--${id.replace('/', '--')}`);

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

const fileRequests = (hub: FakeHub, file: string) => hub.requests((r) => r.path.includes(`/resolve/`) && r.path.split('?')[0].endsWith(`/${file}`));
const cdnGets = (hub: FakeHub) => hub.requests((r) => r.server === 'cdn' && r.method === 'GET');

test('a Hub id is fetched into the huggingface_hub cache layout: blobs named by etag, relative symlinks, refs/main', async (t) => {
  const { hub, cacheDir, options } = await setup(t, { [ID]: gpt2Repo() });
  const path = await resolveModel(ID, options);
  const repo = repoDir(cacheDir);
  assert.equal(path, join(repo, 'snapshots', COMMIT));
  assert.equal(await readFile(join(repo, 'refs', 'main'), 'utf8'), COMMIT);
  // LFS file: named by the sha256 from X-Linked-Etag; regular file: by its git blob sha1 (the ETag).
  const weightsSha = sha256(WEIGHTS);
  assert.equal(await readlink(join(path, 'model.safetensors')), join('..', '..', 'blobs', weightsSha));
  assert.equal(await readlink(join(path, 'config.json')), join('..', '..', 'blobs', gitBlobSha(CONFIG)));
  assert.deepEqual(await readFile(join(repo, 'blobs', weightsSha)), WEIGHTS);
  assert.deepEqual(await readFile(join(path, 'config.json')), CONFIG);
  assert.deepEqual((await readdir(path)).sort(), ['config.json', 'generation_config.json', 'model.safetensors']);
  assert.deepEqual((await readdir(join(repo, 'blobs'))).sort(), [gitBlobSha(CONFIG), gitBlobSha(fixtureBytes('gpt2', 'generation_config.json')), weightsSha].sort());
  // Only what the model needs was asked for.
  for (const file of ['pytorch_model.bin', 'tf_model.h5', 'README.md']) assert.deepEqual(fileRequests(hub, file), [], file);
  // The weights came from the CDN the redirect named, in one GET.
  assert.equal(cdnGets(hub).length, 1);
  // The folder loads: the tensors are the fixture's.
  const tensors = await readSafetensors(nodeFileSystem, join(path, 'model.safetensors'));
  assert.equal(tensors.get('transformer.wte.weight')?.shape.join('x'), '128x32');
});

test('a cached model is not fetched again, and offline it resolves without any network', async (t) => {
  const { hub, options } = await setup(t, { [ID]: gpt2Repo() });
  const first = await resolveModel(ID, options);
  const before = hub.log.length;
  assert.equal(await resolveModel(ID, options), first);
  // Online, only the file list is asked for again; no HEAD, no GET of a file.
  assert.deepEqual(
    hub.log.slice(before).map((r) => `${r.method} ${r.path}`),
    [`GET /api/models/${ID}/revision/main`],
  );
  const noNetwork = async (): Promise<Response> => assert.fail('offline mode must not touch the network');
  assert.equal(await resolveModel(ID, { ...options, offline: true, fetcher: noNetwork }), first);
  assert.equal(await resolveModel(ID, { ...options, env: { HF_HUB_OFFLINE: '1' }, fetcher: noNetwork }), first);
});

test('sharded weights: the index and every shard it names are fetched; the parameter count matches the single file', async (t) => {
  const tensors = await readSafetensors(nodeFileSystem, join(HF_TINY, 'gpt2', 'model.safetensors'));
  const names = [...tensors.keys()].sort();
  const half = Math.ceil(names.length / 2);
  const shardNames = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const shards = [names.slice(0, half), names.slice(half)].map((part) => serializeSafetensors(Object.fromEntries(part.map((n) => [n, tensors.get(n)!])), { format: 'pt' }));
  const weightMap = Object.fromEntries(names.map((n, i) => [n, shardNames[i < half ? 0 : 1]]));
  const index = Buffer.from(JSON.stringify({ metadata: { total_size: WEIGHTS.length }, weight_map: weightMap }));
  const files = { 'config.json': CONFIG, 'model.safetensors.index.json': index, [shardNames[0]]: shards[0], [shardNames[1]]: shards[1] };
  const { options } = await setup(t, { [ID]: { commit: COMMIT, files } });
  const path = await resolveModel(ID, options);
  assert.deepEqual((await readdir(path)).sort(), ['config.json', 'model.safetensors.index.json', ...shardNames].sort());
  for (const [i, shard] of shardNames.entries()) assert.deepEqual(await readFile(join(path, shard)), Buffer.from(shards[i]));
  const info = await modelInfo(path);
  assert.deepEqual(info.weights?.files, shardNames);
  assert.equal(info.weights?.parameters, 31616);
});

test('a gated model without a token is GatedModelError naming HF_TOKEN; with it the download works and the token never reaches the CDN', async (t) => {
  const { hub, cacheDir, options } = await setup(t, { [ID]: gpt2Repo({ gatedToken: 'hf_good' }) });
  await assert.rejects(resolveModel(ID, options), (error: unknown) => {
    assert.ok(error instanceof GatedModelError);
    assert.equal(error.status, 401);
    assert.equal(error.modelId, ID);
    assert.match(error.message, /HF_TOKEN/);
    assert.match(error.message, /licence/);
    return true;
  });
  assert.equal(await exists(join(repoDir(cacheDir), 'snapshots')), false);
  await assert.rejects(resolveModel(ID, { ...options, token: 'hf_wrong' }), GatedModelError);
  const path = await resolveModel(ID, { ...options, env: { HF_TOKEN: 'hf_good' } });
  assert.deepEqual(await readFile(join(path, 'model.safetensors')), WEIGHTS);
  assert.ok(hub.requests((r) => r.server === 'hub' && r.authorization === 'Bearer hf_good').length >= 4);
  assert.deepEqual(
    hub.requests((r) => r.server === 'cdn' && r.authorization !== undefined),
    [],
    'the signed CDN URL must not receive the token',
  );
});

test('an unknown model or revision is ModelNotFoundError; a missing file is EntryNotFoundError naming it and remembered in .no_exist', async (t) => {
  const { cacheDir, options } = await setup(t, { [ID]: gpt2Repo() });
  await assert.rejects(resolveModel('tiny-org/nope', options), (error: unknown) => error instanceof ModelNotFoundError && error.status === 404);
  await assert.rejects(resolveModel(ID, { ...options, revision: 'v9' }), (error: unknown) => {
    assert.ok(error instanceof ModelNotFoundError);
    assert.match(error.message, /revision "v9" not found/);
    return true;
  });
  await assert.rejects(resolveModel(ID, { ...options, files: ['config.json', 'tokenizer.json'] }), (error: unknown) => {
    assert.ok(error instanceof EntryNotFoundError);
    assert.equal(error.status, 404);
    assert.equal(error.file, 'tokenizer.json');
    assert.match(error.message, /tokenizer\.json/);
    return true;
  });
  assert.equal(await exists(join(repoDir(cacheDir), '.no_exist', COMMIT, 'tokenizer.json')), true);
  assert.equal(await exists(join(repoDir(cacheDir), 'snapshots', COMMIT, 'tokenizer.json')), false);
});

test('a repository whose only weights are pytorch_model.bin is refused with PickleWeightsError; the pickle is never requested', async (t) => {
  const files = { 'config.json': CONFIG, 'pytorch_model.bin': Buffer.from('pickle') };
  const { hub, options } = await setup(t, { [ID]: { commit: COMMIT, files } });
  await assert.rejects(resolveModel(ID, options), (error: unknown) => {
    assert.ok(error instanceof PickleWeightsError);
    assert.match(error.message, /never unpickles/);
    assert.match(error.message, /safe_serialization=True/);
    return true;
  });
  assert.deepEqual(fileRequests(hub, 'pytorch_model.bin'), []);
  await assert.rejects(resolveModel(ID, { ...options, files: ['pytorch_model.bin'] }), PickleWeightsError);
  assert.deepEqual(fileRequests(hub, 'pytorch_model.bin'), []);
});

test('a connection dropped mid-file is resumed with a Range request and the sha256 matches', async (t) => {
  const { hub, cacheDir, options } = await setup(t, { [ID]: gpt2Repo() });
  const sha = sha256(WEIGHTS);
  hub.faults.drop = { sha, bytes: 50_000, times: 1 };
  const path = await resolveModel(ID, options);
  assert.deepEqual(await readFile(join(path, 'model.safetensors')), WEIGHTS);
  assert.deepEqual(
    cdnGets(hub).map((r) => r.range),
    [undefined, 'bytes=50000-'],
  );
  assert.equal(await exists(join(repoDir(cacheDir), 'blobs', `${sha}.incomplete`)), false);
});

test('a transfer that stalls is cut after the idle timeout and resumed from where it stopped', async (t) => {
  const { hub, options } = await setup(t, { [ID]: gpt2Repo() });
  hub.faults.stall = { sha: sha256(WEIGHTS), bytes: 30_000, times: 1 };
  const started = Date.now();
  const path = await resolveModel(ID, { ...options, idleTimeoutMs: 300 });
  assert.ok(Date.now() - started >= 300);
  assert.deepEqual(
    cdnGets(hub).map((r) => r.range),
    [undefined, 'bytes=30000-'],
  );
  assert.deepEqual(await readFile(join(path, 'model.safetensors')), WEIGHTS);
});

test('a download that keeps breaking leaves only the resumable .incomplete, and the next run resumes from it', async (t) => {
  const { hub, cacheDir, options } = await setup(t, { [ID]: gpt2Repo() });
  const sha = sha256(WEIGHTS);
  hub.faults.drop = { sha, bytes: 40_000, times: 2 };
  await assert.rejects(resolveModel(ID, { ...options, attempts: 1 }), (error: unknown) => {
    assert.ok(error instanceof HubError);
    assert.equal(error.status, undefined);
    assert.equal(error.file, 'model.safetensors');
    assert.match(error.message, /resumes/);
    return true;
  });
  const blobs = join(repoDir(cacheDir), 'blobs');
  assert.equal((await stat(join(blobs, `${sha}.incomplete`))).size, 40_000);
  assert.equal(await exists(join(blobs, sha)), false);
  assert.equal(await exists(join(repoDir(cacheDir), 'snapshots', COMMIT, 'model.safetensors')), false);
  // Second run: the first transfer breaks again 40 000 bytes further on, the next one finishes.
  const path = await resolveModel(ID, options);
  assert.deepEqual(
    cdnGets(hub).map((r) => r.range),
    [undefined, 'bytes=40000-', 'bytes=80000-'],
  );
  assert.deepEqual(await readFile(join(path, 'model.safetensors')), WEIGHTS);
  assert.equal(sha256(await readFile(join(blobs, sha))), sha);
  assert.deepEqual((await readdir(blobs)).filter((n) => n.endsWith('.incomplete')), []);
});

test('an expired CDN link is renewed through the resolve URL, which redirects to a fresh one', async (t) => {
  const { hub, options } = await setup(t, { [ID]: gpt2Repo() });
  hub.faults.expire = { times: 1 };
  const path = await resolveModel(ID, options);
  assert.deepEqual(await readFile(join(path, 'model.safetensors')), WEIGHTS);
  assert.equal(hub.requests((r) => r.server === 'hub' && r.method === 'GET' && r.path.endsWith('/resolve/' + COMMIT + '/model.safetensors')).length, 1);
  assert.equal(cdnGets(hub).length, 2);
});

test('a sha256 mismatch is IntegrityError and leaves nothing in blobs/ or snapshots/', async (t) => {
  const { hub, cacheDir, options } = await setup(t, { [ID]: gpt2Repo() });
  const sha = sha256(WEIGHTS);
  hub.faults.corrupt = { sha };
  await assert.rejects(resolveModel(ID, options), (error: unknown) => {
    assert.ok(error instanceof IntegrityError);
    assert.equal(error.file, 'model.safetensors');
    assert.match(error.message, new RegExp(`the Hub says ${sha}`));
    return true;
  });
  const blobs = await readdir(join(repoDir(cacheDir), 'blobs'));
  assert.deepEqual(blobs.filter((n) => n.startsWith(sha)), [], 'neither the blob nor an .incomplete of it');
  assert.equal(await exists(join(repoDir(cacheDir), 'snapshots', COMMIT, 'model.safetensors')), false);
  hub.faults.corrupt = undefined;
  const path = await resolveModel(ID, options);
  assert.deepEqual(await readFile(join(path, 'model.safetensors')), WEIGHTS);
});

test('two simultaneous downloads of the same file end with one correct blob, fetched once', async (t) => {
  const { hub, cacheDir, options } = await setup(t, { [ID]: gpt2Repo() });
  hub.faults.slowMs = 2;
  const [a, b] = await Promise.all([resolveModel(ID, { ...options, lock: { pollMs: 10 } }), resolveModel(ID, { ...options, lock: { pollMs: 10 } })]);
  assert.equal(a, b);
  assert.equal(cdnGets(hub).length, 1);
  const sha = sha256(WEIGHTS);
  assert.deepEqual(await readFile(join(repoDir(cacheDir), 'blobs', sha)), WEIGHTS);
  assert.deepEqual((await readdir(join(repoDir(cacheDir), 'blobs'))).filter((n) => n.includes('.incomplete')), []);
  assert.deepEqual(await readdir(join(cacheDir, '.locks', 'models--tiny-org--gpt2')), [], 'locks are released');
});

/** Run resolveModel in a separate Node process; resolves with its exit code and output. */
function resolveInChild(id: string, endpoint: string, cacheDir: string): Promise<{ code: number | null; out: string; err: string }> {
  const moduleUrl = new URL('../../src/hub/node-resolve.js', import.meta.url).href;
  const script = `
    import { resolveModel } from ${JSON.stringify(moduleUrl)};
    const [id, endpoint, cacheDir] = process.argv.slice(1);
    process.stdout.write(await resolveModel(id, { endpoint, cacheDir, env: {}, lock: { pollMs: 10 } }));`;
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, id, endpoint, cacheDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, out, err }));
  });
}

test('two processes downloading the same model at once share one download through the lock', async (t) => {
  const { hub, cacheDir } = await setup(t, { [ID]: gpt2Repo() });
  hub.faults.slowMs = 3;
  const [a, b] = await Promise.all([resolveInChild(ID, hub.endpoint, cacheDir), resolveInChild(ID, hub.endpoint, cacheDir)]);
  assert.equal(a.code, 0, a.err);
  assert.equal(b.code, 0, b.err);
  assert.equal(a.out, join(repoDir(cacheDir), 'snapshots', COMMIT));
  assert.equal(b.out, a.out);
  assert.equal(cdnGets(hub).length, 1, 'the weights were downloaded once');
  assert.deepEqual(await readFile(join(a.out, 'model.safetensors')), WEIGHTS);
});

test('a lock left behind by a dead process, or not refreshed for too long, is broken', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'x.lock');
  // No process has pid 2^22 + 1 (above Linux's pid_max default) on this host.
  await writeFile(path, JSON.stringify({ host: (await import('node:os')).hostname(), pid: 4194305, token: 'dead' }));
  const lock = await FileLock.acquire(path, async () => false, { pollMs: 5 });
  assert.ok(lock);
  assert.match(await readFile(path, 'utf8'), new RegExp(`"pid":${process.pid}`));
  await lock.release();
  assert.equal(await exists(path), false);
  // A live holder blocks until it releases.
  const holder = await FileLock.acquire(path, async () => false);
  let taken = false;
  const waiter = FileLock.acquire(path, async () => false, { pollMs: 5 }).then((l) => {
    taken = true;
    return l;
  });
  await new Promise((done) => setTimeout(done, 60));
  assert.equal(taken, false);
  await holder?.release();
  await (await waiter)?.release();
  // Unreadable content from another host: only its age counts.
  await writeFile(path, 'garbage');
  const old = new Date(Date.now() - 120_000);
  await (await import('node:fs/promises')).utimes(path, old, old);
  const again = await FileLock.acquire(path, async () => false, { pollMs: 5, staleMs: 60_000 });
  assert.ok(again);
  await again.release();
});

test('a branch or tag revision is recorded in refs/<revision> with its commit', async (t) => {
  const tagCommit = commitOf('gpt2 v1.0');
  const { cacheDir, options } = await setup(t, { [ID]: gpt2Repo({ refs: { 'v1.0': tagCommit } }) });
  const path = await resolveModel(ID, { ...options, revision: 'v1.0' });
  assert.equal(path, join(repoDir(cacheDir), 'snapshots', tagCommit));
  assert.equal(await readFile(join(repoDir(cacheDir), 'refs', 'v1.0'), 'utf8'), tagCommit);
  // A commit sha as revision writes no ref.
  await resolveModel(ID, { ...options, revision: COMMIT });
  assert.deepEqual((await readdir(join(repoDir(cacheDir), 'refs'))).sort(), ['v1.0']);
});

test('progress reports bytes done and total per file, never decreasing, ending at the total', async (t) => {
  const { options } = await setup(t, { [ID]: gpt2Repo() });
  const events: DownloadProgress[] = [];
  await resolveModel(ID, { ...options, onProgress: (p) => events.push(p) });
  const files = [...new Set(events.map((e) => e.file))];
  assert.deepEqual(files, ['config.json', 'generation_config.json', 'model.safetensors']);
  for (const file of files) {
    const mine = events.filter((e) => e.file === file);
    assert.equal(mine.at(-1)?.bytes, mine[0].total);
    assert.ok(mine.every((e, i) => i === 0 || e.bytes >= mine[i - 1].bytes));
  }
  assert.equal(events.find((e) => e.file === 'model.safetensors')?.total, WEIGHTS.length);
});

test('when the Hub cannot be reached a cached snapshot answers; without one the error names the connection', async (t) => {
  const { hub, cacheDir, options } = await setup(t, { [ID]: gpt2Repo() });
  const path = await resolveModel(ID, options);
  const down = hub.endpoint;
  await hub.close();
  assert.equal(await resolveModel(ID, { ...options, endpoint: down }), path);
  await rm(join(repoDir(cacheDir)), { recursive: true });
  await assert.rejects(resolveModel(ID, { ...options, endpoint: down }), (error: unknown) => {
    assert.ok(error instanceof HubError && !(error instanceof OfflineError));
    assert.equal(error.status, undefined);
    assert.match(error.message, /could not reach/);
    return true;
  });
});

test('HEAD on an LFS file reads X-Repo-Commit, X-Linked-Etag and X-Linked-Size from the redirect without following it', async (t) => {
  const { hub } = await setup(t, { [ID]: gpt2Repo() });
  const client = new HubClient({ endpoint: hub.endpoint });
  const lfs = await client.fileMetadata(ID, 'main', 'model.safetensors');
  assert.equal(lfs.commit, COMMIT);
  assert.equal(lfs.etag, sha256(WEIGHTS));
  assert.equal(lfs.size, WEIGHTS.length);
  assert.match(lfs.location, new RegExp(`/cdn/${lfs.etag}\\?signature=abc$`));
  const plain = await client.fileMetadata(ID, 'main', 'config.json');
  assert.deepEqual(plain, { commit: COMMIT, etag: gitBlobSha(CONFIG), size: CONFIG.length, location: `${hub.endpoint}/${ID}/resolve/main/config.json` });
  assert.deepEqual(hub.requests((r) => r.server === 'cdn'), [], 'HEAD does not follow the CDN redirect');
  await assert.rejects(client.fileMetadata(ID, 'main', 'nope.json'), (e: unknown) => e instanceof EntryNotFoundError && e.file === 'nope.json');
});

test('metadata a cache path cannot be built from safely is refused: an ETag with a path in it, a server that is not a Hub', async () => {
  const answering = (headers: Record<string, string>) => async (): Promise<Response> => new Response(null, { status: 200, headers });
  const evil = new HubClient({ endpoint: 'http://127.0.0.1:9', fetcher: answering({ 'x-repo-commit': COMMIT, etag: '"../../../x"', 'content-length': '3' }) });
  await assert.rejects(evil.fileMetadata(ID, 'main', 'config.json'), /is not a plain hash/);
  const plain = new HubClient({ endpoint: 'http://127.0.0.1:9', fetcher: answering({ 'content-length': '3' }) });
  await assert.rejects(plain.fileMetadata(ID, 'main', 'config.json'), (e: unknown) => {
    assert.ok(e instanceof HubError);
    assert.match(e.message, /no X-Repo-Commit, ETag header; the server does not look like the Hugging Face Hub/);
    return true;
  });
});
