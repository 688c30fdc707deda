/**
 * The Hugging Face cache on disk (Node only), laid out exactly as Python's
 * `huggingface_hub` lays it out, so a model downloaded by either is used by both:
 *
 *   {cache}/models--{org}--{name}/
 *     blobs/{etag}                      the bytes, named by sha256 (LFS) or git blob sha1
 *     blobs/{etag}.incomplete           a download in progress; resumed with a Range request
 *     refs/{revision}                   the commit sha a branch or tag pointed to
 *     snapshots/{commit}/{file}         relative symlink → ../../blobs/{etag}
 *     .no_exist/{commit}/{file}         empty marker: the file is known not to exist
 *   {cache}/.locks/models--{org}--{name}/{etag}.glassformer.lock
 *
 * A blob appears only complete and checked: bytes go to `.incomplete`, are
 * verified against the announced size and sha256, and are renamed into place.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, open, readdir, readFile, readlink, rename, rm, stat, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { HubError, IntegrityError } from '../errors.js';
import { isSha256, type FileMetadata, type HubClient } from './client.js';

/** Progress of one file: `bytes` of `total` so far (the CLI draws a bar from it). */
export interface DownloadProgress {
  readonly modelId: string;
  readonly file: string;
  readonly bytes: number;
  readonly total: number;
}

export type ProgressCallback = (progress: DownloadProgress) => void;

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR') return false;
    throw error;
  }
}

async function sizeOrZero(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return 0;
    throw error;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

/** Write a small file so readers see the old content or the new, never a torn one. */
async function writeFileAtomic(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temp, text);
  await rename(temp, path);
}

/** `models--org--name`, huggingface_hub's `repo_folder_name` for a model repository. */
export function repoFolderName(modelId: string): string {
  return `models--${modelId.split('/').join('--')}`;
}

export interface LockOptions {
  /** A lock not refreshed for this long is abandoned (its holder died without cleaning up). */
  readonly staleMs?: number;
  readonly pollMs?: number;
}

/**
 * An exclusive lock file created with O_EXCL. The holder writes its host, pid
 * and a random token, and refreshes the file's mtime while it works; a waiter
 * breaks the lock when the holder's process is gone (same host) or the lock
 * went stale. glassformer's lock has its own name: Python's filelock leaves
 * its `.lock` files behind after use, so their existence proves nothing.
 */
export class FileLock {
  private heartbeat?: ReturnType<typeof setInterval>;

  private constructor(
    readonly path: string,
    private readonly token: string,
  ) {}

  /** Take the lock, or return undefined as soon as `done()` reports the work finished by someone else. */
  static async acquire(path: string, done: () => Promise<boolean>, options: LockOptions = {}): Promise<FileLock | undefined> {
    const staleMs = options.staleMs ?? 60_000;
    const pollMs = options.pollMs ?? 100;
    await mkdir(dirname(path), { recursive: true });
    for (;;) {
      if (await done()) return undefined;
      const token = randomBytes(8).toString('hex');
      try {
        const handle = await open(path, 'wx');
        try {
          await handle.writeFile(JSON.stringify({ host: hostname(), pid: process.pid, token }));
        } finally {
          await handle.close();
        }
        const lock = new FileLock(path, token);
        lock.heartbeat = setInterval(() => void utimes(path, new Date(), new Date()).catch(() => undefined), Math.max(staleMs / 4, 10));
        lock.heartbeat.unref();
        return lock;
      } catch (error) {
        if (errorCode(error) !== 'EEXIST') throw error;
      }
      await FileLock.breakIfStale(path, staleMs);
      await sleep(pollMs);
    }
  }

