/**
 * Byte-pair encoding (Sennrich et al. 2016, "Neural Machine Translation of Rare
 * Words with Subword Units"). A word starts as one symbol per character; the
 * adjacent pair with the lowest merge rank is merged, again and again, until no
 * adjacent pair appears in the merge list.
 *
 * As in the Rust library, symbols form a linked list and candidate merges sit in a
 * min-heap ordered by (rank, position), so a word of n characters costs
 * O(n log n) rather than the O(n²) of rescanning every pair after each merge.
 */
import { ConfigError, UnsupportedError } from '../../errors.js';
import type { BpeMergeStep, Model, ModelToken, ModelTrace } from './model.js';

export interface BpeOptions {
  unkToken: string | null;
  continuingSubwordPrefix: string | null;
  endOfWordSuffix: string | null;
  fuseUnk: boolean;
  byteFallback: boolean;
  ignoreMerges: boolean;
  /** Where the vocabulary came from, for error messages. */
  file: string;
}

// Merge keys pack two ids into one number; ids stay below 2^21 in every known vocabulary.
const ID_LIMIT = 2 ** 21;
const CACHE_CAPACITY = 10_000;
// Like Rust, long pre-tokens (no pre-tokenizer, e.g. Llama 2) are not cached.
const CACHE_MAX_WORD = 256;

export class BpeModel implements Model {
  readonly type = 'BPE';
  private readonly vocabMap: Map<string, number>;
  private readonly vocabR: string[] = [];
  /** (left id, right id) → rank * ID_LIMIT + merged id */
  private readonly merges = new Map<number, number>();
  private readonly cache = new Map<string, ModelToken[]>();
  private readonly unkId: number | undefined;
  private readonly byteIds: Int32Array | null = null;

  constructor(
    vocab: Map<string, number>,
    merges: [string, string][],
    readonly options: BpeOptions,
  ) {
    this.vocabMap = vocab;
    for (const [token, id] of vocab) {
      if (!Number.isInteger(id) || id < 0 || id >= ID_LIMIT) {
        throw new ConfigError(`${options.file}: model.vocab[${JSON.stringify(token)}]: id ${id} is not an integer in [0, ${ID_LIMIT})`);
      }
      this.vocabR[id] = token;
    }
    const prefixLength = options.continuingSubwordPrefix?.length ?? 0;
    merges.forEach(([a, b], rank) => {
      const aId = vocab.get(a);
      const bId = vocab.get(b);
      const merged = a + b.slice(prefixLength);
      const mergedId = vocab.get(merged);
      for (const [part, id] of [[a, aId], [b, bId], [merged, mergedId]] as const) {
        if (id === undefined) {
          throw new ConfigError(`${options.file}: model.merges[${rank}]: token ${JSON.stringify(part)} of merge "${a} ${b}" is not in the vocabulary`);
        }
      }
      this.merges.set((aId as number) * ID_LIMIT + (bId as number), rank * ID_LIMIT + (mergedId as number));
    });
    if (options.unkToken !== null) this.unkId = vocab.get(options.unkToken);
    if (options.byteFallback) {
      this.byteIds = new Int32Array(256);
      for (let b = 0; b < 256; b++) this.byteIds[b] = vocab.get(byteToken(b)) ?? -1;
    }
  }

  tokenToId(token: string): number | undefined {
    return this.vocabMap.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.vocabR[id];
  }

  vocab(): ReadonlyMap<string, number> {
    return this.vocabMap;
  }

  tokenize(word: string): ModelToken[] {
    if (word.length === 0) return [];
    const cached = this.cache.get(word);
    if (cached !== undefined) return cached;
    const tokens = this.encodeWord(word, null);
    if (word.length < CACHE_MAX_WORD && this.cache.size < CACHE_CAPACITY) this.cache.set(word, tokens);
    return tokens;
  }

  trace(word: string): ModelTrace {
    const merges: BpeMergeStep[] = [];
    const ignoredMerges = this.options.ignoreMerges && this.vocabMap.has(word);
    const symbols = this.initialSymbols(word);
    const initial = symbols.ids.map((id) => this.vocabR[id]);
    if (!ignoredMerges) this.encodeWord(word, merges);
    return { model: 'BPE', cached: false, initial, merges, ignoredMerges };
  }

  private encodeWord(word: string, record: BpeMergeStep[] | null): ModelToken[] {
    if (this.options.ignoreMerges) {
      const id = this.vocabMap.get(word);
      if (id !== undefined) return [{ id, value: word, start: 0, end: word.length }];
    }
    const symbols = this.initialSymbols(word);
    this.mergeAll(symbols, record);
    const tokens: ModelToken[] = [];
    for (let i = 0; i < symbols.ids.length; i++) {
      if (symbols.removed[i]) continue;
      const id = symbols.ids[i];
      tokens.push({ id, value: this.vocabR[id], start: symbols.starts[i], end: symbols.ends[i] });
    }
    return tokens;
  }

