/**
 * The Hugging Face Hub over HTTP: the file layout
 * `{endpoint}/{id}/resolve/{revision}/{file}`, the model-info API and the
 * headers `huggingface_hub` reads (v0.26, `file_download.py`). Only `fetch`
 * and `URL` are used, so this file runs in a browser as well as in Node; the
 * network itself is behind the `Fetcher` seam.
 */
import { EntryNotFoundError, GatedModelError, HubError, ModelNotFoundError } from '../errors.js';
import { checkRepoFileName } from './files.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

export interface FetchInit {
  readonly method: 'GET' | 'HEAD';
  readonly headers: Readonly<Record<string, string>>;
  /** 'manual' returns a 3xx response itself, so its Location and X-Linked-* headers can be read. */
  readonly redirect: 'follow' | 'manual';
  readonly signal?: AbortSignal;
}

/** The network seam: the global `fetch` fits it; tests and browsers may pass their own. */
export type Fetcher = (url: string, init: FetchInit) => Promise<Response>;

export interface HubClientOptions {
  /** Default https://huggingface.co (the HF_ENDPOINT environment variable sets it on Node). */
  readonly endpoint?: string;
  /** Sent as `Authorization: Bearer` to the endpoint only, never to the CDN a large file redirects to. */
  readonly token?: string;
  readonly fetcher?: Fetcher;
  /** Give up on a metadata request (HEAD, API) after this long; huggingface_hub waits 10 s. */
  readonly timeoutMs?: number;
}

/** What a HEAD on `resolve/` says about one file. */
export interface FileMetadata {
  /** The commit the revision points to (`X-Repo-Commit`). */
  readonly commit: string;
  /** The blob name in the cache: the sha256 for LFS files, the git blob sha1 otherwise. */
  readonly etag: string;
  /** Bytes, from `X-Linked-Size` (LFS) or `Content-Length`. */
  readonly size: number;
  /** Where to GET the bytes: the CDN URL of an LFS redirect, or the resolve URL itself. */
  readonly location: string;
}

export interface RepoListing {
  /** The commit sha the revision points to. */
  readonly sha: string;
  /** Every file in the repository at that commit (`siblings[].rfilename`). */
  readonly files: readonly string[];
}

const COMMIT = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const SAFE_ETAG = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

export function isCommitHash(revision: string): boolean {
  return COMMIT.test(revision);
}

/** An LFS etag is the sha256 of the file's bytes, which a download can be checked against. */
export function isSha256(etag: string): boolean {
  return SHA256.test(etag);
}

