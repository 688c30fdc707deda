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
 * - Node may know a newer Unicode than onig; with the `v` flag, letter, mark and digit
 *   classes leave out the characters onig does not know (falling back to the `u` flag
 *   for patterns the stricter `v` syntax rejects).
 */
import { UnsupportedError } from '../errors.js';
import { UNICODE_17_LETTERS_MARKS_DIGITS } from './unicode-versions.js';

const CASE_FOLD_EXTRAS: Record<string, string> = { k: '\u212a', s: '\u017f' };
const SYNTAX_CHARS = new Set('^$\\.*+?()[]{}|/-'.split(''));

const cache = new Map<string, RegExp>();

/** A global, Unicode-aware JS regex equivalent to the onig pattern `source`. */
export function compileOnigPattern(source: string): RegExp {
  let compiled = cache.get(source);
  if (compiled === undefined) {
    try {
      compiled = new RegExp(translate(source, 'v'), 'gv');
    } catch {
      try {
        compiled = new RegExp(translate(source, 'u'), 'gu');
      } catch (error) {
        throw new UnsupportedError(`regex ${JSON.stringify(source)} cannot be compiled in JavaScript: ${(error as Error).message}`);
      }
    }
    cache.set(source, compiled);
  }
  return new RegExp(compiled.source, compiled.flags);
}

const hex = (code: number): string => `\\u{${code.toString(16)}}`;
/** A `v`-flag class of the letters, marks and digits Rust's regex engines do not know yet. */
export const ONIG_UNKNOWN = `[${UNICODE_17_LETTERS_MARKS_DIGITS.map(([a, b]) => (a === b ? hex(a) : `${hex(a)}-${hex(b)}`)).join('')}]`;
const NEWER_CATEGORIES = /^(L[ultmo]?|M[nce]?|N[dlo]?|Letter|Mark|Number)$/;

/** A `\p{X}` (or `\P{X}`) class, without the characters onig does not know in `v` mode. */
function property(name: string, negated: boolean, mode: Mode): string {
  const escape = `\\${negated ? 'P' : 'p'}{${name}}`;
  if (mode === 'u' || !NEWER_CATEGORIES.test(name)) return escape;
  return negated ? `[${escape}${ONIG_UNKNOWN}]` : `[${escape}--${ONIG_UNKNOWN}]`;
}

/** Escapes `text` so that it matches literally (outside a class; `-` needs no escape there and the `u` flag forbids one). */
export function escapeRegex(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}

type Mode = 'u' | 'v';

function translate(source: string, mode: Mode): string {
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
      if (next === 'p' || next === 'P') {
        const close = source.indexOf('}', i);
        out += property(source.slice(i + 2, close), next === 'P', mode);
        i = close;
        continue;
      }
      out += translateEscape(next, inClass, source, i, mode);
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      // The `v` flag reserves these inside classes; escaped they stay literal.
      else if (mode === 'v' && '()[{}/|'.includes(c)) {
        out += `\\${c}`;
        continue;
      }
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

function translateEscape(next: string, inClass: boolean, source: string, at: number, mode: Mode): string {
  switch (next) {
    case 's':
      return '\\p{White_Space}';
    case 'S':
      if (inClass) throw new UnsupportedError(`regex ${JSON.stringify(source)}: \\S inside a character class (position ${at})`);
      return '\\P{White_Space}';
    case 'd':
      return property('Nd', false, mode);
    case 'w': {
      const word = ['L', 'M', 'Nd'].map((name) => property(name, false, mode)).join('') + '\\p{Pc}';
      return inClass ? word : `[${word}]`;
    }
    default:
      // `\-` is only valid inside a class under the `u`/`v` flags; outside, `-` is literal anyway.
      if (next === '-' && !inClass) return '-';
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
