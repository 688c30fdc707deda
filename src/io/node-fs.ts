/** The FileSystem seam on Node: positional reads and atomic writes with node:fs. */
import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { FileNotFoundError } from '../errors.js';
import { checkRange, type ByteSource, type FileSystem } from './source.js';

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

async function orNotFound<T>(path: string, action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    if (isNotFound(error)) throw new FileNotFoundError(path);
    throw error;
  }
}

function orNotFoundSync<T>(path: string, action: () => T): T {
  try {
    return action();
  } catch (error) {
    if (isNotFound(error)) throw new FileNotFoundError(path);
    throw error;
  }
}

/** One kernel read returns at most this many bytes, so large tensors are read in pieces. */
const MAX_READ = 1 << 30;

/** A positional read of exactly `length` bytes into `into` (1 GiB a call at most), blocking. */
function readAtSync(path: string, into: Uint8Array, offset: number, length: number): Uint8Array {
  if (into.length < length) throw new RangeError(`read of ${length} bytes into a buffer of ${into.length}`);
  const fd = openSync(path, 'r');
  try {
    checkRange(path, offset, length, fstatSync(fd).size);
    let done = 0;
    while (done < length) {
      const bytesRead = readSync(fd, into, done, Math.min(MAX_READ, length - done), offset + done);
      if (bytesRead === 0) checkRange(path, offset, length, offset + done);
      done += bytesRead;
    }
  } finally {
    closeSync(fd);
  }
  return into;
}

/**
 * Each read opens the file, reads at a position and closes it again: no file
 * handle outlives a call, so a checkpoint needs no `close()` and a thousand
 * lazily read tensors cost a thousand cheap open calls.
 */
function nodeSource(path: string): ByteSource {
  return {
    name: path,
    size: () => orNotFound(path, async () => (await stat(path)).size),
    read: (offset, length, into) =>
      orNotFound(path, async () => {
        const target = into ?? new Uint8Array(length);
        if (target.length < length) throw new RangeError(`read of ${length} bytes into a buffer of ${target.length}`);
        const handle = await open(path, 'r');
        try {
          const size = (await handle.stat()).size;
          checkRange(path, offset, length, size);
          let done = 0;
          while (done < length) {
            const { bytesRead } = await handle.read(target, done, Math.min(MAX_READ, length - done), offset + done);
            if (bytesRead === 0) checkRange(path, offset, length, offset + done);
            done += bytesRead;
          }
        } finally {
          await handle.close();
        }
        return target;
      }),
    readSync: (offset, length, into) => orNotFoundSync(path, () => readAtSync(path, into ?? new Uint8Array(length), offset, length)),
  };
}

async function writeAtomic(path: string, chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<void> {
  // The temporary file sits in the target's directory so the rename never crosses file systems.
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx');
  try {
    for await (const chunk of chunks) {
      let done = 0;
      while (done < chunk.length) done += (await handle.write(chunk, done, chunk.length - done)).bytesWritten;
    }
    await handle.sync();
    await handle.close();
    await rename(temp, path);
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}

export const nodeFileSystem: FileSystem = {
  readText: (path) => orNotFound(path, () => readFile(path, 'utf8')),
  readBytes: (path) => orNotFound(path, async () => new Uint8Array(await readFile(path))),
  exists: async (path) => {
    try {
      await stat(path);
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  },
  join: (...parts) => join(...parts),
  dirname: (path) => dirname(path),
  list: (dir) => orNotFound(dir, async () => (await readdir(dir)).sort()),
  source: nodeSource,
  writeAtomic,
};