/** `W/"abc"` and `"abc"` → `abc`, as huggingface_hub's `_normalize_etag`. */
export function normalizeEtag(etag: string | null): string | undefined {
  if (!etag) return undefined;
  return etag.replace(/^W\//, '').replace(/^"|"$/g, '');
}

/** A Hub model id: `name` or `org/name`, letters, digits, `-`, `_` and `.`. */
const MODEL_ID = /^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?$/;

export function isModelId(text: string): boolean {
  return MODEL_ID.test(text) && !text.includes('..') && !text.endsWith('.');
}

function encodePath(file: string): string {
  return file.split('/').map(encodeURIComponent).join('/');
}

function describeCause(error: unknown): string {
  const e = error as { message?: string; cause?: { code?: string; message?: string } };
  const inner = e?.cause?.code ?? e?.cause?.message;
  return inner ? `${e.message} (${inner})` : String(e?.message ?? error);
}

/** The file URL of huggingface_hub's `hf_hub_url`. */
export function resolveUrl(endpoint: string, modelId: string, revision: string, file: string): string {
  return `${endpoint.replace(/\/+$/, '')}/${modelId}/resolve/${encodeURIComponent(revision)}/${encodePath(file)}`;
}

export interface Where {
  readonly modelId: string;
  readonly revision: string;
  readonly file?: string;
}

/**
 * The typed error for a failed response. The Hub names the case in
 * `X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo);
 * without it the status decides.
 */
export function errorForResponse(response: Response, where: Where, endpoint: string): HubError {
  const { modelId, revision, file } = where;
  const status = response.status;
  const code = response.headers.get('x-error-code');
  const serverMessage = response.headers.get('x-error-message');
  const said = serverMessage ? ` The server said: ${serverMessage}` : '';
  const context = { modelId, file, status };
  const what = file ? `${modelId}: ${file} (revision ${revision})` : `${modelId} (revision ${revision})`;
  const page = `${endpoint.replace(/\/+$/, '')}/${modelId}`;
  if (code === 'GatedRepo' || status === 401 || status === 403) {
    const reason =
      status === 403
        ? 'access denied (HTTP 403): the token is valid but has no access to this model'
        : `authentication required (HTTP ${status}): the model is gated or private, or does not exist`;
    return new GatedModelError(
      `${what}: ${reason}. Set HF_TOKEN to a token with read access (https://huggingface.co/settings/tokens) and ` +
        `accept the model's licence on ${page}; check the spelling of the id.${said}`,
      context,
    );
  }
  if (code === 'EntryNotFound' || (status === 404 && file !== undefined && code !== 'RepoNotFound' && code !== 'RevisionNotFound')) {
    return new EntryNotFoundError(`${what}: the repository has no such file (HTTP 404).${said}`, context);
  }
  if (code === 'RevisionNotFound') {
    return new ModelNotFoundError(
      `${modelId}: revision "${revision}" not found (HTTP ${status}); pass a branch, a tag or a commit sha that exists.${said}`,
      context,
    );
  }
  if (code === 'RepoNotFound' || status === 404) {
    return new ModelNotFoundError(
      `${modelId}: no such model on ${endpoint} (HTTP ${status}); check the id (org/name), or set HF_TOKEN if it is private.${said}`,
      context,
    );
  }
  return new HubError(`${what}: the Hub answered HTTP ${status} ${response.statusText}; try again later.${said}`, context);
}

export class HubClient {
  readonly endpoint: string;
  private readonly token?: string;
  private readonly fetcher: Fetcher;
  private readonly timeoutMs: number;

  constructor(options: HubClientOptions = {}) {
    this.endpoint = (options.endpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
    this.token = options.token;
    this.fetcher = options.fetcher ?? ((url, init) => fetch(url, init));
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  fileUrl(modelId: string, revision: string, file: string): string {
    return resolveUrl(this.endpoint, modelId, revision, file);
  }

  /** The token goes only to the endpoint's own origin: a signed CDN URL must not receive it. */
  headersFor(url: string, extra: Record<string, string> = {}): Record<string, string> {
    const headers: Record<string, string> = { 'user-agent': 'glassformer/0.1.0', ...extra };
    if (this.token && new URL(url).origin === new URL(this.endpoint).origin) headers.authorization = `Bearer ${this.token}`;
    return headers;
  }

  private async send(url: string, init: FetchInit, where: Where): Promise<Response> {
    try {
      return await this.fetcher(url, init);
    } catch (error) {
      const target = where.file ? `${where.modelId}: ${where.file}` : where.modelId;
      throw new HubError(`${target}: could not reach ${url}: ${describeCause(error)}. Check the connection (and HF_ENDPOINT).`, {
        modelId: where.modelId,
        file: where.file,
        cause: error,
      });
    }
  }

  /** `GET /api/models/{id}/revision/{revision}`: the commit sha and the file list. */
  async listFiles(modelId: string, revision: string): Promise<RepoListing> {
    const url = `${this.endpoint}/api/models/${modelId}/revision/${encodeURIComponent(revision)}`;
    const where = { modelId, revision };
    const response = await this.send(
      url,
      { method: 'GET', headers: this.headersFor(url, { accept: 'application/json' }), redirect: 'follow', signal: AbortSignal.timeout(this.timeoutMs) },
      where,
    );
    if (!response.ok) throw errorForResponse(response, where, this.endpoint);
    let body: unknown;
    try {
      body = await response.json();
    } catch (error) {
      throw new HubError(`${modelId}: the model-info API at ${url} did not return JSON (${describeCause(error)})`, { modelId, status: response.status });
    }
    const { sha, siblings } = (body ?? {}) as { sha?: unknown; siblings?: unknown };
    if (typeof sha !== 'string' || !isCommitHash(sha) || !Array.isArray(siblings)) {
      throw new HubError(`${modelId}: the model-info API at ${url} returned no commit "sha" and "siblings" list; is HF_ENDPOINT a Hub?`, {
        modelId,
        status: response.status,
      });
    }
    const files = siblings.map((s: unknown) => {
      const name = (s as { rfilename?: unknown } | null)?.rfilename;
      if (typeof name !== 'string') throw new HubError(`${modelId}: the model-info API listed a sibling without "rfilename"`, { modelId });
      return checkRepoFileName(name, url);
    });
    return { sha, files };
  }

  /**
   * HEAD the file without following the redirect of an LFS file (its 302
   * carries X-Linked-Etag and X-Linked-Size); relative redirects, as for a
   * renamed repository, are followed, as huggingface_hub does.
   */
  async fileMetadata(modelId: string, revision: string, file: string): Promise<FileMetadata> {
    const where = { modelId, revision, file };
    let url = this.fileUrl(modelId, revision, file);
    for (let hops = 0; ; hops++) {
      const response = await this.send(
        url,
        {
          method: 'HEAD',
          // identity: the size must be the file's, not that of a compressed transfer.
          headers: this.headersFor(url, { 'accept-encoding': 'identity' }),
          redirect: 'manual',
          signal: AbortSignal.timeout(this.timeoutMs),
        },
        where,
      );
      const location = response.headers.get('location');
      const isRedirect = response.status >= 300 && response.status < 400 && location !== null;
      if (isRedirect && !/^[a-z][a-z0-9+.-]*:\/\//i.test(location) && hops < 5) {
        url = new URL(location, url).toString();
        continue;
      }
      if (!isRedirect && !response.ok) throw errorForResponse(response, where, this.endpoint);
      return this.metadataFrom(response, url, where, isRedirect ? new URL(location as string, url).toString() : url);
    }
  }

  private metadataFrom(response: Response, url: string, where: Where, location: string): FileMetadata {
    const { modelId, file } = where;
    const h = response.headers;
    const commit = h.get('x-repo-commit');
    const etag = normalizeEtag(h.get('x-linked-etag') ?? h.get('etag'));
    const sizeText = h.get('x-linked-size') ?? h.get('content-length');
    const size = sizeText === null ? NaN : Number(sizeText);
    const missing = [!commit && 'X-Repo-Commit', !etag && 'ETag', !Number.isSafeInteger(size) && 'Content-Length'].filter(Boolean);
    if (missing.length > 0) {
      throw new HubError(
        `${modelId}: ${file}: the response to HEAD ${url} has no ${missing.join(', ')} header; the server does not look like the ` +
          'Hugging Face Hub (check HF_ENDPOINT, proxies and firewalls)',
        { modelId, file, status: response.status },
      );
    }
    // The etag becomes a file name in blobs/: it must not be able to name another place.
    if (!SAFE_ETAG.test(etag as string)) {
      throw new HubError(`${modelId}: ${file}: the ETag ${JSON.stringify(etag)} from ${url} is not a plain hash; refusing to use it as a cache file name`, {
        modelId,
        file,
        status: response.status,
      });
    }
    return { commit: commit as string, etag: etag as string, size, location };
  }

  /** Exactly `length` bytes at `offset` of a file, with a `Range: bytes=a-b` request (206 expected). */
  async readRange(where: Where & { readonly file: string }, url: string, offset: number, length: number): Promise<Uint8Array> {
    if (length === 0) return new Uint8Array(0);
    const range = `bytes=${offset}-${offset + length - 1}`;
    const response = await this.send(
      url,
      { method: 'GET', headers: this.headersFor(url, { 'accept-encoding': 'identity', range }), redirect: 'follow', signal: AbortSignal.timeout(this.timeoutMs) },
      where,
    );
    if (!response.ok) throw errorForResponse(response, where, this.endpoint);
    if (response.status !== 206) {
      await response.body?.cancel();
      throw new HubError(`${where.modelId}: ${where.file}: the server ignored the range request (${range}) and answered ${response.status}`, {
        modelId: where.modelId,
        file: where.file,
        status: response.status,
      });
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (bytes.length !== length) {
      throw new HubError(`${where.modelId}: ${where.file}: asked for ${length} bytes (${range}), received ${bytes.length}`, {
        modelId: where.modelId,
        file: where.file,
        status: response.status,
      });
    }
    return bytes;
  }

  /**
   * GET the bytes from `offset` on (a `Range` request when resuming). The
   * caller checks the status: 200 (whole file), 206 (the range) or 416.
   */
  async download(where: Where & { readonly file: string }, url: string, offset: number, signal?: AbortSignal): Promise<Response> {
    const extra: Record<string, string> = { 'accept-encoding': 'identity' };
    if (offset > 0) extra.range = `bytes=${offset}-`;
    const response = await this.send(url, { method: 'GET', headers: this.headersFor(url, extra), redirect: 'follow', signal }, where);
    if (!response.ok && response.status !== 416) throw errorForResponse(response, where, this.endpoint);
    return response;
  }
}
