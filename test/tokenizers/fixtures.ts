/**
 * Access to the shared tokenizer fixtures (`../shared/fixtures/tokenizers`, or
 * `$GLASSFORMER_SHARED/fixtures/tokenizers`), which are never copied into the repo.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer } from '../../src/tokenizers/load-node.js';
import type { Tokenizer } from '../../src/tokenizers/index.js';

// This file runs from dist/test/tokenizers/, three levels below the repository root.
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const sharedDir = process.env.GLASSFORMER_SHARED ?? join(repoRoot, '..', 'shared');
export const fixturesDir = join(sharedDir, 'fixtures', 'tokenizers');

export const TOKENIZER_NAMES = ['gpt2', 'llama3', 'llama2', 'bert-base-uncased', 't5-small', 'qwen3', 'phi3-mini'] as const;

export function fixtureDir(name: string): string {
  return join(fixturesDir, name);
}

export function readJsonLines<T>(name: string, file: string): T[] {
  const path = join(fixtureDir(name), file);
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as T);
}

const loaded = new Map<string, Tokenizer>();

export async function fixtureTokenizer(name: string): Promise<Tokenizer> {
  let tokenizer = loaded.get(name);
  if (tokenizer === undefined) {
    tokenizer = await loadTokenizer(fixtureDir(name));
    loaded.set(name, tokenizer);
  }
  return tokenizer;
}

export interface Case {
  text: string;
  ids: number[];
  ids_no_special: number[];
  tokens: string[];
  decoded: string;
  decoded_skip_special: string;
  decoded_no_special: string;
  decoded_cleanup?: string;
  tag: string;
}

export interface PairCase {
  text: string;
  text_pair: string;
  ids: number[];
  type_ids: number[];
  tokens: string[];
  ids_no_special: number[];
  type_ids_no_special: number[];
}

export interface GoldenCase {
  text: string;
  text_pair?: string;
  ids?: number[];
  ids_no_special?: number[];
  tokens_no_special?: string[];
  decoded_transformers?: string;
  source: string;
}

/** Compares field by field; returns a description of the first differences. */
export function differences(expected: Record<string, unknown>, actual: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const key of Object.keys(expected)) {
    if (!(key in actual)) continue;
    const e = JSON.stringify(expected[key]);
    const a = JSON.stringify(actual[key]);
    if (e !== a) out.push(`${key}: expected ${e.slice(0, 300)} got ${a.slice(0, 300)}`);
  }
  return out;
}

export function checkCase(tokenizer: Tokenizer, c: Case): string[] {
  const encoding = tokenizer.encode(c.text);
  const plain = tokenizer.encode(c.text, { addSpecialTokens: false });
  const actual: Record<string, unknown> = {
    ids: encoding.ids,
    ids_no_special: plain.ids,
    tokens: encoding.tokens,
    decoded: tokenizer.decode(c.ids, { cleanUpTokenizationSpaces: false }),
    decoded_skip_special: tokenizer.decode(c.ids, { skipSpecialTokens: true, cleanUpTokenizationSpaces: false }),
    decoded_no_special: tokenizer.decode(c.ids_no_special, { cleanUpTokenizationSpaces: false }),
  };
  if (c.decoded_cleanup !== undefined) actual.decoded_cleanup = tokenizer.decode(c.ids, { cleanUpTokenizationSpaces: true });
  return differences({ ...c, tag: undefined, text: undefined }, actual);
}

export function checkPair(tokenizer: Tokenizer, c: PairCase): string[] {
  const encoding = tokenizer.encode(c.text, { pair: c.text_pair });
  const plain = tokenizer.encode(c.text, { pair: c.text_pair, addSpecialTokens: false });
  return differences(c as unknown as Record<string, unknown>, {
    ids: encoding.ids,
    type_ids: encoding.typeIds,
    tokens: encoding.tokens,
    ids_no_special: plain.ids,
    type_ids_no_special: plain.typeIds,
  });
}

export function checkGolden(tokenizer: Tokenizer, c: GoldenCase): string[] {
  const pair = c.text_pair === undefined ? {} : { pair: c.text_pair };
  const plain = tokenizer.encode(c.text, { ...pair, addSpecialTokens: false });
  const actual: Record<string, unknown> = { ids_no_special: plain.ids, tokens_no_special: plain.tokens };
  if (c.ids !== undefined) {
    actual.ids = tokenizer.encode(c.text, pair).ids;
    actual.decoded_transformers = tokenizer.decode(c.ids);
  }
  return differences(c as unknown as Record<string, unknown>, actual);
}
