/**
 * Semantic search: "encode each document, store them in an index, encode the
 * query, return the most similar". The index sits behind `VectorIndex`, so the
 * exact search here can be swapped for an approximate one (HNSW) or an
 * external vector database; the search job only uses the interface.
 *
 * The exact index compares the query with every stored vector by cosine
 * similarity (or dot product) and keeps the top k. It saves to one file,
 * written atomically, with a SHA-256 checksum so a damaged file is refused
 * with a FormatError instead of answering wrongly.
 */
import { ConfigError, FormatError, ShapeError, UnsupportedError } from '../errors.js';
import type { FileSystem } from '../io/source.js';
import type { EmbedOptions, Embedder } from './embed.js';

export type MetadataValue = string | number | boolean | null;
export type Metadata = Readonly<Record<string, MetadataValue>>;

/**
 * Keep an entry when every key matches: a value means equality, a list means
 * "one of", and a function decides by itself.
 */
export type MetadataFilter = Readonly<Record<string, MetadataValue | readonly MetadataValue[]>> | ((metadata: Metadata) => boolean);

export interface IndexEntry {
  id: string;
  vector: Float32Array;
  metadata?: Metadata;
  /** The document text, kept so a hit can be shown. */
  text?: string;
}

export interface SearchHit {
  id: string;
  score: number;
  metadata?: Metadata;
  text?: string;
}

export interface QueryOptions {
  /** How many hits at most (default 10). */
  topK?: number;
  /** Drop hits scoring below this. */
  threshold?: number;
  filter?: MetadataFilter;
}

export type IndexMetric = 'cosine' | 'dot';

/** What every index offers; methods are async so an index over the network fits too. */
export interface VectorIndex {
  readonly dimension: number;
  readonly metric: IndexMetric;
  size(): Promise<number>;
  /** Add entries; an id already present is an error (use `upsert` to replace). */
  add(entries: readonly IndexEntry[]): Promise<void>;
  /** Add or replace entries by id. */
  upsert(entries: readonly IndexEntry[]): Promise<void>;
  /** Remove by id; returns how many were present. */
  remove(ids: readonly string[]): Promise<number>;
  has(id: string): Promise<boolean>;
  /** The most similar entries, best first (ties: earlier insertion first). */
  query(vector: Float32Array, options?: QueryOptions): Promise<SearchHit[]>;
}

/** Which model produced the vectors, so a query with another model is refused. */
export interface IndexProvenance {
  model?: string;
  pooling?: string;
  normalize?: boolean;
}

function matchesFilter(metadata: Metadata, filter: MetadataFilter): boolean {
  if (typeof filter === 'function') return filter(metadata);
  for (const [key, wanted] of Object.entries(filter)) {
    const value = Object.hasOwn(metadata, key) ? metadata[key] : undefined;
    if (Array.isArray(wanted)) {
      if (!wanted.includes(value as MetadataValue)) return false;
    } else if (value !== wanted) {
      return false;
    }
  }
  return true;
}

function checkFilter(filter: MetadataFilter): void {
  if (typeof filter === 'function') return;
  for (const [key, wanted] of Object.entries(filter)) {
    const values = Array.isArray(wanted) ? wanted : [wanted];
    for (const v of values) {
      if (v !== null && typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
        throw new ConfigError(`search filter "${key}": expected a string, number, boolean, null or a list of them, found ${JSON.stringify(v)}`);
      }
    }
  }
}

/** Keeps the k best (score, order) pairs seen: a binary min-heap on (score, −order). */
class TopK {
  private readonly heap: { score: number; order: number; row: number }[] = [];

  constructor(private readonly k: number) {}

  private worse(a: { score: number; order: number }, b: { score: number; order: number }): boolean {
    return a.score < b.score || (a.score === b.score && a.order > b.order);
  }

