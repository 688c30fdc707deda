import { Command, InvalidArgumentError } from 'commander';
import type { GenerateOptions } from '../../generation/options.js';
import { nodeFileSystem } from '../../io/node-fs.js';
import { resolveModel } from '../../hub/node-resolve.js';
import { generateText, loadSeq2Seq, translationSetup, type Seq2SeqPipeline, type Seq2SeqTextOptions, type TaskSetup } from '../../tasks/translate.js';
import { EXIT } from '../errors.js';
import { addDecodingOptions, decodingOptions, type DecodingArgs } from './generate.js';

/** The flags translate and summarize share (the decoding flags are generate's). */
export interface Seq2SeqArgs extends DecodingArgs {
  model: string;
  texts: string[];
  numBeams?: number;
  batchSize?: number;
  /** Replaces the task prefix ("" for none). */
  prefix?: string;
  json?: boolean;
}

export interface TranslateArgs extends Seq2SeqArgs {
  src?: string;
  tgt?: string;
}

export interface CommandStreams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Read for the texts (one per non-empty line) when none are given as arguments. */
  stdin?: NodeJS.ReadableStream;
}

async function readLines(stream: NodeJS.ReadableStream): Promise<string[]> {
  let text = '';
  for await (const chunk of stream) text += typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk as Uint8Array);
  return text.split(/\r?\n/).filter((line) => line.trim() !== '');
}

/**
 * The core of `glassformer translate` and `summarize`: load the model, run the
 * job over every text, print one output per line (or one JSON object with each
 * input, output text and generated ids). Returns the exit code.
 */
export async function runSeq2SeqJob(
  args: Seq2SeqArgs,
  setupFor: (pipeline: Seq2SeqPipeline) => TaskSetup,
  streams: CommandStreams,
): Promise<number> {
  const texts = args.texts.length > 0 ? args.texts : streams.stdin ? await readLines(streams.stdin) : [];
  if (texts.length === 0) {
    streams.stderr.write('glassformer: no text given: pass TEXT arguments or lines on stdin\n');
    return EXIT.usage;
  }
  let decoding: GenerateOptions;
  try {
    decoding = decodingOptions(args);
  } catch (error) {
    if (!(error instanceof InvalidArgumentError)) throw error;
    streams.stderr.write(`glassformer: ${error.message}\n`);
    return EXIT.usage;
  }
  const pipeline = await loadSeq2Seq(nodeFileSystem, await resolveModel(args.model));
  const options: Seq2SeqTextOptions = { ...decoding };
  if (args.numBeams !== undefined) options.numBeams = args.numBeams;
  if (args.batchSize !== undefined) options.batchSize = args.batchSize;
  if (args.prefix !== undefined) options.prefix = args.prefix;
  const outputs = await generateText(pipeline, texts, setupFor(pipeline), options);
  if (args.json) {
    const results = outputs.map((o, i) => ({ input: texts[i], text: o.text, ids: o.ids }));
    streams.stdout.write(JSON.stringify({ model: pipeline.dir, results }) + '\n');
  } else {
    for (const o of outputs) streams.stdout.write(o.text + '\n');
  }
  return EXIT.ok;
}

export async function runTranslate(args: TranslateArgs, streams: CommandStreams = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin }): Promise<number> {
  return runSeq2SeqJob(args, (pipeline) => translationSetup(pipeline, args.src, args.tgt), streams);
}

/** A positive integer flag value, or a usage error naming the flag. */
export function positiveInteger(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} must be a positive integer, found "${value}"`);
    return n;
  };
}

/** Options shared by translate and summarize: generate's decoding flags and the job's own. */
export function addSeq2SeqOptions(command: Command): Command {
  return addDecodingOptions(command.requiredOption('--model <dir|id>', 'a T5, mT5, BART or Marian model folder (or a Hub id)'))
    .option('--num-beams <n>', 'beam search with n beams (default: the model/task setting, else greedy)', positiveInteger('--num-beams'))
    .option('--batch-size <n>', 'texts encoded and decoded together (default 8)', positiveInteger('--batch-size'))
    .option('--prefix <text>', 'replace the task prefix the model expects ("" for none)')
    .option('--json', 'print one JSON object: {model, results: [{input, text, ids}]}');
}

export function translateCommand(): Command {
  return addSeq2SeqOptions(new Command('translate').description('translate texts with an encoder-decoder model (T5, mT5, Marian)'))
    .argument('[text...]', 'texts to translate (default: the lines of stdin)')
    .option('--src <lang>', 'source language, e.g. en or English (T5 needs --src and --tgt)')
    .option('--tgt <lang>', 'target language, e.g. de or German (multilingual Marian: its >>tgt<< token)')
    .addHelpText(
      'after',
      `
Examples:
  glassformer translate --model t5-small --src en --tgt de "The house is wonderful."
  glassformer translate --model ./opus-mt-en-de --num-beams 4 "How are you?"   # a Marian folder with tokenizer.json
  cat lines.txt | glassformer translate --model t5-small --src en --tgt fr --json`,
    )
    .action(async (texts: string[], options: Omit<TranslateArgs, 'texts'>) => {
      process.exitCode = await runTranslate({ ...options, texts });
    });
}
