/**
 * Loads a tokenizer from the files of a model folder, through a `readText` function
 * so that this code runs anywhere (Node, browser, in-memory). Layouts, in order of
 * preference: `tokenizer.json`; `vocab.txt` (BERT WordPiece); `vocab.json` +
 * `merges.txt` (GPT-2 byte-level BPE). `tokenizer_config.json` and
 * `special_tokens_map.json` are read when present.
 */
import { FormatError } from '../errors.js';
import type { JsonObject } from './json.js';
import { JsonPath, asObject } from './json.js';
import { bpeFromVocabAndMerges, wordPieceFromVocabTxt } from './legacy.js';
import { Tokenizer } from './tokenizer.js';

/** Returns a file's text, or undefined when the file does not exist. */
export type ReadText = (name: string) => Promise<string | undefined>;

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new FormatError(file, `not valid JSON: ${(error as Error).message}`);
  }
}

async function readJsonObject(read: ReadText, file: string): Promise<JsonObject | undefined> {
  const text = await read(file);
  return text === undefined ? undefined : asObject(parseJson(text, file), new JsonPath(file, ''));
}

export async function loadTokenizerWith(read: ReadText, where = 'tokenizer folder'): Promise<Tokenizer> {
  const config = await readJsonObject(read, 'tokenizer_config.json');
  const specialTokensMap = await readJsonObject(read, 'special_tokens_map.json');
  const tokenizerJson = await read('tokenizer.json');
  if (tokenizerJson !== undefined) {
    return Tokenizer.fromJSON(parseJson(tokenizerJson, 'tokenizer.json'), { config, specialTokensMap });
  }
  const vocabTxt = await read('vocab.txt');
  if (vocabTxt !== undefined) return wordPieceFromVocabTxt(vocabTxt, config ?? {}, specialTokensMap ?? {});
  const vocabJson = await read('vocab.json');
  const merges = await read('merges.txt');
  if (vocabJson !== undefined && merges !== undefined) {
    return bpeFromVocabAndMerges(parseJson(vocabJson, 'vocab.json'), merges, config ?? {}, specialTokensMap ?? {});
  }
  throw new FormatError(where, 'no tokenizer.json, vocab.txt, or vocab.json with merges.txt found');
}
