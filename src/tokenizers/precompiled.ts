/**
 * SentencePiece's precompiled normalization rules (`precompiled_charsmap`), e.g.
 * the `nmt_nfkc` map T5 ships: a darts-clone double-array trie over UTF-8 keys whose
 * values index a blob of NUL-terminated replacement strings.
 *
 * Layout: u32 little-endian trie size in bytes, the trie (u32 units), then the blob.
 */
import { FormatError } from '../errors.js';
import { utf8Bytes, utf8Lossy } from './unicode.js';
import type { NormalizedString } from './normalized-string.js';

export class PrecompiledCharsmap {
  private readonly trie: Uint32Array;
  private readonly blob: Uint8Array;
  private readonly cache = new Map<string, string | null>();

  constructor(bytes: Uint8Array, file: string) {
    if (bytes.length < 4) throw new FormatError(file, 'normalizer.precompiled_charsmap: shorter than its 4-byte header');
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const trieSize = view.getUint32(0, true);
    if (trieSize % 4 !== 0 || 4 + trieSize > bytes.length) {
      throw new FormatError(file, `normalizer.precompiled_charsmap: trie size ${trieSize} does not fit in ${bytes.length} bytes`);
    }
    this.trie = new Uint32Array(trieSize / 4);
    for (let i = 0; i < this.trie.length; i++) this.trie[i] = view.getUint32(4 + 4 * i, true);
    this.blob = bytes.subarray(4 + trieSize);
  }

  static fromBase64(text: string, file: string): PrecompiledCharsmap {
    return new PrecompiledCharsmap(Uint8Array.from(atob(text), (c) => c.charCodeAt(0)), file);
  }

  /** Blob offsets of every trie key that is a prefix of `key`, shortest first. */
  private commonPrefixSearch(key: Uint8Array): number[] {
    const results: number[] = [];
    let unit = this.trie[0];
    let node = unitOffset(unit);
    for (const byte of key) {
      if (byte === 0) break;
      node ^= byte;
      unit = this.trie[node];
      if (unitLabel(unit) !== byte) return results;
      node ^= unitOffset(unit);
      if (unitHasLeaf(unit)) results.push(this.trie[node] & 0x7fffffff);
    }
    return results;
  }

  /**
   * The replacement for `chunk`, or null when it has none. Like SentencePiece, the
   * shortest matching key wins, even if it covers only the start of the chunk.
   */
  transform(chunk: string): string | null {
    const cached = this.cache.get(chunk);
    if (cached !== undefined) return cached;
    const found = this.commonPrefixSearch(utf8Bytes(chunk));
    let result: string | null = null;
    if (found.length > 0) {
      const start = found[0];
      let end = start;
      while (end < this.blob.length && this.blob[end] !== 0) end++;
      result = utf8Lossy(this.blob.subarray(start, end));
    }
    this.cache.set(chunk, result);
    return result;
  }

  /**
   * Normalizes grapheme by grapheme: a grapheme shorter than 6 UTF-8 bytes is looked up
   * whole first; otherwise (or when it has no entry) each character is looked up alone.
   * Offsets follow Rust's change counts, including its quirk that a removal at the
   * very start of the text is not counted (so later offsets shift).
   */
  normalize(ns: NormalizedString): NormalizedString {
    const stream: StreamChar[] = [];
    let changed = false;
    for (const { segment } of graphemes.segment(ns.text)) {
      if (utf8Length(segment) < 6) {
        const whole = this.transform(segment);
        if (whole !== null) {
          replace(stream, segment, whole);
          changed = true;
          continue;
        }
      }
      for (const char of segment) {
        const replaced = this.transform(char);
        if (replaced === null) stream.push({ char, change: 0 });
        else {
          replace(stream, char, replaced);
          changed = true;
        }
      }
    }
    return changed ? ns.transform(stream) : ns;
  }
}

interface StreamChar {
  char: string;
  change: number;
}

/** Appends `replacement` for `original` with Rust's change counts. */
function replace(stream: StreamChar[], original: string, replacement: string): void {
  const added = [...replacement];
  for (const char of added) stream.push({ char, change: 0 });
  const diff = added.length - [...original].length;
  if (diff > 0) for (let k = stream.length - diff; k < stream.length; k++) stream[k].change = 1;
  else if (diff < 0 && stream.length > 0) stream[stream.length - 1].change += diff;
}

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

// darts-clone unit fields.
function unitHasLeaf(unit: number): boolean {
  return ((unit >>> 8) & 1) === 1;
}

function unitLabel(unit: number): number {
  return unit & 0x800000ff;
}

function unitOffset(unit: number): number {
  return (unit >>> 10) << ((unit & (1 << 9)) >>> 6);
}
