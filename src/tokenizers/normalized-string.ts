/**
 * A piece of text as it moves through the pipeline, remembering where each of its
 * UTF-16 code units came from in the caller's original string, so that every token
 * can report offsets into what the user typed (as the Rust library's
 * `NormalizedString` does with byte alignments).
 */

/** A replacement produced by a normalizer: `text` replaces units [from, to) of the source. */
export interface Chunk {
  text: string;
  from: number;
  to: number;
}

/** How the pieces around a pattern match are kept (Rust `SplitDelimiterBehavior`). */
export type SplitBehavior = 'Removed' | 'Isolated' | 'MergedWithPrevious' | 'MergedWithNext' | 'Contiguous';

/** A span [start, end) of a string and whether the pattern matched it. */
export type MatchSpan = [start: number, end: number, isMatch: boolean];

export class NormalizedString {
  /**
   * @param text the normalized text
   * @param align original [start, end) for each code unit of `text` (2 entries per unit),
   *   or null when `text` is an untouched slice of the original starting at `base`
   * @param base original offset of unit 0 when `align` is null
   */
  constructor(
    readonly text: string,
    private readonly align: Int32Array | null = null,
    private readonly base = 0,
  ) {}

  get length(): number {
    return this.text.length;
  }

  /** Original offset where code unit `i` starts. */
  originalStart(i: number): number {
    if (this.align === null) return this.base + i;
    if (this.text.length === 0) return this.base;
    return i < this.text.length ? this.align[2 * i] : this.align[2 * this.text.length - 1];
  }

  /** Original offset where code unit `i` ends. */
  originalEnd(i: number): number {
    if (this.align === null) return this.base + i + 1;
    return this.align[2 * i + 1];
  }

  /** Original [start, end) covered by normalized units [start, end). */
  originalSpan(start: number, end: number): [number, number] {
    if (start >= end) {
      const at = this.originalStart(start);
      return [at, at];
    }
    return [this.originalStart(start), this.originalEnd(end - 1)];
  }

  slice(start: number, end: number): NormalizedString {
    if (this.align === null) return new NormalizedString(this.text.slice(start, end), null, this.base + start);
    const text = this.text.slice(start, end);
    if (text.length === 0) return new NormalizedString('', null, this.originalStart(start));
    return new NormalizedString(text, this.align.slice(2 * start, 2 * end), 0);
  }

  /** The same alignment with every code unit replaced one for one (`text` has this length). */
  withUnits(text: string): NormalizedString {
    return new NormalizedString(text, this.align, this.base);
  }

  /**
   * Builds the string that replaces each chunk's source range by its text. Chunks must
   * be in order and cover the source without gaps. Units of an unchanged chunk keep
   * their own alignment; units of a changed chunk all point at the chunk's source span.
   */
  rebuild(chunks: Chunk[]): NormalizedString {
    const text = chunks.map((c) => c.text).join('');
    const align = new Int32Array(2 * text.length);
    let out = 0;
    for (const chunk of chunks) {
      const unchanged = chunk.to - chunk.from === chunk.text.length && this.text.slice(chunk.from, chunk.to) === chunk.text;
      const [spanStart, spanEnd] = this.originalSpan(chunk.from, chunk.to);
      for (let k = 0; k < chunk.text.length; k++, out++) {
        align[2 * out] = unchanged ? this.originalStart(chunk.from + k) : spanStart;
        align[2 * out + 1] = unchanged ? this.originalEnd(chunk.from + k) : spanEnd;
      }
    }
    return new NormalizedString(text, align, 0);
  }

  /**
   * Rust's `NormalizedString::transform`: each output character comes with a change
   * count. A count of 0 or -n takes the offsets of the next source character (and
   * skips n more); a positive count marks an inserted character, which repeats the
   * previous offsets. Source characters left over at the end are dropped.
   */
  transform(stream: readonly { char: string; change: number }[]): NormalizedString {
    const text = stream.map((e) => e.char).join('');
    const align = new Int32Array(2 * text.length);
    let out = 0;
    let next = 0;
    let previous: [number, number] = [this.originalStart(0), this.originalStart(0)];
    for (const { char, change } of stream) {
      if (change <= 0) {
        if (next < this.text.length) {
          const width = (this.text.codePointAt(next) as number) > 0xffff ? 2 : 1;
          previous = this.originalSpan(next, next + width);
          next += width;
        } else {
          const end = this.originalSpan(0, this.text.length)[1];
          previous = [end, end];
        }
        for (let skip = -change; skip > 0 && next < this.text.length; skip--) {
          next += (this.text.codePointAt(next) as number) > 0xffff ? 2 : 1;
        }
      }
      for (let k = 0; k < char.length; k++, out++) {
        align[2 * out] = previous[0];
        align[2 * out + 1] = previous[1];
      }
    }
    return new NormalizedString(text, align, 0);
  }

