/**
 * A checkpoint: the named tensors of a model, from one safetensors file or
 * from a sharded set described by `model.safetensors.index.json`
 * ({"metadata": {...}, "weight_map": {tensor name: shard file name}}), the
 * layout `save_pretrained` uses once a model passes `max_shard_size`.
 */
import { FormatError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkShape, missingTensorError, SafetensorsFile, type GetOptions, type TensorInfo, type TensorReader } from './safetensors.js';
import type { FileSystem } from './source.js';

export class Checkpoint implements TensorReader {
  private constructor(
    /** The file the checkpoint was opened from (a .safetensors file or the index). */
    readonly path: string,
    private readonly shardOf: ReadonlyMap<string, SafetensorsFile>,
    /** `__metadata__` of the (first) safetensors file, e.g. {"format": "pt"}. */
    readonly metadata: Readonly<Record<string, string>>,
    /** The index's own "metadata" (e.g. total_size); empty for a single file. */
    readonly indexMetadata: Readonly<Record<string, unknown>>,
  ) {}

  /** Open one `.safetensors` file, or a sharded set through its `.index.json`. Reads headers only. */
  static async open(fs: FileSystem, path: string): Promise<Checkpoint> {
    if (path.endsWith('.json')) return Checkpoint.openIndex(fs, path);
    const file = await SafetensorsFile.open(fs.source(path));
    return new Checkpoint(path, new Map(file.names().map((n) => [n, file])), file.metadata, {});
  }

  private static async openIndex(fs: FileSystem, path: string): Promise<Checkpoint> {
    let index: unknown;
    try {
      index = JSON.parse(await fs.readText(path));
    } catch (error) {
      if (error instanceof SyntaxError) throw new FormatError(path, `not valid JSON (${error.message})`);
      throw error;
    }
    const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
    if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
      throw new FormatError(path, 'a sharded checkpoint index needs a "weight_map" object mapping tensor names to shard files');
    }
    const shardNames = new Set<string>();
    for (const [name, shard] of Object.entries(weightMap)) {
      if (typeof shard !== 'string') throw new FormatError(path, `weight_map["${name}"] must be a shard file name, found ${JSON.stringify(shard)}`);
      shardNames.add(shard);
    }
    const dir = fs.dirname(path);
    const shards = new Map<string, SafetensorsFile>();
    for (const shard of [...shardNames].sort()) {
      const shardPath = fs.join(dir, shard);
      if (!(await fs.exists(shardPath))) throw new FormatError(path, `shard "${shard}" listed in weight_map is missing (looked for ${shardPath})`);
      shards.set(shard, await SafetensorsFile.open(fs.source(shardPath)));
    }
    const shardOf = new Map<string, SafetensorsFile>();
    for (const [name, shard] of Object.entries(weightMap as Record<string, string>)) {
      const file = shards.get(shard) as SafetensorsFile;
      if (!file.has(name)) throw new FormatError(path, `weight_map puts tensor "${name}" in ${shard}, but that shard does not contain it`);
      shardOf.set(name, file);
    }
    const first = shards.values().next().value;
    const indexMetadata = (index as { metadata?: unknown }).metadata;
    return new Checkpoint(
      path,
      shardOf,
      first ? first.metadata : {},
      typeof indexMetadata === 'object' && indexMetadata !== null ? (indexMetadata as Record<string, unknown>) : {},
    );
  }

  get name(): string {
    return this.path;
  }

  /** Whether every shard's bytes are local, so `getSync` can read them. */
  get canReadSync(): boolean {
    return [...new Set(this.shardOf.values())].every((file) => file.canReadSync);
  }

  names(): string[] {
    return [...this.shardOf.keys()];
  }

  has(name: string): boolean {
    return this.shardOf.has(name);
  }

  private fileOf(name: string): SafetensorsFile {
    const file = this.shardOf.get(name);
    if (!file) throw missingTensorError(this.path, name, this.shardOf.keys());
    return file;
  }

  tensorInfo(name: string): TensorInfo {
    return this.fileOf(name).tensorInfo(name);
  }

  /** One tensor; a WeightError lists close names when it is missing, or both shapes when `expectShape` differs. */
  async get(name: string, options: GetOptions = {}): Promise<Tensor> {
    const file = this.fileOf(name);
    checkShape(this.path, name, file.tensorInfo(name).shape, options.expectShape);
    return file.get(name);
  }

  /** `get`, blocking (see SafetensorsFile.getSync). */
  getSync(name: string, options: GetOptions = {}): Tensor {
    const file = this.fileOf(name);
    checkShape(this.path, name, file.tensorInfo(name).shape, options.expectShape);
    return file.getSync(name);
  }

  readF32Sync(name: string, begin: number, end: number, into: Float32Array): Float32Array {
    return this.fileOf(name).readF32Sync(name, begin, end, into);
  }

  async readRaw(name: string): Promise<Uint8Array> {
    return this.fileOf(name).readRaw(name);
  }

  async loadAll(): Promise<Map<string, Tensor>> {
    const out = new Map<string, Tensor>();
    for (const name of this.shardOf.keys()) out.set(name, await this.get(name));
    return out;
  }
}