  push(score: number, order: number, row: number): void {
    const item = { score, order, row };
    const h = this.heap;
    if (h.length < this.k) {
      h.push(item);
      for (let i = h.length - 1; i > 0; ) {
        const parent = (i - 1) >> 1;
        if (!this.worse(h[i], h[parent])) break;
        [h[i], h[parent]] = [h[parent], h[i]];
        i = parent;
      }
    } else if (this.k > 0 && this.worse(h[0], item)) {
      h[0] = item;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.worse(h[l], h[m])) m = l;
        if (r < h.length && this.worse(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
  }

  best(): { score: number; order: number; row: number }[] {
    return [...this.heap].sort((a, b) => b.score - a.score || a.order - b.order);
  }
}

function checkVector(vector: Float32Array, dimension: number, what: string): void {
  if (!(vector instanceof Float32Array)) throw new ShapeError(`${what}: the vector must be a Float32Array`);
  if (vector.length !== dimension) throw new ShapeError(`${what}: the vector has ${vector.length} dimensions, the index holds ${dimension}`);
  let sumSquares = 0;
  for (let i = 0; i < vector.length; i++) {
    if (!Number.isFinite(vector[i])) throw new ShapeError(`${what}: the vector has a non-finite value ${vector[i]} at dimension ${i}`);
    sumSquares += vector[i] * vector[i];
  }
  if (sumSquares === 0) throw new ShapeError(`${what}: the vector is all zeros, so it has no direction to compare`);
}

/**
 * Exact nearest neighbours: one pass over every stored vector. Vectors are
 * kept contiguously; removal moves the last row into the hole.
 */
export class ExactIndex implements VectorIndex {
  private vectors: Float32Array;
  private inverseNorms: Float32Array;
  private ids: string[] = [];
  private records: { metadata?: Metadata; text?: string; order: number }[] = [];
  private rowOf = new Map<string, number>();
  private nextOrder = 0;

  constructor(
    readonly dimension: number,
    readonly metric: IndexMetric = 'cosine',
    readonly provenance: IndexProvenance = {},
  ) {
    if (!Number.isSafeInteger(dimension) || dimension < 1) throw new ShapeError(`an index needs a positive dimension, found ${dimension}`);
    if (metric !== 'cosine' && metric !== 'dot') throw new ConfigError(`index metric must be "cosine" or "dot", found ${JSON.stringify(metric)}`);
    this.vectors = new Float32Array(16 * dimension);
    this.inverseNorms = new Float32Array(16);
  }

  async size(): Promise<number> {
    return this.ids.length;
  }

  get count(): number {
    return this.ids.length;
  }

  async has(id: string): Promise<boolean> {
    return this.rowOf.has(id);
  }

  /** Every entry in insertion order (for export and saving). */
  entries(): IndexEntry[] {
    const rows = this.ids.map((_, row) => row).sort((a, b) => this.records[a].order - this.records[b].order);
    return rows.map((row) => ({
      id: this.ids[row],
      vector: this.vectors.slice(row * this.dimension, (row + 1) * this.dimension),
      ...(this.records[row].metadata ? { metadata: this.records[row].metadata } : {}),
      ...(this.records[row].text !== undefined ? { text: this.records[row].text } : {}),
    }));
  }

  async add(entries: readonly IndexEntry[]): Promise<void> {
    const seen = new Set<string>();
    for (const e of entries) {
      if (typeof e.id !== 'string' || e.id === '') throw new ConfigError(`index entries need a non-empty string id, found ${JSON.stringify(e.id)}`);
      if (this.rowOf.has(e.id) || seen.has(e.id)) throw new ConfigError(`id "${e.id}" is already in the index; remove it first or use upsert`);
      seen.add(e.id);
      checkVector(e.vector, this.dimension, `entry "${e.id}"`);
    }
    for (const e of entries) this.append(e);
  }

  async upsert(entries: readonly IndexEntry[]): Promise<void> {
    await this.remove(entries.map((e) => e.id));
    await this.add(entries);
  }

  private append(e: IndexEntry): void {
    const row = this.ids.length;
    if ((row + 1) * this.dimension > this.vectors.length) {
      const grown = new Float32Array(this.vectors.length * 2);
      grown.set(this.vectors);
      this.vectors = grown;
      const norms = new Float32Array(this.inverseNorms.length * 2);
      norms.set(this.inverseNorms);
      this.inverseNorms = norms;
    }
    this.vectors.set(e.vector, row * this.dimension);
    let sumSquares = 0;
    for (let i = 0; i < this.dimension; i++) sumSquares += e.vector[i] * e.vector[i];
    this.inverseNorms[row] = 1 / Math.sqrt(sumSquares);
    this.ids.push(e.id);
    this.records.push({ metadata: e.metadata ? { ...e.metadata } : undefined, text: e.text, order: this.nextOrder++ });
    this.rowOf.set(e.id, row);
  }

  async remove(ids: readonly string[]): Promise<number> {
    let removed = 0;
    for (const id of ids) {
      const row = this.rowOf.get(id);
      if (row === undefined) continue;
      const last = this.ids.length - 1;
      if (row !== last) {
        this.vectors.copyWithin(row * this.dimension, last * this.dimension, (last + 1) * this.dimension);
        this.inverseNorms[row] = this.inverseNorms[last];
        this.ids[row] = this.ids[last];
        this.records[row] = this.records[last];
        this.rowOf.set(this.ids[row], row);
      }
      this.ids.pop();
      this.records.pop();
      this.rowOf.delete(id);
      removed++;
    }
    return removed;
  }

  async query(vector: Float32Array, options: QueryOptions = {}): Promise<SearchHit[]> {
    checkVector(vector, this.dimension, 'query');
    const topK = options.topK ?? 10;
    if (!Number.isSafeInteger(topK) || topK < 1) throw new ConfigError(`topK must be a positive integer, found ${topK}`);
    if (options.threshold !== undefined && !Number.isFinite(options.threshold)) throw new ConfigError(`threshold must be a finite number, found ${options.threshold}`);
    if (options.filter) checkFilter(options.filter);
    let queryScale = 1;
    if (this.metric === 'cosine') {
      let sumSquares = 0;
      for (let i = 0; i < vector.length; i++) sumSquares += vector[i] * vector[i];
      queryScale = 1 / Math.sqrt(sumSquares);
    }
    const best = new TopK(topK);
    const d = this.dimension;
    for (let row = 0; row < this.ids.length; row++) {
      const record = this.records[row];
      if (options.filter && !matchesFilter(record.metadata ?? {}, options.filter)) continue;
      let dot = 0;
      const base = row * d;
      for (let i = 0; i < d; i++) dot += vector[i] * this.vectors[base + i];
      const score = this.metric === 'cosine' ? dot * queryScale * this.inverseNorms[row] : dot;
      if (options.threshold !== undefined && score < options.threshold) continue;
      best.push(score, record.order, row);
    }
    return best.best().map(({ score, row }) => ({
      id: this.ids[row],
      score,
      ...(this.records[row].metadata ? { metadata: this.records[row].metadata } : {}),
      ...(this.records[row].text !== undefined ? { text: this.records[row].text } : {}),
    }));
  }

  /** Write the index to `path` atomically (see `serializeIndex` for the layout). */
  async save(fs: FileSystem, path: string): Promise<void> {
    await fs.writeAtomic(path, [await serializeIndex(this)]);
  }

  /** Read an index file; any damage, truncation or inconsistency is a FormatError naming the file. */
  static async load(fs: FileSystem, path: string): Promise<ExactIndex> {
    return deserializeIndex(await fs.readBytes(path), path);
  }
}

/*
 * File layout (all integers little-endian):
 *   0   8 bytes  magic "GFINDEX1"
 *   8   u32      header length H
 *   12  H bytes  header JSON: {format, version, kind, metric, dimension, count, provenance, recordsLength}
 *   …   0–3      zero padding to a multiple of 4
 *   V   count·dimension f32   the vectors, row by row in insertion order
 *   …   recordsLength bytes   JSON list of {id, metadata?, text?}, one per row
 *   end−32       SHA-256 of every byte before it
 */
const MAGIC = 'GFINDEX1';
const FORMAT_VERSION = 1;
const CHECKSUM_BYTES = 32;

function assertLittleEndian(): void {
  if (new Uint8Array(new Float32Array([1]).buffer)[3] !== 0x3f) throw new FormatError('index', 'index files are little-endian and this machine is not');
}

async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  // subtle.digest wants bytes backed by a plain ArrayBuffer.
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', copy.buffer));
}

export async function serializeIndex(index: ExactIndex): Promise<Uint8Array> {
  assertLittleEndian();
  const entries = index.entries();
  const records = new TextEncoder().encode(
    JSON.stringify(entries.map((e) => ({ id: e.id, ...(e.metadata ? { metadata: e.metadata } : {}), ...(e.text !== undefined ? { text: e.text } : {}) }))),
  );
  const header = new TextEncoder().encode(
    JSON.stringify({
      format: 'glassformer-vector-index',
      version: FORMAT_VERSION,
      kind: 'exact',
      metric: index.metric,
      dimension: index.dimension,
      count: entries.length,
      provenance: index.provenance,
      recordsLength: records.length,
    }),
  );
  const vectorsAt = align4(12 + header.length);
  const vectorBytes = entries.length * index.dimension * 4;
  const total = vectorsAt + vectorBytes + records.length + CHECKSUM_BYTES;
  const out = new Uint8Array(total);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(8, header.length, true);
  out.set(header, 12);
  const vectors = new Float32Array(out.buffer, vectorsAt, entries.length * index.dimension);
  entries.forEach((e, row) => vectors.set(e.vector, row * index.dimension));
  out.set(records, vectorsAt + vectorBytes);
  out.set(await sha256(out.subarray(0, total - CHECKSUM_BYTES)), total - CHECKSUM_BYTES);
  return out;
}

function isMetadata(value: unknown): value is Metadata {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  return Object.values(value).every((v) => v === null || ['string', 'number', 'boolean'].includes(typeof v));
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

export async function deserializeIndex(bytes: Uint8Array, file: string): Promise<ExactIndex> {
  assertLittleEndian();
  const fail = (detail: string): never => {
    throw new FormatError(file, `not a usable glassformer index: ${detail}`);
  };
  if (bytes.length < 12 + CHECKSUM_BYTES) fail(`the file has only ${bytes.length} bytes`);
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) fail(`it does not start with "${MAGIC}"`);
  const stored = bytes.subarray(bytes.length - CHECKSUM_BYTES);
  const actual = await sha256(bytes.subarray(0, bytes.length - CHECKSUM_BYTES));
  if (!stored.every((b, i) => b === actual[i])) fail('the SHA-256 checksum does not match (the file is damaged or truncated)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(8, true);
  if (12 + headerLength > bytes.length - CHECKSUM_BYTES) fail(`header length ${headerLength} runs past the end of the file`);
  let header: Record<string, unknown> = {};
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + headerLength))) as Record<string, unknown>;
  } catch (error) {
    fail(`the header is not JSON (${(error as Error).message})`);
  }
  if (header.format !== 'glassformer-vector-index') fail(`header format is ${JSON.stringify(header.format)}`);
  if (header.version !== FORMAT_VERSION) fail(`format version ${JSON.stringify(header.version)}; this glassformer reads version ${FORMAT_VERSION}`);
  if (header.kind !== 'exact') fail(`index kind ${JSON.stringify(header.kind)} is not "exact"`);
  const { dimension, count, recordsLength } = header as { dimension: number; count: number; recordsLength: number };
  for (const [name, v] of Object.entries({ dimension, count, recordsLength })) {
    if (!Number.isSafeInteger(v) || v < (name === 'dimension' ? 1 : 0)) fail(`header field "${name}" is ${JSON.stringify(v)}`);
  }
  if (header.metric !== 'cosine' && header.metric !== 'dot') fail(`header metric ${JSON.stringify(header.metric)}`);
  const vectorsAt = align4(12 + headerLength);
  const expected = vectorsAt + count * dimension * 4 + recordsLength + CHECKSUM_BYTES;
  if (expected !== bytes.length) fail(`header says ${count} vectors of ${dimension} dimensions and ${recordsLength} record bytes (${expected} bytes), the file has ${bytes.length}`);
  const recordsAt = vectorsAt + count * dimension * 4;
  let records: unknown;
  try {
    records = JSON.parse(new TextDecoder().decode(bytes.subarray(recordsAt, recordsAt + recordsLength)));
  } catch (error) {
    fail(`the records are not JSON (${(error as Error).message})`);
  }
  if (!Array.isArray(records) || records.length !== count) fail(`header says ${count} entries but the records list ${Array.isArray(records) ? records.length : 'is not a list'}`);
  const vectors = new Float32Array(bytes.slice(vectorsAt, recordsAt).buffer);
  const index = new ExactIndex(dimension, header.metric as IndexMetric, (header.provenance ?? {}) as IndexProvenance);
  const entries: IndexEntry[] = (records as Record<string, unknown>[]).map((r, row) => {
    if (typeof r?.id !== 'string') fail(`record ${row} has no string id`);
    if (r.metadata !== undefined && !isMetadata(r.metadata)) fail(`record ${row} ("${r.id}") has metadata that is not an object of strings, numbers, booleans and nulls`);
    return {
      id: r.id as string,
      vector: vectors.subarray(row * dimension, (row + 1) * dimension),
      ...(r.metadata !== undefined ? { metadata: r.metadata as Metadata } : {}),
      ...(typeof r.text === 'string' ? { text: r.text } : {}),
    };
  });
  try {
    await index.add(entries);
  } catch (error) {
    fail((error as Error).message);
  }
  return index;
}