  /**
   * Rewrites each code point with `map`, which returns the replacement (possibly
   * empty, possibly several characters). Returns `this` when nothing changes.
   */
  mapCodePoints(map: (char: string) => string): NormalizedString {
    const chunks: Chunk[] = [];
    let changed = false;
    let runStart = 0;
    const text = this.text;
    for (let i = 0; i < text.length; ) {
      const code = text.codePointAt(i) as number;
      const width = code > 0xffff ? 2 : 1;
      const char = width === 1 ? text[i] : text.slice(i, i + 2);
      const replacement = map(char);
      if (replacement !== char) {
        if (runStart < i) chunks.push({ text: text.slice(runStart, i), from: runStart, to: i });
        chunks.push({ text: replacement, from: i, to: i + width });
        runStart = i + width;
        changed = true;
      }
      i += width;
    }
    if (!changed) return this;
    if (runStart < text.length) chunks.push({ text: text.slice(runStart), from: runStart, to: text.length });
    return this.rebuild(chunks);
  }

  /** Adds `prefix` before the text; the new units point at the first character. */
  prepend(prefix: string): NormalizedString {
    if (this.text.length === 0) return this;
    const firstWidth = (this.text.codePointAt(0) as number) > 0xffff ? 2 : 1;
    return this.rebuild([
      { text: prefix + this.text.slice(0, firstWidth), from: 0, to: firstWidth },
      { text: this.text.slice(firstWidth), from: firstWidth, to: this.text.length },
    ]);
  }

  /**
   * Replaces every match of `pattern` (a global regex) by `content`. As in Rust, the
   * replacement takes the offsets of the last character it replaces.
   */
  replaceAll(pattern: RegExp, content: string): NormalizedString {
    const chunks: Chunk[] = [];
    let last = 0;
    for (const m of this.text.matchAll(pattern)) {
      const start = m.index;
      const end = start + m[0].length;
      if (start === end) continue;
      if (last < start) chunks.push({ text: this.text.slice(last, start), from: last, to: start });
      const lastChar = end - ((this.text.codePointAt(end - 2) ?? 0) > 0xffff && end - 2 >= start ? 2 : 1);
      if (start < lastChar) chunks.push({ text: '', from: start, to: lastChar });
      chunks.push({ text: content, from: lastChar, to: end });
      last = end;
    }
    if (chunks.length === 0) return this;
    if (last < this.text.length) chunks.push({ text: this.text.slice(last), from: last, to: this.text.length });
    return this.rebuild(chunks);
  }

  /** Splits into pieces around the given matches, following the Rust delimiter behaviours. */
  splitBy(matches: MatchSpan[], behavior: SplitBehavior): NormalizedString[] {
    const pieces: MatchSpan[] = [];
    switch (behavior) {
      case 'Removed':
        for (const m of matches) if (!m[2]) pieces.push(m);
        break;
      case 'Isolated':
        for (const m of matches) pieces.push(m);
        break;
      case 'MergedWithPrevious': {
        let previousMatch = false;
        for (const m of matches) {
          const last = pieces[pieces.length - 1];
          if (m[2] && !previousMatch && last !== undefined) last[1] = m[1];
          else pieces.push([m[0], m[1], false]);
          previousMatch = m[2];
        }
        break;
      }
      case 'MergedWithNext': {
        let previousMatch = false;
        for (let i = matches.length - 1; i >= 0; i--) {
          const m = matches[i];
          const last = pieces[pieces.length - 1];
          if (m[2] && !previousMatch && last !== undefined) last[0] = m[0];
          else pieces.push([m[0], m[1], false]);
          previousMatch = m[2];
        }
        pieces.reverse();
        break;
      }
      case 'Contiguous': {
        let previousMatch = false;
        for (const m of matches) {
          const last = pieces[pieces.length - 1];
          if (m[2] === previousMatch && last !== undefined) last[1] = m[1];
          else pieces.push([m[0], m[1], false]);
          previousMatch = m[2];
        }
        break;
      }
    }
    return pieces.filter((p) => p[1] > p[0]).map((p) => this.slice(p[0], p[1]));
  }
}

/** Spans of `text` matched by the global regex `pattern`, with the gaps between them. */
export function regexMatches(text: string, pattern: RegExp, invert = false): MatchSpan[] {
  const spans: MatchSpan[] = [];
  let previous = 0;
  pattern.lastIndex = 0;
  for (let m = pattern.exec(text); m !== null; m = pattern.exec(text)) {
    const start = m.index;
    const end = start + m[0].length;
    if (start === end) {
      pattern.lastIndex = start + 1;
      continue;
    }
    if (previous < start) spans.push([previous, start, invert]);
    spans.push([start, end, !invert]);
    previous = end;
  }
  if (previous < text.length) spans.push([previous, text.length, invert]);
  return spans;
}

/** Spans of `text` where each character satisfying `test` is its own match. */
export function charMatches(text: string, test: (char: string) => boolean, invert = false): MatchSpan[] {
  const spans: MatchSpan[] = [];
  let previous = 0;
  for (let i = 0; i < text.length; ) {
    const width = (text.codePointAt(i) as number) > 0xffff ? 2 : 1;
    const char = width === 1 ? text[i] : text.slice(i, i + 2);
    if (test(char)) {
      if (previous < i) spans.push([previous, i, invert]);
      spans.push([i, i + width, !invert]);
      previous = i + width;
    }
    i += width;
  }
  if (previous < text.length) spans.push([previous, text.length, invert]);
  return spans;
}
