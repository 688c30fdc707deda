import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The shared data folder: $GLASSFORMER_SHARED, else <repo root>/../shared (tests run from dist/test/encoder/). */
export const SHARED = process.env.GLASSFORMER_SHARED ?? resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'shared');
export const BERT_FIXTURE = join(SHARED, 'fixtures', 'hf-tiny', 'bert');
export const BERT_CLASSIFICATION_FIXTURE = join(BERT_FIXTURE, 'classification');
export const MINILM_FOLDER = join(SHARED, 'models', 'tokenizer-only', 'all-MiniLM-L6-v2');
