/**
 * A miniature Hugging Face Hub for tests, on 127.0.0.1 only: the model-info
 * API, HEAD/GET on `/{id}/resolve/{revision}/{file}` with the headers the real
 * Hub sends, and a second server playing the CDN that LFS files (here: every
 * `.safetensors`) redirect to, with range requests and injectable faults.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { HF_TINY } from '../helpers/shared.js';

export function fixtureBytes(family: string, file: string): Buffer {
  return readFileSync(join(HF_TINY, family, file));
}

export const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
/** The id git gives a file's content: sha1 of "blob {size}\0" + bytes; the Hub's ETag for non-LFS files. */
export const gitBlobSha = (bytes: Uint8Array): string =>
  createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');

export interface FakeRepo {
  /** Commit sha of `main`. */
  readonly commit: string;
  readonly files: Record<string, Uint8Array>;
  /** Extra branches or tags → commit (same files). */
  readonly refs?: Record<string, string>;
  /** Needs `Authorization: Bearer {token}`. */
  readonly gatedToken?: string;
}

export interface LoggedRequest {
  readonly server: 'hub' | 'cdn';
  readonly method: string;
  readonly path: string;
  readonly range?: string;
  readonly authorization?: string;
}

export interface Faults {
  /** CDN: for this many GETs of the sha, send only `bytes` bytes and then destroy the socket. */
  drop?: { sha: string; bytes: number; times: number };
  /** CDN: serve these bytes (wrong content) instead of the blob with this sha. */
  corrupt?: { sha: string };
  /** CDN: for this many GETs of the sha, send `bytes` bytes and then nothing more, keeping the connection open. */
  stall?: { sha: string; bytes: number; times: number };
  /** CDN: answer this many GETs with 403, as an expired signed URL does. */
  expire?: { times: number };
  /** CDN: wait this long between chunks of 1 KiB, so concurrent downloads overlap. */
  slowMs?: number;
}

function isLfs(file: string): boolean {
  return file.endsWith('.safetensors');
}

