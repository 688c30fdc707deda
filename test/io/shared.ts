import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Compiled tests live in dist/test/io/, so the repository root is three directories up. */
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The shared data folder (fixtures, models): $GLASSFORMER_SHARED or <repo>/../shared. */
export const SHARED = process.env.GLASSFORMER_SHARED ?? join(repoRoot, '..', 'shared');

export const HF_TINY = join(SHARED, 'fixtures', 'hf-tiny');

/** Every fixture folder that holds a Hugging Face model, relative to HF_TINY. */
export const HF_FAMILIES = ['bert', 'bert/classification', 'gpt2', 'llama', 't5', 't5/gated-gelu', 'bart', 'marian'] as const;
