/**
 * `resolveModel`: from what a user types (a folder, a folder in Python's
 * cache, or a Hub id) to a local folder holding the files the model needs.
 * Node only: it reads the environment and the local file system.
 *
 * Resolution order (docs/hub.md):
 *   1. an existing folder: a `models--org--name` cache folder → its snapshot
 *      for the revision (refs/main by default); any other folder → itself;
 *   2. a Hub id `org/name`: offline → the cache only; online → list the files
 *      at the revision, fetch the missing ones into the cache, return the snapshot;
 *      when the Hub cannot be reached the cache answers if it can.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { ConfigError, EntryNotFoundError, HubError, ModelNotFoundError, OfflineError, UnsupportedError } from '../errors.js';
import { HubClient, DEFAULT_ENDPOINT, isCommitHash, isModelId, type Fetcher } from './client.js';
import { checkRepoFileName, pickleError, selectModelFiles, shardsOfIndex, SAFETENSORS_INDEX, SAFETENSORS_WEIGHTS, type FileSelection } from './files.js';
import { RepoCache, type LockOptions, type ProgressCallback } from './node-cache.js';

export type Environment = Readonly<Record<string, string | undefined>>;

export interface HubSettings {
  readonly cacheDir: string;
  readonly endpoint: string;
  readonly token?: string;
  readonly offline: boolean;
  /** HF_HUB_ETAG_TIMEOUT: seconds to wait for metadata (HEAD, file list); default 10. */
  readonly metadataTimeoutMs: number;
  /** HF_HUB_DOWNLOAD_TIMEOUT: seconds without a byte before a transfer is cut and resumed; default 10. */
  readonly downloadTimeoutMs: number;
}

function envSeconds(value: string | undefined, name: string): number {
  if (value === undefined || value.trim() === '') return 10_000;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new ConfigError(`environment variable ${name} must be a positive number of seconds, found "${value}"`);
  return seconds * 1000;
}

/** `~/x` → the home folder's x, as Python's `os.path.expanduser` does for these variables. */
function expandUser(path: string): string {
  return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path;
}

/** huggingface_hub's truthy spellings of a boolean environment variable. */
function envTrue(value: string | undefined): boolean {
  return value !== undefined && ['1', 'ON', 'YES', 'TRUE'].includes(value.trim().toUpperCase());
}

/**
 * The settings huggingface_hub derives from the environment:
 * HF_HUB_CACHE (or the older HUGGINGFACE_HUB_CACHE), else $HF_HOME/hub, with
 * HF_HOME defaulting to $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface;
 * HF_ENDPOINT; HF_TOKEN; HF_HUB_OFFLINE (TRANSFORMERS_OFFLINE as transformers reads it);
 * HF_HUB_ETAG_TIMEOUT and HF_HUB_DOWNLOAD_TIMEOUT in seconds.
 */
