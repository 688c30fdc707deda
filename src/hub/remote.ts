/**
 * Files read in place on the Hub, a few bytes at a time with range requests:
 * enough to parse the header of a 10 GB safetensors file (8-byte length +
 * JSON) without downloading its tensors. Browser-safe: only the HubClient.
 */
import { FileNotFoundError } from '../errors.js';
import { checkRange, type ByteSource, type FileSystem } from '../io/source.js';
import type { HubClient } from './client.js';

/** A ByteSource over a file on the Hub; `size` comes from the HEAD, each `read` is one range request. */
export async function remoteSource(client: HubClient, modelId: string, revision: string, file: string): Promise<ByteSource> {
  const metadata = await client.fileMetadata(modelId, revision, file);
  const name = client.fileUrl(modelId, revision, file);
  return {
    name,
    size: async () => metadata.size,
    read: async (offset, length, into) => {
      checkRange(name, offset, length, metadata.size);
      const bytes = await client.readRange({ modelId, revision, file }, metadata.location, offset, length);
      if (!into) return bytes;
      into.set(bytes);
      return into;
    },
  };
}

/**
 * A FileSystem that is `base` plus some files that live elsewhere (`extra`,
 * keyed by the path they appear at): they exist, are listed in their folder
 * and are read through their own ByteSource.
 */
export function withExtraFiles(base: FileSystem, extra: ReadonlyMap<string, ByteSource>): FileSystem {
  const read = async (path: string): Promise<Uint8Array> => {
    const source = extra.get(path);
    if (!source) return base.readBytes(path);
    return source.read(0, await source.size());
  };
  return {
    readText: async (path) => (extra.has(path) ? new TextDecoder().decode(await read(path)) : base.readText(path)),
    readBytes: read,
    exists: async (path) => extra.has(path) || base.exists(path),
    join: (...parts) => base.join(...parts),
    dirname: (path) => base.dirname(path),
    list: async (dir) => {
      const mine = [...extra.keys()].filter((path) => base.dirname(path) === dir).map((path) => path.slice(dir.length + 1));
      let names: string[] = [];
      try {
        names = await base.list(dir);
      } catch (error) {
        if (!(error instanceof FileNotFoundError) || mine.length === 0) throw error;
      }
      return [...new Set([...names, ...mine])].sort();
    },
    source: (path) => extra.get(path) ?? base.source(path),
    writeAtomic: (path, chunks) => base.writeAtomic(path, chunks),
  };
}
