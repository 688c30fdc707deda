/**
 * GPT-2's byte-to-unicode table: every byte gets a printable character so that BPE
 * can work on strings. Printable Latin-1 bytes map to themselves; the other 68
 * (controls, space, 0x7F-0xA0, 0xAD) map to U+0100 onwards in byte order, which is
 * why a space shows as `Ġ` (U+0120) and a newline as `Ċ` (U+010A).
 */
import type { Chunk, NormalizedString } from './normalized-string.js';
import { utf8Bytes } from './unicode.js';

export const BYTE_TO_CHAR: readonly string[] = (() => {
  const table: string[] = new Array<string>(256);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : 256 + next++);
  }
  return table;
})();

export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

// Words repeat, so their byte-level forms are cached (bounded, like Rust's BPE cache).
const byteLevelCache = new Map<string, string>();
const CACHE_CAPACITY = 50_000;
const CACHE_MAX_WORD = 64;

/** Text as byte-level characters, one per UTF-8 byte. */
export function toByteLevel(text: string): string {
  if (text.length > CACHE_MAX_WORD) return mapBytes(text);
  let out = byteLevelCache.get(text);
  if (out === undefined) {
    out = mapBytes(text);
    if (byteLevelCache.size < CACHE_CAPACITY) byteLevelCache.set(text, out);
  }
  return out;
}

function mapBytes(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) {
      out += BYTE_TO_CHAR[code];
      continue;
    }
    const width = code >= 0xd800 && code <= 0xdbff && i + 1 < text.length ? 2 : 1;
    for (const byte of utf8Bytes(text.slice(i, i + width))) out += BYTE_TO_CHAR[byte];
    i += width - 1;
  }
  return out;
}

const ASCII = /^[\0-\x7f]*$/;

/** Maps a split to byte-level characters, keeping each byte aligned to its character. */
export function byteLevelSplit(ns: NormalizedString): NormalizedString {
  const text = ns.text;
  if (ASCII.test(text)) return ns.withUnits(toByteLevel(text));
  const chunks: Chunk[] = [];
  for (let i = 0; i < text.length; ) {
    const width = (text.codePointAt(i) as number) > 0xffff ? 2 : 1;
    chunks.push({ text: toByteLevel(text.slice(i, i + width)), from: i, to: i + width });
    i += width;
  }
  return ns.rebuild(chunks);
}
