/**
 * Translates the Oniguruma patterns found in `tokenizer.json` (the Rust library
 * compiles them with onig) into JavaScript regular expressions with the same matches.
 *
 * Differences handled:
 * - `\s`/`\S` mean Unicode White_Space in onig; JS `\s` also matches U+FEFF and misses U+0085.
 * - `\d`, `\w` are Unicode-aware in onig, ASCII-only in JS.
 * - Inline case-insensitive groups `(?i:...)` do not exist in Node 20's JS; each ASCII
 *   letter inside becomes a class of its case variants (plus the non-ASCII characters
 *   that case-fold to it, e.g. U+017F ſ folds to s).
 */
import { UnsupportedError } from '../errors.js';

const CASE_FOLD_EXTRAS: Record<string, string> = { k: '\u212a', s: '\u017f' };
const SYNTAX_CHARS = new Set('^$\\.*+?()[]{}|/-'.split(''));

const cache = new Map<string, RegExp>();

/** A global, Unicode-aware JS regex equivalent to the onig pattern `source`. */
export function compileOnigPattern(source: string): RegExp {
  let compiled = cache.get(source);
  if (compiled === undefined) {
    const translated = translate(source);
    try {
      compiled = new RegExp(translated, 'gu');
    } catch (error) {
      throw new UnsupportedError(`regex ${JSON.stringify(source)} cannot be compiled in JavaScript: ${(error as Error).message}`);
    }
    cache.set(source, compiled);
  }
  return new RegExp(compiled.source, compiled.flags);
}

/** Escapes `text` so that it matches literally. */
export function escapeRegex(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
}

function translate(source: string): string {
  let out = '';
  let inClass = false;
  // Depths of open groups, marking those that are case-insensitive.
  const groups: boolean[] = [];
  const ignoreCase = (): boolean => groups.includes(true);
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') {
      const next = source[i + 1] ?? '';
      i++;
      out += translateEscape(next, inClass, source, i);
      if (next === 'p' || next === 'P') {
        const close = source.indexOf('}', i);
        out += source.slice(i + 1, close + 1);
        i = close;
      }
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += ignoreCase() ? foldLetter(c, true) : c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      if (source[i + 1] === '^') {
        out += '^';
        i++;
      }
      continue;
    }
    if (c === '(') {
      if (source.startsWith('(?i:', i)) {
        groups.push(true);
        out += '(?:';
        i += 3;
        continue;
      }
      groups.push(false);
      out += c;
      continue;
    }
    if (c === ')') {
      groups.pop();
      out += c;
      continue;
    }
    out += ignoreCase() ? foldLetter(c, false) : c;
  }
  return out;
}

function translateEscape(next: string, inClass: boolean, source: string, at: number): string {
  switch (next) {
    case 's':
      return '\\p{White_Space}';
    case 'S':
      if (inClass) throw new UnsupportedError(`regex ${JSON.stringify(source)}: \\S inside a character class (position ${at})`);
      return '\\P{White_Space}';
    case 'd':
      return '\\p{Nd}';
    case 'w':
      return inClass ? '\\p{L}\\p{M}\\p{Nd}\\p{Pc}' : '[\\p{L}\\p{M}\\p{Nd}\\p{Pc}]';
    case 'p':
    case 'P':
      return `\\${next}`;
    default:
      if (/[A-Za-z0-9]/.test(next) || SYNTAX_CHARS.has(next)) return `\\${next}`;
      // Onig accepts escapes of any punctuation; JS in Unicode mode only of syntax characters.
      return next;
  }
}

function foldLetter(c: string, inClass: boolean): string {
  const lower = c.toLowerCase();
  if (!/[a-z]/.test(lower) || c.length !== 1) return c;
  const variants = lower + lower.toUpperCase() + (CASE_FOLD_EXTRAS[lower] ?? '');
  return inClass ? variants : `[${variants}]`;
}