export function hubSettingsFromEnv(env: Environment = process.env): HubSettings {
  const home = expandUser(env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface'));
  return {
    cacheDir: expandUser(env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE ?? join(home, 'hub')),
    endpoint: env.HF_ENDPOINT ?? DEFAULT_ENDPOINT,
    token: env.HF_TOKEN || undefined,
    offline: envTrue(env.HF_HUB_OFFLINE) || envTrue(env.TRANSFORMERS_OFFLINE),
    metadataTimeoutMs: envSeconds(env.HF_HUB_ETAG_TIMEOUT, 'HF_HUB_ETAG_TIMEOUT'),
    downloadTimeoutMs: envSeconds(env.HF_HUB_DOWNLOAD_TIMEOUT, 'HF_HUB_DOWNLOAD_TIMEOUT'),
  };
}

export interface ResolveOptions {
  /** Branch, tag or commit sha; default "main". */
  readonly revision?: string;
  readonly cacheDir?: string;
  readonly endpoint?: string;
  readonly token?: string;
  /** Never touch the network; use the cache or fail with OfflineError. */
  readonly offline?: boolean;
  /** Fetch exactly these files instead of the automatic choice (config, tokenizer, safetensors weights). */
  readonly files?: readonly string[];
  /** Refuse a model without safetensors weights (default true); `glassformer info` passes false. */
  readonly requireWeights?: boolean;
  readonly onProgress?: ProgressCallback;
  readonly fetcher?: Fetcher;
  /** Where unset options come from; default process.env. */
  readonly env?: Environment;
  readonly lock?: LockOptions;
  /** Attempts per file when the connection drops (default 5). */
  readonly attempts?: number;
  /** Cut and resume a transfer after this long without data (default HF_HUB_DOWNLOAD_TIMEOUT, 10 s). */
  readonly idleTimeoutMs?: number;
  /**
   * Fetch everything but the safetensors weights (an index is still fetched);
   * `ResolvedModel.remoteWeights` names them. `glassformer info` reads their
   * headers with range requests instead of downloading gigabytes.
   */
  readonly leaveWeightsRemote?: boolean;
}

/** Where a model was found, and for a Hub model the commit and the weights left on the Hub. */
export interface ResolvedModel {
  readonly path: string;
  /** The Hub id, or the folder for a local model. */
  readonly modelId: string;
  /** The commit of a Hub or cache snapshot. */
  readonly commit?: string;
  /** Weight files not downloaded (`leaveWeightsRemote`), to be read through `client`. */
  readonly remoteWeights: readonly string[];
  readonly client?: HubClient;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

function looksLikePath(text: string): boolean {
  return /^(\/|\.{1,2}(\/|$)|~)/.test(text) || text.includes('\\') || /^[A-Za-z]:/.test(text);
}

/** A local folder, a Python cache folder or a Hub id → a folder with the model's files. */
export async function resolveModel(idOrPath: string, options: ResolveOptions = {}): Promise<string> {
  return (await resolveModelDetailed(idOrPath, options)).path;
}

/** `resolveModel`, also telling the commit and which weights were left on the Hub. */
export async function resolveModelDetailed(idOrPath: string, options: ResolveOptions = {}): Promise<ResolvedModel> {
  if (await isDirectory(idOrPath)) {
    const folder = resolve(idOrPath);
    if (basename(folder).startsWith('models--') && (await isDirectory(join(folder, 'snapshots')))) {
      return resolveCacheFolder(folder, options);
    }
    if (options.revision !== undefined && options.revision !== 'main') {
      throw new UnsupportedError(`${folder}: a plain folder has no revisions; --revision ${options.revision} applies to Hub ids and models--org--name cache folders`);
    }
    await checkFolder(folder, folder, await listFolder(folder), options, false);
    return { path: folder, modelId: folder, remoteWeights: [] };
  }
  if (looksLikePath(idOrPath) || !isModelId(idOrPath)) {
    throw new EntryNotFoundError(
      `${idOrPath}: no such folder, and not a Hub model id (an id looks like "org/name", e.g. "sentence-transformers/all-MiniLM-L6-v2")`,
      { modelId: idOrPath },
    );
  }
  return resolveHubModel(idOrPath, options);
}

/** `models--org--name` given directly: the snapshot its ref (or the commit given as revision) names. */
async function resolveCacheFolder(folder: string, options: ResolveOptions): Promise<ResolvedModel> {
  const modelId = basename(folder).slice('models--'.length).split('--').join('/');
  const repo = new RepoCache(join(folder, '..'), modelId);
  return snapshotFromCache(repo, options.revision ?? 'main', options, 'this cache folder');
}

/**
 * The names selection looks at: the folder's files and those of
 * sentence-transformers module folders (`1_Pooling/`); not a recursive walk,
 * since a folder may also hold a .git history or checkpoints of a training run.
 */
async function listFolder(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(root, { withFileTypes: true })) {
    if (!entry.isDirectory()) out.push(entry.name);
    else if (/^\d+_/.test(entry.name)) for (const inner of await readdir(join(root, entry.name))) out.push(`${entry.name}/${inner}`);
  }
  return out.sort();
}

/** A file that can be read: a snapshot symlink whose blob was deleted is as good as absent. */
async function isReadable(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

/**
 * The files a folder must hold: config.json, then the weights (and every
 * shard an index names). In the cache (`inCache`) a missing file is an
 * OfflineError telling how to fetch it.
 */
async function checkFolder(modelId: string, folder: string, names: readonly string[], options: ResolveOptions, inCache: boolean): Promise<void> {
  const missing = (file: string): EntryNotFoundError => (inCache ? offlineMissing(modelId, folder, file) : folderMissing(modelId, folder, file));
  const require = async (file: string): Promise<void> => {
    if (!(await isReadable(join(folder, ...file.split('/'))))) throw missing(file);
  };
  if (options.files) {
    for (const file of explicitFiles(modelId, options.files)) await require(file);
    return;
  }
  let selection: FileSelection;
  try {
    selection = selectModelFiles(names, { modelId, requireWeights: options.requireWeights });
  } catch (error) {
    if (inCache && error instanceof EntryNotFoundError) throw missing(error.file ?? SAFETENSORS_WEIGHTS);
    throw error;
  }
  await require('config.json');
  if (selection.files.includes(SAFETENSORS_WEIGHTS)) await require(SAFETENSORS_WEIGHTS);
  if (selection.weightIndex) {
    const indexPath = join(folder, selection.weightIndex);
    for (const shard of shardsOfIndex(await readFile(indexPath, 'utf8'), indexPath)) await require(shard);
  }
}

/** The `files` option: plain relative names, and never a pickle. */
function explicitFiles(modelId: string, files: readonly string[]): string[] {
  const pickles = files.filter((f) => /\.(bin|pt|pth|ckpt)$/.test(f));
  if (pickles.length > 0) throw pickleError(modelId, pickles);
  return files.map((f) => checkRepoFileName(f, 'the files option'));
}

function folderMissing(modelId: string, folder: string, file: string): EntryNotFoundError {
  return new EntryNotFoundError(`${folder}: the model needs ${file} but the folder has no such file`, { modelId, file });
}

function offlineMissing(modelId: string, folder: string, file: string): OfflineError {
  return new OfflineError(
    `${modelId}: ${file} is not in the cache (${folder}) and the Hub may not be contacted (offline). ` +
      `Run \`glassformer download ${modelId}\` while online, or unset HF_HUB_OFFLINE.`,
    { modelId, file },
  );
}

/** The snapshot of a revision from the cache alone; OfflineError names what is missing. */
async function snapshotFromCache(repo: RepoCache, revision: string, options: ResolveOptions, why: string): Promise<ResolvedModel> {
  const { modelId } = repo;
  const commit = isCommitHash(revision) ? revision : await repo.readRef(revision);
  if (commit === undefined) {
    throw new OfflineError(
      `${modelId}: revision "${revision}" is not in the cache (no ${repo.refPath(revision)}), and ${why} cannot ask the Hub. ` +
        `Run \`glassformer download ${modelId}${revision === 'main' ? '' : ` --revision ${revision}`}\` while online, or unset HF_HUB_OFFLINE.`,
      { modelId },
    );
  }
  const dir = repo.snapshotDir(commit);
  if (!(await isDirectory(dir))) {
    throw new OfflineError(
      `${modelId}: the cache has no snapshot ${dir} for revision "${revision}" (commit ${commit}); run \`glassformer download ${modelId}\` while online`,
      { modelId },
    );
  }
  await checkFolder(modelId, dir, await repo.listSnapshot(commit), options, true);
  return { path: dir, modelId, commit, remoteWeights: [] };
}

async function resolveHubModel(modelId: string, options: ResolveOptions): Promise<ResolvedModel> {
  const env = options.env ?? process.env;
  const settings = hubSettingsFromEnv(env);
  const repo = new RepoCache(options.cacheDir ?? settings.cacheDir, modelId);
  // A revision names a file under refs/ (`refs/pr/1` → refs/refs/pr/1, as in Python): it must stay there.
  const revision = checkRepoFileName(options.revision ?? 'main', 'the revision');
  if (options.offline ?? settings.offline) return snapshotFromCache(repo, revision, options, 'offline mode (HF_HUB_OFFLINE)');
  const client = new HubClient({
    endpoint: options.endpoint ?? settings.endpoint,
    token: options.token ?? settings.token,
    fetcher: options.fetcher,
    timeoutMs: settings.metadataTimeoutMs,
  });
  let listing;
  try {
    listing = await client.listFiles(modelId, revision);
  } catch (error) {
    // As huggingface_hub: when the Hub cannot answer, a complete cached snapshot is used instead.
    if (!(error instanceof HubError) || error instanceof ModelNotFoundError) throw error;
    try {
      return await snapshotFromCache(repo, revision, options, 'the failed Hub request');
    } catch (cacheError) {
      throw cacheError instanceof OfflineError ? error : cacheError;
    }
  }
  const commit = listing.sha;
  if (revision !== commit) await repo.writeRef(revision, commit);
  const selection: FileSelection = options.files
    ? { files: explicitFiles(modelId, options.files) }
    : selectModelFiles(listing.files, { modelId, requireWeights: options.requireWeights });
  const fetchOne = async (file: string): Promise<void> => {
    if (await repo.hasFile(commit, file)) return;
    let metadata;
    try {
      metadata = await client.fileMetadata(modelId, commit, file);
    } catch (error) {
      // Remembered as huggingface_hub does, so either library can skip asking again.
      if (error instanceof EntryNotFoundError && error.status === 404) await repo.markMissing(commit, file);
      throw error;
    }
    const { onProgress, attempts, lock } = options;
    const idleTimeoutMs = options.idleTimeoutMs ?? settings.downloadTimeoutMs;
    await repo.fetchFile(commit, { client, modelId, revision: commit, file, metadata, onProgress, attempts, lock, idleTimeoutMs });
  };
  const isWeights = (file: string): boolean => file === SAFETENSORS_WEIGHTS && options.files === undefined;
  const remoteWeights: string[] = [];
  const fetchWeights = async (file: string): Promise<void> => {
    if (options.leaveWeightsRemote && !(await repo.hasFile(commit, file))) remoteWeights.push(file);
    else await fetchOne(file);
  };
  for (const file of selection.files) await (isWeights(file) ? fetchWeights(file) : fetchOne(file));
  if (selection.weightIndex) {
    const indexPath = repo.pointerPath(commit, SAFETENSORS_INDEX);
    const shards = shardsOfIndex(await readFile(indexPath, 'utf8'), `${modelId}/${SAFETENSORS_INDEX}`);
    const listed = new Set(listing.files);
    for (const shard of shards) {
      if (!listed.has(shard)) {
        throw new EntryNotFoundError(`${modelId}: ${SAFETENSORS_INDEX} names the shard ${shard}, which the repository does not have`, { modelId, file: shard });
      }
      await fetchWeights(shard);
    }
  }
  return { path: repo.snapshotDir(commit), modelId, commit, remoteWeights, client };
}
