/**
 * Open a model folder for the encoder jobs: the tokenizer (tokenizer.json or
 * vocab.txt) read through the FileSystem seam, and the model with the head a
 * job needs.
 */
import { FileNotFoundError } from '../errors.js';
import type { FileSystem } from '../io/source.js';
import { loadTokenizerWith } from '../tokenizers/load.js';
import type { Tokenizer } from '../tokenizers/index.js';

/** The folder's tokenizer; a missing tokenizer file is simply absent, any other read error surfaces. */
export async function loadFolderTokenizer(fs: FileSystem, dir: string): Promise<Tokenizer> {
  return loadTokenizerWith(async (name) => {
    try {
      return await fs.readText(fs.join(dir, name));
    } catch (error) {
      if (error instanceof FileNotFoundError) return undefined;
      throw error;
    }
  }, dir);
}
