/**
 * Exact parity with Hugging Face's Rust `tokenizers` (0.22) on every recorded case
 * of the seven fixture tokenizers, and with Python transformers' golden vectors.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkCase,
  checkGolden,
  checkPair,
  fixtureTokenizer,
  readJsonLines,
  TOKENIZER_NAMES,
  type Case,
  type GoldenCase,
  type PairCase,
} from './fixtures.js';
import type { Tokenizer } from '../../src/tokenizers/index.js';

/** Runs `check` on every case; the failure message lists the count and the first mismatches. */
function assertAllMatch<T extends { text: string }>(name: string, file: string, cases: T[], tokenizer: Tokenizer, check: (t: Tokenizer, c: T) => string[]): void {
  const failures: string[] = [];
  for (const c of cases) {
    const diff = check(tokenizer, c);
    if (diff.length > 0) failures.push(`${JSON.stringify(c.text).slice(0, 120)}\n    ${diff.join('\n    ')}`);
  }
  assert.ok(cases.length > 0, `${name}/${file}: no cases found`);
  assert.equal(
    failures.length,
    0,
    `${name}/${file}: ${failures.length} of ${cases.length} cases differ\n  ${failures.slice(0, 5).join('\n  ')}`,
  );
}

for (const name of TOKENIZER_NAMES) {
  describe(`${name} matches Hugging Face tokenizers`, () => {
    it('on every line of cases.jsonl (ids, tokens, all decodes)', async () => {
      assertAllMatch(name, 'cases.jsonl', readJsonLines<Case>(name, 'cases.jsonl'), await fixtureTokenizer(name), checkCase);
    });
    it('on every pair of pairs.jsonl (ids, type ids, tokens)', async () => {
      assertAllMatch(name, 'pairs.jsonl', readJsonLines<PairCase>(name, 'pairs.jsonl'), await fixtureTokenizer(name), checkPair);
    });
    it('on every golden vector produced by Python transformers', async () => {
      assertAllMatch(name, 'golden_hf.jsonl', readJsonLines<GoldenCase>(name, 'golden_hf.jsonl'), await fixtureTokenizer(name), checkGolden);
    });
  });
}