export interface SearchDocument {
  /** Defaults to the smallest free number at or above the index size, as a string. */
  id?: string;
  text: string;
  metadata?: Metadata;
}

export interface SemanticSearchOptions {
  /** Prompt name for documents (default "passage" or "document" when the model defines one). */
  documentPrompt?: string;
  /** Prompt name for queries (default "query" when the model defines it). */
  queryPrompt?: string;
  embed?: Omit<EmbedOptions, 'prompt' | 'promptName'>;
}

/**
 * The index metric that ranks like the model's similarity function: cosine or
 * dot as named; euclidean and manhattan distances only rank like cosine for
 * unit vectors, so they need the model's Normalize module.
 */
export function indexMetricFor(embedder: Embedder): IndexMetric {
  const { similarity, normalize, source } = embedder.settings;
  if (similarity === 'cosine' || similarity === 'dot') return similarity;
  if (similarity === 'euclidean' && normalize) return 'cosine';
  throw new UnsupportedError(`${source}: similarity_fn_name "${similarity}"${normalize ? '' : ' on unnormalised vectors'} ranks differently from cosine and dot product, the metrics the exact index offers`);
}

/** Which named prompt to use for a role when the caller does not say: the conventional names, if defined. */
function conventionalPrompt(embedder: Embedder, names: readonly string[], given: string | undefined): EmbedOptions {
  if (given !== undefined) return { promptName: given };
  const found = names.find((n) => n in embedder.settings.prompts);
  return found ? { promptName: found } : {};
}

