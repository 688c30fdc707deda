import { Command } from 'commander';
import { resolveModel } from '../../hub/node-resolve.js';
import { nodeFileSystem } from '../../io/node-fs.js';
import { loadFolderTokenizer } from '../../tasks/encoder-folder.js';
import { MaskFiller } from '../../tasks/fill-mask.js';
import { EXIT } from '../errors.js';
import { positiveInt, processStreams, textsFrom, type EncoderCommandStreams } from './embed.js';

export interface FillMaskArgs {
  model: string;
  texts: string[];
  topK?: number;
  /** Only these tokens are scored. */
  targets?: string[];
  json?: boolean;
}

/** `glassformer fill-mask`: the likeliest tokens for each mask of each text. */
export async function runFillMask(args: FillMaskArgs, streams: EncoderCommandStreams = processStreams()): Promise<number> {
  const texts = await textsFrom(args.texts, streams);
  if (texts === null) return EXIT.usage;
  const dir = await resolveModel(args.model);
  const filler = await MaskFiller.fromFolder(nodeFileSystem, dir, await loadFolderTokenizer(nodeFileSystem, dir));
  for (const text of texts) {
    const masks = filler.fill(text, { topK: args.topK, targets: args.targets });
    if (args.json) {
      streams.stdout.write(JSON.stringify({ text, masks }) + '\n');
      continue;
    }
    streams.stdout.write(`${text}\n`);
    masks.forEach((candidates, m) => {
      if (masks.length > 1) streams.stdout.write(`  mask ${m + 1}:\n`);
      for (const c of candidates) streams.stdout.write(`  ${c.score.toFixed(4)}  ${c.tokenStr.padEnd(12)}  ${c.sequence}\n`);
    });
  }
  return EXIT.ok;
}

export function fillMaskCommand(): Command {
  return new Command('fill-mask')
    .description("predict the tokens hidden behind the tokenizer's mask token ([MASK], <mask>) with a *ForMaskedLM model")
    .requiredOption('--model <dir>', 'a model folder or Hub id')
    .argument('[text...]', 'texts with a mask token (default: the lines of stdin)')
    .option('--top-k <n>', 'candidates per mask (default 5)', positiveInt('--top-k'))
    .option('--targets <tokens>', 'comma-separated tokens to score instead of the whole vocabulary', (v: string) => v.split(',').map((t) => t.trim()))
    .option('--json', 'print one JSON line {text, masks: [[{score, token, tokenStr, sequence}]]} per text')
    .addHelpText(
      'after',
      `
Examples:
  glassformer fill-mask --model bert-base-uncased "Paris is the [MASK] of France."
  glassformer fill-mask --model roberta-base "The <mask> sat on the mat." --top-k 3 --json`,
    )
    .action(async (texts: string[], options: Omit<FillMaskArgs, 'texts'>) => {
      process.exitCode = await runFillMask({ ...options, texts });
    });
}
