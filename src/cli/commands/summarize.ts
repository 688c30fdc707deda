import { Command } from 'commander';
import { summarizationSetup } from '../../tasks/summarize.js';
import { addSeq2SeqOptions, runSeq2SeqJob, type CommandStreams, type Seq2SeqArgs } from './translate.js';

export type SummarizeArgs = Seq2SeqArgs;

export async function runSummarize(args: SummarizeArgs, streams: CommandStreams = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin }): Promise<number> {
  return runSeq2SeqJob(args, summarizationSetup, streams);
}

export function summarizeCommand(): Command {
  return addSeq2SeqOptions(new Command('summarize').description('summarize texts with an encoder-decoder model (T5 with "summarize: ", BART)'))
    .argument('[text...]', 'texts to summarize (default: the lines of stdin)')
    .addHelpText(
      'after',
      `
Examples:
  glassformer summarize --model t5-small "$(cat article.txt)"
  glassformer summarize --model facebook/bart-large-cnn --num-beams 4 --max-new-tokens 60 --json "$(cat article.txt)"`,
    )
    .action(async (texts: string[], options: Omit<SummarizeArgs, 'texts'>) => {
      process.exitCode = await runSummarize({ ...options, texts });
    });
}