  private static async breakIfStale(path: string, staleMs: number): Promise<void> {
    let text: string;
    let mtime: number;
    try {
      [text, mtime] = await Promise.all([readFile(path, 'utf8'), stat(path).then((s) => s.mtimeMs)]);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return;
      throw error;
    }
    let holder: { host?: string; pid?: number; token?: string } = {};
    try {
      holder = JSON.parse(text) as typeof holder;
    } catch {
      // Being written this instant, or damaged: only its age can tell.
    }
    const dead = holder.host === hostname() && typeof holder.pid === 'number' && !processAlive(holder.pid);
    if (!dead && Date.now() - mtime < staleMs) return;
    // Rename first: of several waiters breaking the same lock, exactly one gets it.
    const aside = `${path}.${randomBytes(6).toString('hex')}.stale`;
    try {
      await rename(path, aside);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return;
      throw error;
    }
    const moved = await readFile(aside, 'utf8').catch(() => '');
    if (moved !== text) {
      // Someone broke the stale lock and took a fresh one before our rename: give it back.
      await link(aside, path).catch(() => undefined);
    }
    await unlink(aside).catch(() => undefined);
  }

  async release(): Promise<void> {
    clearInterval(this.heartbeat);
    const text = await readFile(this.path, 'utf8').catch(() => '');
    if (text.includes(this.token)) await unlink(this.path).catch(() => undefined);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errorCode(error) === 'EPERM';
  }
}

export interface FetchBlobOptions {
  readonly client: HubClient;
  readonly modelId: string;
  readonly revision: string;
  readonly file: string;
  readonly metadata: FileMetadata;
  readonly onProgress?: ProgressCallback;
  /** Attempts at the transfer, each resuming where the last one stopped (default 5, as huggingface_hub). */
  readonly attempts?: number;
  /** Abandon (and resume) a transfer when no byte arrives for this long; huggingface_hub's HF_HUB_DOWNLOAD_TIMEOUT, 10 s. */
  readonly idleTimeoutMs?: number;
  readonly lock?: LockOptions;
}

/** One model's folder in the cache. */
export class RepoCache {
  readonly folder: string;

  constructor(
    readonly cacheDir: string,
    readonly modelId: string,
  ) {
    this.folder = join(cacheDir, repoFolderName(modelId));
  }

  refPath(revision: string): string {
    return join(this.folder, 'refs', ...revision.split('/'));
  }

  snapshotDir(commit: string): string {
    return join(this.folder, 'snapshots', commit);
  }

  pointerPath(commit: string, file: string): string {
    return join(this.snapshotDir(commit), ...file.split('/'));
  }

  blobPath(etag: string): string {
    return join(this.folder, 'blobs', etag);
  }

  lockPath(etag: string): string {
    return join(this.cacheDir, '.locks', repoFolderName(this.modelId), `${etag}.glassformer.lock`);
  }

  /** The commit a branch or tag pointed to when it was last resolved online. */
  async readRef(revision: string): Promise<string | undefined> {
    try {
      return (await readFile(this.refPath(revision), 'utf8')).trim();
    } catch (error) {
      if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR' || errorCode(error) === 'EISDIR') return undefined;
      throw error;
    }
  }

  async writeRef(revision: string, commit: string): Promise<void> {
    if ((await this.readRef(revision)) !== commit) await writeFileAtomic(this.refPath(revision), commit);
  }

  /** True when the snapshot has the file and its blob (a symlink into a deleted blob does not count). */
  hasFile(commit: string, file: string): Promise<boolean> {
    return exists(this.pointerPath(commit, file));
  }

