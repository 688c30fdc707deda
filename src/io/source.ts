/**
 * The file seam. Everything in `src/io` reads and writes through these two
 * interfaces, so the same readers run on Node (`node-fs.ts`), in a browser, or
 * over in-memory bytes (`MemoryFileSystem`, used by tests).
 */
import { FileNotFoundError, FormatError } from '../errors.js';

/** Random access to the bytes of one file. */
export interface ByteSource {
  /** Shown in error messages: usually the file path. */
  readonly name: string;
  size(): Promise<number>;
  /**
   * Exactly `length` bytes starting at `offset`. With `into` (of at least
   * `length` bytes) the bytes land there and `into` is returned, so a caller
   * can read straight into the memory of a typed array.
   */
  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  /**
   * The same read, blocking: present when the bytes are local (a file, memory).
   * Models are built synchronously, so a loader that reads each tensor when a
   * layer asks for it (`Weights` over a checkpoint) needs it.
   */
  readSync?(offset: number, length: number, into?: Uint8Array): Uint8Array;
}

/** The few file operations a model folder needs. Paths use '/' separators. */
export interface FileSystem {
  readText(path: string): Promise<string>;
  readBytes(path: string): Promise<Uint8Array>;
  exists(path: string): Promise<boolean>;
  join(...parts: string[]): string;
  dirname(path: string): string;
  /** Names (not paths) of the entries of a directory. */
  list(dir: string): Promise<string[]>;
  source(path: string): ByteSource;
  /** Write the chunks in order so that `path` is either the old file or the complete new one. */
  writeAtomic(path: string, chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<void>;
}

/** Check a read request against the size of its file; the error names the file. */
export function checkRange(name: string, offset: number, length: number, size: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new FormatError(name, `invalid read of ${length} bytes at offset ${offset}`);
  }
  if (offset + length > size) {
    throw new FormatError(name, `file is truncated: needed bytes ${offset}..${offset + length} but the file has ${size}`);
  }
}

/** `length` bytes of `bytes` from `offset`: a copy, or into `into`. */
function readFrom(name: string, bytes: Uint8Array, offset: number, length: number, into?: Uint8Array): Uint8Array {
  checkRange(name, offset, length, bytes.length);
  const view = bytes.subarray(offset, offset + length);
  if (!into) return view.slice();
  into.set(view);
  return into;
}

/** A ByteSource over bytes already in memory (a fetched file, a test fixture). */
export function bytesSource(name: string, bytes: Uint8Array): ByteSource {
  return {
    name,
    size: async () => bytes.length,
    read: async (offset, length, into) => readFrom(name, bytes, offset, length, into),
    readSync: (offset, length, into) => readFrom(name, bytes, offset, length, into),
  };
}

/** '/'-separated path joining with '.' and '..' resolved, as POSIX `path.join`. */
export function joinPosix(...parts: string[]): string {
  const joined = parts.filter((p) => p !== '').join('/');
  const absolute = joined.startsWith('/');
  const out: string[] = [];
  for (const segment of joined.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..' && out.length > 0 && out[out.length - 1] !== '..') out.pop();
    else if (segment !== '..' || !absolute) out.push(segment);
  }
  const body = out.join('/');
  return absolute ? `/${body}` : body || '.';
}

export function dirnamePosix(path: string): string {
  const trimmed = path.length > 1 ? path.replace(/\/+$/, '') : path;
  const i = trimmed.lastIndexOf('/');
  if (i < 0) return '.';
  return i === 0 ? '/' : trimmed.slice(0, i);
}

/**
 * Files held in memory, keyed by path: for browsers (files fetched or picked
 * by the user) and for tests. Directories exist implicitly as path prefixes.
 */
export class MemoryFileSystem implements FileSystem {
  private readonly files = new Map<string, Uint8Array>();

  constructor(files: Record<string, Uint8Array | ArrayBuffer | string> = {}) {
    for (const [path, content] of Object.entries(files)) this.set(path, content);
  }

  set(path: string, content: Uint8Array | ArrayBuffer | string): void {
    const bytes =
      typeof content === 'string'
        ? new TextEncoder().encode(content)
        : content instanceof Uint8Array
          ? content
          : new Uint8Array(content);
    this.files.set(joinPosix(path), bytes);
  }

  private bytes(path: string): Uint8Array {
    const bytes = this.files.get(joinPosix(path));
    if (!bytes) throw new FileNotFoundError(path);
    return bytes;
  }

  async readText(path: string): Promise<string> {
    return new TextDecoder().decode(this.bytes(path));
  }

  async readBytes(path: string): Promise<Uint8Array> {
    return this.bytes(path).slice();
  }

  async exists(path: string): Promise<boolean> {
    const key = joinPosix(path);
    if (this.files.has(key)) return true;
    if (key === '.') return this.files.size > 0;
    const prefix = key === '/' ? '/' : `${key}/`;
    for (const name of this.files.keys()) if (name.startsWith(prefix)) return true;
    return false;
  }

  join(...parts: string[]): string {
    return joinPosix(...parts);
  }

  dirname(path: string): string {
    return dirnamePosix(path);
  }

  async list(dir: string): Promise<string[]> {
    const key = joinPosix(dir);
    const prefix = key === '.' ? '' : key === '/' ? '/' : `${key}/`;
    const names = new Set<string>();
    for (const name of this.files.keys()) {
      if (name.startsWith(prefix)) names.add(name.slice(prefix.length).split('/')[0]);
    }
    if (names.size === 0) throw new FileNotFoundError(dir);
    return [...names].sort();
  }

  source(path: string): ByteSource {
    const name = path;
    return {
      name,
      size: async () => this.bytes(path).length,
      read: async (offset, length, into) => readFrom(name, this.bytes(path), offset, length, into),
      readSync: (offset, length, into) => readFrom(name, this.bytes(path), offset, length, into),
    };
  }

  async writeAtomic(path: string, chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<void> {
    const parts: Uint8Array[] = [];
    for await (const chunk of chunks) parts.push(chunk.slice());
    const total = parts.reduce((n, p) => n + p.length, 0);
    const out = new Uint8Array(total);
    let offset = 0;
    for (const p of parts) {
      out.set(p, offset);
      offset += p.length;
    }
    this.files.set(joinPosix(path), out);
  }
}
