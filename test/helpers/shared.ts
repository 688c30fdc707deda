import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: compiled tests live in dist/test/<area>/. */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Test data lives beside the repository, never in it. */
export const SHARED = process.env.GLASSFORMER_SHARED ?? join(REPO, '..', 'shared');

export const HF_TINY = join(SHARED, 'fixtures', 'hf-tiny');