  /** Record that the file does not exist at this commit, as huggingface_hub does for a 404. */
  async markMissing(commit: string, file: string): Promise<void> {
    const path = join(this.folder, '.no_exist', commit, ...file.split('/'));
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, '');
  }

  /** Files in a snapshot, `/`-separated, the ones whose blob is missing left out. */
  async listSnapshot(commit: string): Promise<string[]> {
    const root = this.snapshotDir(commit);
    const out: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path);
        else if (await exists(path)) out.push(relative(root, path).split(sep).join('/'));
      }
    };
    await walk(root);
    return out.sort();
  }

  /** Point snapshots/{commit}/{file} at the blob with a relative symlink (a copy where symlinks are not allowed). */
  async link(commit: string, file: string, etag: string): Promise<void> {
    const pointer = this.pointerPath(commit, file);
    const blob = this.blobPath(etag);
    await mkdir(dirname(pointer), { recursive: true });
    const target = relative(dirname(pointer), blob);
    const current = await readlink(pointer).catch(() => undefined);
    if (current === target) return;
    const temp = `${pointer}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await symlink(target, temp);
    } catch (error) {
      if (errorCode(error) !== 'EPERM') throw error;
      await copyFile(blob, temp);
    }
    await rename(temp, pointer);
  }

  /**
   * Make sure blobs/{etag} holds the file and the snapshot points at it.
   * Concurrent callers (threads of one process or several processes) share
   * one download through the lock; the others wait and link the result.
   */
  async fetchFile(commit: string, options: FetchBlobOptions): Promise<string> {
    const { metadata, file } = options;
    const blob = this.blobPath(metadata.etag);
    await mkdir(dirname(blob), { recursive: true });
    const lock = await FileLock.acquire(this.lockPath(metadata.etag), () => exists(blob), options.lock);
    if (lock) {
      try {
        if (!(await exists(blob))) await this.downloadBlob(blob, options);
      } finally {
        await lock.release();
      }
    }
    await this.link(commit, file, metadata.etag);
    return this.pointerPath(commit, file);
  }

  private async downloadBlob(blob: string, options: FetchBlobOptions): Promise<void> {
    const { modelId, file, metadata } = options;
    const incomplete = `${blob}.incomplete`;
    const attempts = options.attempts ?? 5;
    const digest: RunningHash = { hash: createHash('sha256'), bytes: 0 };
    let lastError: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        await this.transfer(incomplete, digest, options);
        lastError = undefined;
        break;
      } catch (error) {
        // Only a broken connection (no HTTP status) is worth another try; a refusal or a bad file is not.
        if (!(error instanceof HubError) || error.status !== undefined) throw error;
        lastError = error;
        if (attempt < attempts) await sleep(Math.min(100 * 2 ** attempt, 2000));
      }
    }
    if (lastError !== undefined) {
      const done = await sizeOrZero(incomplete);
      throw new HubError(
        `${modelId}: ${file}: the download broke off ${attempts} times (${done} of ${metadata.size} bytes kept in ${incomplete}); ` +
          `the next attempt resumes from there. Last error: ${(lastError as Error).message}`,
        { modelId, file, cause: lastError },
      );
    }
    await this.verify(incomplete, digest, options);
    await rename(incomplete, blob);
  }

  /**
   * Append the missing bytes to `.incomplete`, resuming with `Range: bytes=N-`,
   * and feed them to the running sha256 as they arrive.
   */
  private async transfer(incomplete: string, digest: RunningHash, options: FetchBlobOptions): Promise<void> {
    const { modelId, file, metadata, onProgress } = options;
    let have = await sizeOrZero(incomplete);
    if (have > metadata.size) {
      await rm(incomplete, { force: true });
      have = 0;
    }
    // The bytes already on disk (from an earlier attempt or an earlier run) enter the hash first.
    if (digest.bytes !== have) Object.assign(digest, await hashPrefix(incomplete, have));
    const report = (bytes: number): void => onProgress?.({ modelId, file, bytes, total: metadata.size });
    report(have);
    if (have === metadata.size) return;
    const idle = new IdleTimer(options.idleTimeoutMs ?? 10_000);
    try {
      await this.receive(incomplete, digest, have, idle, options);
    } finally {
      idle.stop();
    }
  }

  private async receive(incomplete: string, digest: RunningHash, from: number, idle: IdleTimer, options: FetchBlobOptions): Promise<void> {
    const { modelId, file, metadata, onProgress } = options;
    const report = (bytes: number): void => onProgress?.({ modelId, file, bytes, total: metadata.size });
    let have = from;
    let response = await this.open(options, have, idle.signal);
    const resumed = response.status === 206 && (response.headers.get('content-range') ?? '').startsWith(`bytes ${have}-`);
    if (have > 0 && !resumed) {
      // The server ignored or refused the range: start the file over.
      await response.body?.cancel();
      await rm(incomplete, { force: true });
      have = 0;
      Object.assign(digest, { hash: createHash('sha256'), bytes: 0 });
      report(0);
      response = await this.open(options, 0, idle.signal);
    }
    if (response.status !== 200 && response.status !== 206) {
      throw new HubError(`${modelId}: ${file}: unexpected HTTP ${response.status} for a download from offset ${have}`, {
        modelId,
        file,
        status: response.status,
      });
    }
    if (!response.body) {
      throw new HubError(`${modelId}: ${file}: the response to GET ${metadata.location} has no body`, { modelId, file, status: response.status });
    }
    const handle = await open(incomplete, 'a');
    const reader = response.body.getReader();
    try {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (error) {
          throw new HubError(`${modelId}: ${file}: the connection dropped after ${have} of ${metadata.size} bytes (${describe(error)})`, {
            modelId,
            file,
            cause: error,
          });
        }
        if (chunk.done) break;
        idle.restart();
        let written = 0;
        while (written < chunk.value.length) written += (await handle.write(chunk.value, written)).bytesWritten;
        digest.hash.update(chunk.value);
        digest.bytes += chunk.value.length;
        have += chunk.value.length;
        report(Math.min(have, metadata.size));
        if (have > metadata.size) break;
      }
      await handle.sync();
    } finally {
      await handle.close();
      reader.releaseLock();
    }
  }

  /**
   * GET from the location the HEAD gave. A signed CDN URL expires (a resume
   * hours later gets 403); the resolve URL then redirects to a freshly signed one.
   */
  private async open(options: FetchBlobOptions, offset: number, signal: AbortSignal): Promise<Response> {
    const { client, modelId, revision, file, metadata } = options;
    const where = { modelId, revision, file };
    const resolveUrl = client.fileUrl(modelId, revision, file);
    try {
      return await client.download(where, metadata.location, offset, signal);
    } catch (error) {
      const expired = error instanceof HubError && (error.status === 401 || error.status === 403 || error.status === 410);
      if (!expired || metadata.location === resolveUrl) throw error;
      return client.download(where, resolveUrl, offset, signal);
    }
  }

  /** The whole file against the announced size and, for LFS files, the sha256 that names the blob. */
  private async verify(incomplete: string, digest: RunningHash, options: FetchBlobOptions): Promise<void> {
    const { modelId, file, metadata } = options;
    const size = await sizeOrZero(incomplete);
    if (size !== metadata.size) {
      await rm(incomplete, { force: true });
      throw new IntegrityError(
        `${modelId}: ${file}: downloaded ${size} bytes but the server announced ${metadata.size}; the partial file was deleted, try again`,
        { modelId, file },
      );
    }
    if (!isSha256(metadata.etag)) return;
    const actual = digest.bytes === size ? digest.hash.digest('hex') : await sha256File(incomplete);
    if (actual !== metadata.etag) {
      await rm(incomplete, { force: true });
      throw new IntegrityError(
        `${modelId}: ${file}: sha256 of the downloaded bytes is ${actual} but the Hub says ${metadata.etag}; ` +
          'the download was deleted. Try again; if it persists, the server or a proxy is corrupting the file.',
        { modelId, file },
      );
    }
  }
}

/** Aborts its signal when `restart` has not been called for `ms`: a stalled transfer is cut and resumed. */
class IdleTimer {
  private readonly controller = new AbortController();
  private timer: ReturnType<typeof setTimeout>;

  constructor(private readonly ms: number) {
    this.timer = this.arm();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  private arm(): ReturnType<typeof setTimeout> {
    return setTimeout(() => this.controller.abort(new Error(`no data arrived for ${this.ms} ms`)), this.ms);
  }

  restart(): void {
    clearTimeout(this.timer);
    this.timer = this.arm();
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}

/** A sha256 over the first `bytes` bytes of a file, still open for more. */
interface RunningHash {
  hash: Hash;
  bytes: number;
}

async function hashPrefix(path: string, bytes: number): Promise<RunningHash> {
  const hash = createHash('sha256');
  if (bytes > 0) for await (const chunk of createReadStream(path, { start: 0, end: bytes - 1 })) hash.update(chunk as Buffer);
  return { hash, bytes };
}

function describe(error: unknown): string {
  const e = error as { message?: string; cause?: { code?: string } };
  return e?.cause?.code ? `${e.message}: ${e.cause.code}` : String(e?.message ?? error);
}

export async function sha256File(path: string): Promise<string> {
  const hash: Hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
