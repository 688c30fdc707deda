import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';

/** The shared data folder: $GLASSFORMER_SHARED, else <repo root>/../shared (tests run from dist/test/encoder/). */
export const SHARED = process.env.GLASSFORMER_SHARED ?? resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'shared');
export const BERT_FIXTURE = join(SHARED, 'fixtures', 'hf-tiny', 'bert');
export const BERT_CLASSIFICATION_FIXTURE = join(BERT_FIXTURE, 'classification');
export const MINILM_FOLDER = join(SHARED, 'models', 'tokenizer-only', 'all-MiniLM-L6-v2');

const temporary: string[] = [];

/** A fresh temporary folder, removed when the test file finishes. */
export async function temporaryFolder(prefix: string): Promise<string> {
  if (temporary.length === 0) after(() => Promise.all(temporary.splice(0).map((dir) => rm(dir, { recursive: true, force: true }))));
  const dir = await mkdtemp(join(tmpdir(), `glassformer-${prefix}-`));
  temporary.push(dir);
  return dir;
}
