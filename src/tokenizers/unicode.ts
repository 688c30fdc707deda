/**
 * Character classes with the definitions the Rust `tokenizers` crate uses, so that
 * the JavaScript pipeline splits and cleans text exactly where Rust does, down to
 * the Unicode version of each table (see unicode-versions.ts).
 */
import {
  isAfterUnicode8,
  isMarkAfterUnicode9,
  UNICODE_8_NONSPACING,
  UNICODE_8_NOT_NONSPACING,
  UNICODE_8_PUNCTUATION,
  UNICODE_9_MARKS,
  UNICODE_9_NOT_MARKS,
} from './unicode-versions.js';

const WHITESPACE = /^\p{White_Space}$/u;
const PUNCTUATION = /^\p{P}$/u;
const ASCII_PUNCTUATION = /^[!-/:-@[-`{-~]$/;
const OTHER = /^[\p{Cc}\p{Cf}\p{Co}]$/u;
const NONSPACING_MARK = /^\p{Mn}$/u;
const MARK = /^\p{M}$/u;
const WORD = /^[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]$/u;

/** Rust `char::is_whitespace`: the Unicode White_Space property (JS `\s` differs on U+0085 and U+FEFF). */
export function isWhitespace(char: string): boolean {
  const code = char.charCodeAt(0);
  if (code < 0x80) return code === 0x20 || (code >= 0x09 && code <= 0x0d);
  return WHITESPACE.test(char);
}

/** BERT punctuation: any ASCII symbol (so `$`, `^`, `` ` `` count) or a Unicode 8.0 P* character. */
export function isBertPunctuation(char: string): boolean {
  if (char.charCodeAt(0) < 0x80) return ASCII_PUNCTUATION.test(char);
  const code = char.codePointAt(0) as number;
  return (PUNCTUATION.test(char) && !isAfterUnicode8(code)) || UNICODE_8_PUNCTUATION.has(code);
}

/**
 * BERT's control test: categories Cc, Cf, Co (of Unicode 8.0), except tab, newline and carriage return.
 * Unassigned code points (Cn) are kept, as Rust's `unicode_categories` `is_other` does.
 */
export function isBertControl(char: string): boolean {
  const code = char.charCodeAt(0);
  if (code < 0x80) return (code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) || code === 0x7f;
  return OTHER.test(char) && !isAfterUnicode8(char.codePointAt(0) as number);
}

/** BERT's whitespace test: tab, newline and carriage return count as whitespace. */
export function isBertWhitespace(char: string): boolean {
  return char === '\t' || char === '\n' || char === '\r' || isWhitespace(char);
}

/** A Unicode 8.0 nonspacing mark (Mn): what BERT's accent stripping removes. */
export function isBertNonspacingMark(char: string): boolean {
  if (char.charCodeAt(0) < 0x300) return false;
  const code = char.codePointAt(0) as number;
  if (UNICODE_8_NONSPACING.has(code)) return true;
  return NONSPACING_MARK.test(char) && !isAfterUnicode8(code) && !UNICODE_8_NOT_NONSPACING.has(code);
}

/** A Unicode 9.0 combining mark (M*): what the StripAccents normalizer removes. */
export function isCombiningMark(char: string): boolean {
  if (char.charCodeAt(0) < 0x300) return false;
  const code = char.codePointAt(0) as number;
  if (UNICODE_9_MARKS.has(code)) return true;
  return MARK.test(char) && !isMarkAfterUnicode9(code) && !UNICODE_9_NOT_MARKS.has(code);
}

/** A regex `\w` character, used by added tokens with `single_word`. */
export function isWordCharacter(char: string): boolean {
  return WORD.test(char);
}

/**
 * The CJK blocks BERT surrounds with spaces (the ranges of the original BERT code,
 * as Rust's BertNormalizer lists them).
 */
export function isChineseChar(code: number): boolean {
  return (
    (code >= 0x4e00 && code <= 0x9fff) ||
    (code >= 0x3400 && code <= 0x4dbf) ||
    (code >= 0x20000 && code <= 0x2a6df) ||
    (code >= 0x2a700 && code <= 0x2b73f) ||
    (code >= 0x2b740 && code <= 0x2b81f) ||
    (code >= 0x2b920 && code <= 0x2ceaf) ||
    (code >= 0xf900 && code <= 0xfaff) ||
    (code >= 0x2f800 && code <= 0x2fa1f)
  );
}

const encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF in the output, as Rust does.
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function utf8Bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/** UTF-8 decoding that replaces each maximal invalid subsequence by U+FFFD, like Rust's `from_utf8_lossy`. */
export function utf8Lossy(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** Strict UTF-8 decoding: null when the bytes are not valid UTF-8. */
export function utf8Strict(bytes: Uint8Array): string | null {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return null;
  }
}

/** Replaces lone surrogates by U+FFFD, as encoding to UTF-8 does. */
export function wellFormed(text: string): string {
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}
