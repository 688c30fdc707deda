/** Node file access for `loadTokenizer`: a folder path, or explicit paths per file name. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadTokenizerWith } from './load.js';
import type { Tokenizer } from './tokenizer.js';

/**
 * Loads from a folder (`loadTokenizer('models/gpt2')`) or from named files
 * (`loadTokenizer({'tokenizer.json': '/tmp/t.json'})`).
 */
export async function loadTokenizer(source: string | Record<string, string>): Promise<Tokenizer> {
  const pathOf = (name: string): string | undefined => (typeof source === 'string' ? join(source, name) : source[name]);
  return loadTokenizerWith(async (name) => {
    const path = pathOf(name);
    if (path === undefined) return undefined;
    try {
      return await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }, typeof source === 'string' ? source : Object.values(source).join(', '));
}
