import { createInterface } from 'node:readline';
import { Command } from 'commander';
import { FormatError } from '../../errors.js';
import { loadTokenizer } from '../../tokenizers/load-node.js';
import type { Tokenizer } from '../../tokenizers/index.js';
import { EXIT } from '../errors.js';

/** What one input line yields: the fields other tools read. */
export interface TokenizeRecord {
  ids: number[];
  tokens: string[];
  type_ids: number[];
  offsets: [number, number][];
  ids_no_special: number[];
  decoded: string;
  decoded_skip_special: string;
}

/** Encodes one `{"text": …, "text_pair"?: …}` line; `lineNumber` (1-based) names it in errors. */
export function tokenizeLine(tokenizer: Tokenizer, line: string, lineNumber: number): TokenizeRecord {
  let input: unknown;
  try {
    input = JSON.parse(line);
  } catch (error) {
    throw new FormatError('stdin', `line ${lineNumber}: not valid JSON: ${(error as Error).message}`);
  }
  const { text, text_pair: pair } = (typeof input === 'object' && input !== null ? input : {}) as { text?: unknown; text_pair?: unknown };
  if (typeof text !== 'string') throw new FormatError('stdin', `line ${lineNumber}: expected {"text": string, "text_pair"?: string}, found ${line.slice(0, 80)}`);
  if (pair !== undefined && pair !== null && typeof pair !== 'string') {
    throw new FormatError('stdin', `line ${lineNumber}: text_pair must be a string, found ${JSON.stringify(pair).slice(0, 80)}`);
  }
  const options = typeof pair === 'string' ? { pair } : {};
  const encoding = tokenizer.encode(text, options);
  return {
    ids: encoding.ids,
    tokens: encoding.tokens,
    type_ids: encoding.typeIds,
    offsets: encoding.offsets,
    ids_no_special: tokenizer.encode(text, { ...options, addSpecialTokens: false }).ids,
    // The tokenizer.json decoder alone, as Hugging Face's `tokenizers` returns it (the fixtures' `decoded`).
    decoded: tokenizer.decode(encoding.ids, { cleanUpTokenizationSpaces: false }),
    decoded_skip_special: tokenizer.decode(encoding.ids, { skipSpecialTokens: true, cleanUpTokenizationSpaces: false }),
  };
}

/** Reads JSON lines and writes one JSON line per non-empty input line. */
export async function runTokenize(tokenizer: Tokenizer, lines: AsyncIterable<string>, stdout: NodeJS.WritableStream): Promise<number> {
  let lineNumber = 0;
  for await (const line of lines) {
    lineNumber++;
    if (line.trim() === '') continue;
    stdout.write(`${JSON.stringify(tokenizeLine(tokenizer, line, lineNumber))}\n`);
  }
  return EXIT.ok;
}

export function tokenizeCommand(): Command {
  return new Command('tokenize')
    .description('encode JSON lines {"text", "text_pair"?} from stdin with a Hugging Face tokenizer; one JSON line out per line in')
    .requiredOption('--tokenizer <dir>', 'folder with tokenizer.json (or vocab.txt, or vocab.json + merges.txt)')
    .addHelpText(
      'after',
      `
Output fields: ids, tokens, type_ids, offsets (UTF-16 code units), ids_no_special,
decoded, decoded_skip_special (the tokenizer.json decoder's output, as Hugging Face's
tokenizers library gives it, without transformers' clean_up_tokenization).

Example:
  echo '{"text": "Hello world"}' | glassformer tokenize --tokenizer ../shared/fixtures/tokenizers/gpt2`,
    )
    .action(async (options: { tokenizer: string }) => {
      const tokenizer = await loadTokenizer(options.tokenizer);
      const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
      process.exitCode = await runTokenize(tokenizer, lines, process.stdout);
    });
}