  /** One symbol per character, with byte fallback and (fused) unknowns as configured. */
  private initialSymbols(word: string): Symbols {
    const symbols = new Symbols();
    const { continuingSubwordPrefix: prefix, endOfWordSuffix: suffix } = this.options;
    let unk: { start: number; end: number } | null = null;
    const flushUnk = (): void => {
      if (unk !== null) symbols.push(this.unkId as number, unk.start, unk.end);
      unk = null;
    };
    for (let i = 0; i < word.length; ) {
      const width = (word.codePointAt(i) as number) > 0xffff ? 2 : 1;
      const end = i + width;
      let piece = word.slice(i, end);
      if (i > 0 && prefix) piece = prefix + piece;
      if (end === word.length && suffix) piece += suffix;
      const id = this.vocabMap.get(piece);
      if (id !== undefined) {
        flushUnk();
        symbols.push(id, i, end);
      } else if (this.byteIds !== null && this.pushBytes(symbols, word.slice(i, end), i, end)) {
        flushUnk();
      } else if (this.options.unkToken !== null) {
        if (this.unkId === undefined) {
          throw new ConfigError(`${this.options.file}: model.unk_token ${JSON.stringify(this.options.unkToken)} is not in the vocabulary`);
        }
        if (unk !== null && this.options.fuseUnk) (unk as { end: number }).end = end;
        else {
          flushUnk();
          unk = { start: i, end };
        }
      }
      i = end;
    }
    flushUnk();
    return symbols;
  }

  /** Byte-fallback: `<0xE9>`-style tokens for each UTF-8 byte, if all exist. */
  private pushBytes(symbols: Symbols, char: string, start: number, end: number): boolean {
    const bytes = new TextEncoder().encode(char);
    const ids: number[] = [];
    for (const b of bytes) {
      const id = (this.byteIds as Int32Array)[b];
      if (id < 0) return false;
      ids.push(id);
    }
    // Every byte token of a character points at the whole character.
    for (const id of ids) symbols.push(id, start, end);
    return true;
  }

  private mergeAll(symbols: Symbols, record: BpeMergeStep[] | null): void {
    const n = symbols.ids.length;
    const heap = new MergeHeap();
    for (let i = 0; i + 1 < n; i++) {
      const merge = this.merges.get(symbols.ids[i] * ID_LIMIT + symbols.ids[i + 1]);
      if (merge !== undefined) heap.push(Math.floor(merge / ID_LIMIT), i, merge % ID_LIMIT);
    }
    while (heap.size > 0) {
      const { rank, pos, newId } = heap.pop();
      if (symbols.removed[pos]) continue;
      const next = symbols.next[pos];
      if (next < 0) continue;
      // Skip queue entries made stale by an earlier merge.
      const current = this.merges.get(symbols.ids[pos] * ID_LIMIT + symbols.ids[next]);
      if (current === undefined || current % ID_LIMIT !== newId) continue;
      if (record !== null) {
        record.push({ rank, left: this.vocabR[symbols.ids[pos]], right: this.vocabR[symbols.ids[next]], merged: this.vocabR[newId] });
      }
      symbols.ids[pos] = newId;
      symbols.ends[pos] = symbols.ends[next];
      symbols.removed[next] = 1;
      const after = symbols.next[next];
      symbols.next[pos] = after;
      if (after >= 0) symbols.prev[after] = pos;
      const before = symbols.prev[pos];
      if (before >= 0) {
        const m = this.merges.get(symbols.ids[before] * ID_LIMIT + newId);
        if (m !== undefined) heap.push(Math.floor(m / ID_LIMIT), before, m % ID_LIMIT);
      }
      if (after >= 0) {
        const m = this.merges.get(newId * ID_LIMIT + symbols.ids[after]);
        if (m !== undefined) heap.push(Math.floor(m / ID_LIMIT), pos, m % ID_LIMIT);
      }
    }
  }
}

/** The `<0xAB>` token name of a byte. */
export function byteToken(byte: number): string {
  return `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** The symbols of a word being merged, as a doubly linked list over parallel arrays. */
class Symbols {
  ids: number[] = [];
  starts: number[] = [];
  ends: number[] = [];
  prev: number[] = [];
  next: number[] = [];
  removed: number[] = [];

  push(id: number, start: number, end: number): void {
    const i = this.ids.length;
    if (i > 0) this.next[i - 1] = i;
    this.ids.push(id);
    this.starts.push(start);
    this.ends.push(end);
    this.prev.push(i - 1);
    this.next.push(-1);
    this.removed.push(0);
  }
}

/** A binary min-heap of candidate merges ordered by rank, then position. */
class MergeHeap {
  private ranks: number[] = [];
  private positions: number[] = [];
  private newIds: number[] = [];

  get size(): number {
    return this.ranks.length;
  }

  private less(i: number, j: number): boolean {
    return this.ranks[i] < this.ranks[j] || (this.ranks[i] === this.ranks[j] && this.positions[i] < this.positions[j]);
  }

  private swap(i: number, j: number): void {
    [this.ranks[i], this.ranks[j]] = [this.ranks[j], this.ranks[i]];
    [this.positions[i], this.positions[j]] = [this.positions[j], this.positions[i]];
    [this.newIds[i], this.newIds[j]] = [this.newIds[j], this.newIds[i]];
  }

  push(rank: number, pos: number, newId: number): void {
    this.ranks.push(rank);
    this.positions.push(pos);
    this.newIds.push(newId);
    let i = this.ranks.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): { rank: number; pos: number; newId: number } {
    const top = { rank: this.ranks[0], pos: this.positions[0], newId: this.newIds[0] };
    const last = this.ranks.length - 1;
    this.swap(0, last);
    this.ranks.pop();
    this.positions.pop();
    this.newIds.pop();
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < last && this.less(left, smallest)) smallest = left;
      if (right < last && this.less(right, smallest)) smallest = right;
      if (smallest === i) break;
      this.swap(i, smallest);
      i = smallest;
    }
    return top;
  }
}

/** Refuses BPE dropout: it samples merges at random, and glassformer's outputs must be reproducible. */
export function checkDropout(dropout: number | undefined, file: string): void {
  if (dropout !== undefined && dropout !== 0) {
    throw new UnsupportedError(`${file}: model.dropout is ${dropout}; BPE dropout (random merge skipping) is not supported, set it to null`);
  }
}