function listen(server: Server): Promise<string> {
  return new Promise((done) => server.listen(0, '127.0.0.1', () => done(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((done) => server.close(() => done()));
}

export class FakeHub {
  readonly log: LoggedRequest[] = [];
  faults: Faults = {};
  endpoint = '';
  private cdnUrl = '';
  private readonly blobs = new Map<string, Uint8Array>();
  private readonly hub = createServer((req, res) => void this.serveHub(req, res));
  private readonly cdn = createServer((req, res) => void this.serveCdn(req, res));

  constructor(readonly repos: Record<string, FakeRepo>) {
    for (const repo of Object.values(repos)) for (const bytes of Object.values(repo.files)) this.blobs.set(sha256(bytes), bytes);
  }

  static async start(repos: Record<string, FakeRepo>): Promise<FakeHub> {
    const hub = new FakeHub(repos);
    hub.endpoint = await listen(hub.hub);
    hub.cdnUrl = await listen(hub.cdn);
    return hub;
  }

  async close(): Promise<void> {
    await Promise.all([close(this.hub), close(this.cdn)]);
  }

  /** Requests for one file (by its path suffix) on either server. */
  requests(filter: (r: LoggedRequest) => boolean): LoggedRequest[] {
    return this.log.filter(filter);
  }

  private record(server: 'hub' | 'cdn', req: IncomingMessage): void {
    this.log.push({
      server,
      method: req.method ?? '',
      path: decodeURIComponent(req.url ?? ''),
      range: req.headers.range,
      authorization: req.headers.authorization,
    });
  }

  private commitOf(repo: FakeRepo, revision: string): string | undefined {
    if (revision === 'main' || revision === repo.commit) return repo.commit;
    const refs = repo.refs ?? {};
    return refs[revision] ?? Object.values(refs).find((commit) => commit === revision);
  }

  private refuse(res: ServerResponse, status: number, code: string, message: string, commit?: string): void {
    const headers: Record<string, string> = { 'x-error-code': code, 'x-error-message': message, 'content-type': 'application/json' };
    if (commit) headers['x-repo-commit'] = commit;
    res.writeHead(status, headers).end(JSON.stringify({ error: message }));
  }

  private serveHub(req: IncomingMessage, res: ServerResponse): void {
    this.record('hub', req);
    const path = decodeURIComponent(new URL(req.url ?? '/', this.endpoint).pathname);
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(path);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const id = api?.[1] ?? resolve?.[1];
    const repo = id === undefined ? undefined : this.repos[id];
    if (!repo) return this.refuse(res, 404, 'RepoNotFound', 'Repository not found');
    if (repo.gatedToken && req.headers.authorization !== `Bearer ${repo.gatedToken}`) {
      return this.refuse(res, 401, 'GatedRepo', `Access to model ${id} is restricted. You must be authenticated to access it.`);
    }
    const revision = (api?.[2] ?? resolve?.[2]) as string;
    const commit = this.commitOf(repo, revision);
    if (!commit) return this.refuse(res, 404, 'RevisionNotFound', `Invalid rev id: ${revision}`);
    if (api) {
      const body = { id, sha: commit, siblings: Object.keys(repo.files).map((rfilename) => ({ rfilename })) };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      return;
    }
    const file = (resolve as RegExpExecArray)[3];
    const bytes = repo.files[file];
    if (!bytes) return this.refuse(res, 404, 'EntryNotFound', `${file} does not exist on "${revision}"`, commit);
    if (isLfs(file)) {
      const sha = sha256(bytes);
      res
        .writeHead(302, {
          location: `${this.cdnUrl}/cdn/${sha}?signature=abc`,
          'x-repo-commit': commit,
          'x-linked-etag': `"${sha}"`,
          'x-linked-size': String(bytes.length),
          // The ETag of the redirect itself is that of the LFS pointer file, not of the content.
          etag: `"${gitBlobSha(Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha}\n`))}"`,
        })
        .end();
      return;
    }
    res.writeHead(200, { 'x-repo-commit': commit, etag: `"${gitBlobSha(bytes)}"`, 'content-length': String(bytes.length) });
    res.end(req.method === 'HEAD' ? undefined : bytes);
  }

  private async serveCdn(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.record('cdn', req);
    const sha = /^\/cdn\/([0-9a-f]{64})/.exec(req.url ?? '')?.[1];
    const original = sha === undefined ? undefined : this.blobs.get(sha);
    if (!original || !sha) {
      res.writeHead(404).end();
      return;
    }
    if (this.faults.expire && this.faults.expire.times > 0) {
      this.faults.expire.times--;
      res.writeHead(403, { 'content-type': 'text/plain' }).end('Request has expired');
      return;
    }
    let bytes = original;
    if (this.faults.corrupt?.sha === sha) {
      bytes = Uint8Array.from(original);
      bytes[bytes.length >> 1] ^= 0xff;
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    const end = range && range[2] !== '' ? Math.min(Number(range[2]), bytes.length - 1) : bytes.length - 1;
    if (range && (start >= bytes.length || end < start)) {
      res.writeHead(416, { 'content-range': `bytes */${bytes.length}` }).end();
      return;
    }
    const body = bytes.subarray(start, end + 1);
    const headers = { 'content-length': String(body.length), 'content-type': 'application/octet-stream' };
    if (range) res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${bytes.length}` });
    else res.writeHead(200, headers);
    const drop = this.faults.drop;
    if (drop && drop.sha === sha && drop.times > 0) {
      drop.times--;
      // Send part of the body, make sure it left, then cut the connection as a network failure would.
      res.write(body.subarray(0, drop.bytes), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    const stall = this.faults.stall;
    if (stall && stall.sha === sha && stall.times > 0) {
      stall.times--;
      res.write(body.subarray(0, stall.bytes));
      return;
    }
    if (this.faults.slowMs) {
      for (let at = 0; at < body.length; at += 1024) {
        res.write(body.subarray(at, at + 1024));
        await new Promise((done) => setTimeout(done, this.faults.slowMs));
      }
      res.end();
      return;
    }
    res.end(body);
  }
}
