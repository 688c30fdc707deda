/**
 * Offsets and encodings beside Hugging Face's Rust library itself (npm `tokenizers`,
 * its official Node binding, a dev dependency), on every fixture case and on seeded
 * random strings. The fixtures record no offsets, so this is where offsets are
 * checked. The binding is a dev dependency, so its absence is a failure.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fixtureDir, fixtureTokenizer, readJsonLines, TOKENIZER_NAMES, type Case } from './fixtures.js';

interface RustEncoding {
  getIds(): number[];
  getTokens(): string[];
  getOffsets(): number[][];
}
interface RustTokenizer {
  encode(text: string, pair?: string | null, options?: { addSpecialTokens?: boolean }): Promise<RustEncoding>;
}

function loadBinding(): { Tokenizer: { fromFile(path: string): RustTokenizer } } {
  try {
    return createRequire(import.meta.url)('tokenizers') as { Tokenizer: { fromFile(path: string): RustTokenizer } };
  } catch (error) {
    throw new Error(`the dev dependency "tokenizers" (Hugging Face's Rust binding) does not load; run npm ci: ${(error as Error).message}`);
  }
}

const binding = loadBinding();

/** The binding reports offsets in code points; glassformer in UTF-16 code units. */
function toCodePoints(text: string, offsets: [number, number][]): number[][] {
  return offsets.map(([start, end]) => [[...text.slice(0, start)].length, [...text.slice(0, end)].length]);
}

/** Seeded strings mixing words, whitespace, marks, many scripts, emoji and the tokenizer's added tokens. */
function randomTexts(seed: number, count: number, addedTokens: string[]): string[] {
  let state = seed >>> 0;
  const random = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const blocks: [number, number][] = [
    [0x20, 0x7e], [0x20, 0x7e], [0xa0, 0x24f], [0x300, 0x36f], [0x370, 0x4ff], [0x590, 0x6ff], [0x900, 0x97f],
    [0xe00, 0xe7f], [0x1100, 0x11ff], [0x2000, 0x22ff], [0x3000, 0x30ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3],
    [0xfb00, 0xfb4f], [0xfe00, 0xfe6f], [0xff00, 0xffef], [0x1f300, 0x1faff], [0x20000, 0x2a6df], [0x0, 0x1f],
  ];
  const pieces = [' ', '  ', '\n', '\t', '\r\n', '\u00a0', '\u3000', "'s", "n't", 'Hello', ' world', '1234567', 'naïve', 'e\u0301', ...addedTokens];
  return Array.from({ length: count }, () => {
    let text = '';
    const n = Math.floor(random() * 16);
    for (let i = 0; i < n; i++) {
      if (random() < 0.4) text += pick(pieces);
      else {
        const [low, high] = pick(blocks);
        for (let k = 1 + Math.floor(random() * 4); k > 0; k--) text += String.fromCodePoint(low + Math.floor(random() * (high - low + 1)));
      }
    }
    return random() < 0.2 ? text.toUpperCase() : text;
  });
}

for (const name of TOKENIZER_NAMES) {
  describe(`${name} beside the Rust binding`, () => {
    const rust = (): RustTokenizer => binding.Tokenizer.fromFile(join(fixtureDir(name), 'tokenizer.json'));

    it('gives the same offsets on every case of cases.jsonl', async () => {
      const ours = await fixtureTokenizer(name);
      const theirs = rust();
      const failures: string[] = [];
      for (const c of readJsonLines<Case>(name, 'cases.jsonl')) {
        const expected = (await theirs.encode(c.text)).getOffsets();
        const actual = toCodePoints(c.text, ours.encode(c.text).offsets);
        if (JSON.stringify(actual) !== JSON.stringify(expected)) failures.push(JSON.stringify(c.text).slice(0, 80));
      }
      assert.deepEqual(failures.slice(0, 5), [], `${name}: ${failures.length} cases with different offsets`);
    });

    it('gives the same ids, tokens and offsets on 300 seeded random strings', async () => {
      const ours = await fixtureTokenizer(name);
      const theirs = rust();
      const failures: string[] = [];
      for (const text of randomTexts(2024, 300, ours.addedVocabulary.tokens.slice(0, 20).map((t) => t.content))) {
        const expected = await theirs.encode(text);
        const actual = ours.encode(text);
        const same =
          JSON.stringify(actual.ids) === JSON.stringify(expected.getIds()) &&
          JSON.stringify(actual.tokens) === JSON.stringify(expected.getTokens()) &&
          JSON.stringify(toCodePoints(text, actual.offsets)) === JSON.stringify(expected.getOffsets());
        if (!same) failures.push(JSON.stringify(text).slice(0, 80));
      }
      assert.deepEqual(failures.slice(0, 5), [], `${name}: ${failures.length} of 300 random strings differ`);
    });
  });
}