/** The search job: an embedder and an index, with documents and queries embedded with their prompts. */
export class SemanticSearch {
  private readonly documentOptions: EmbedOptions;
  private readonly queryOptions: EmbedOptions;

  constructor(
    readonly embedder: Embedder,
    readonly index: VectorIndex,
    options: SemanticSearchOptions = {},
  ) {
    if (index.dimension !== embedder.dimension) {
      throw new ShapeError(`the index holds ${index.dimension}-dimensional vectors but the model embeds into ${embedder.dimension}`);
    }
    this.documentOptions = { ...options.embed, ...conventionalPrompt(embedder, ['passage', 'document'], options.documentPrompt) };
    this.queryOptions = { ...options.embed, ...conventionalPrompt(embedder, ['query'], options.queryPrompt) };
  }

  /** Embed and store documents; returns their ids. */
  async addDocuments(documents: readonly SearchDocument[], onProgress?: (done: number, total: number) => void, batchSize = 32): Promise<string[]> {
    let next = await this.index.size();
    const freshId = async (): Promise<string> => {
      while (await this.index.has(String(next))) next++;
      return String(next++);
    };
    const ids: string[] = [];
    for (let i = 0; i < documents.length; i += batchSize) {
      const batch = documents.slice(i, i + batchSize);
      const vectors = this.embedder.embed(batch.map((d) => d.text), this.documentOptions);
      const entries = [];
      for (const [j, d] of batch.entries()) entries.push({ id: d.id ?? (await freshId()), vector: vectors[j], metadata: d.metadata, text: d.text });
      await this.index.add(entries);
      ids.push(...entries.map((e) => e.id));
      onProgress?.(Math.min(i + batchSize, documents.length), documents.length);
    }
    return ids;
  }

  async removeDocuments(ids: readonly string[]): Promise<number> {
    return this.index.remove(ids);
  }

  /** The documents most similar to the query, best first. */
  async search(query: string, options: QueryOptions = {}): Promise<SearchHit[]> {
    const [vector] = this.embedder.embed([query], this.queryOptions);
    return this.index.query(vector, options);
  }
}
