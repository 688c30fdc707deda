/**
 * A model folder's tokenizer (tokenizer.json, or the transformers files such
 * as vocab.txt) read through the FileSystem seam: one reader for the encoder,
 * decoder, encoder-decoder and training jobs.
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
