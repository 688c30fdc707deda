import { Command, InvalidArgumentError } from 'commander';
import { GlassformerError } from '../../errors.js';
import type { GenerateOptions } from '../../generation/options.js';
import { resolveModel } from '../../hub/node-resolve.js';
import { nodeFileSystem } from '../../io/node-fs.js';
import { generateText, loadTextGenerator, streamText, type TextGenerator } from '../../tasks/generate.js';
import { EXIT, reportError } from '../errors.js';

/** Decoding flags shared by `generate` and `chat`. */
export interface DecodingArgs {
  maxNewTokens?: number;
  greedy?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  typicalP?: number;
  repetitionPenalty?: number;
  seed?: number;
  stop?: string[];
}

export interface GenerateArgs extends DecodingArgs {
  model: string;
  prompt?: string;
  tokenizer?: string;
  numBeams?: number;
  numReturnSequences?: number;
  json?: boolean;
}

export interface CommandStreams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean };
}

/** A loader of text generators: the real one resolves Hub ids and llama2.c files; tests inject their own. */
export type GeneratorLoader = (model: string, tokenizer?: string) => Promise<TextGenerator>;

export const loadGenerator: GeneratorLoader = async (model, tokenizer) => {
  const path = model.endsWith('.bin') ? model : await resolveModel(model);
  return loadTextGenerator(nodeFileSystem, path, { tokenizer });
};

/**
 * The command-line flags as generate() options: any sampling flag turns
 * sampling on; `--greedy` turns it off and may not be combined with them.
 * Unset flags leave the model's generation_config.json in charge.
 */
export function decodingOptions(args: DecodingArgs): GenerateOptions {
  const o: GenerateOptions = {};
  const sampling: [keyof DecodingArgs, keyof GenerateOptions][] = [
    ['temperature', 'temperature'],
    ['topK', 'topK'],
    ['topP', 'topP'],
    ['minP', 'minP'],
    ['typicalP', 'typicalP'],
    ['seed', 'seed'],
  ];
  const given = sampling.filter(([flag]) => args[flag] !== undefined);
  if (args.greedy && given.length > 0) {
    throw new InvalidArgumentError(`--greedy cannot be combined with sampling flags (${given.map(([f]) => '--' + f.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())).join(', ')})`);
  }
  if (args.greedy) o.doSample = false;
  if (given.length > 0) o.doSample = true;
  for (const [flag, option] of given) (o as Record<string, unknown>)[option] = args[flag];
  if (args.maxNewTokens !== undefined) o.maxNewTokens = args.maxNewTokens;
  if (args.repetitionPenalty !== undefined) o.repetitionPenalty = args.repetitionPenalty;
  if (args.stop && args.stop.length > 0) o.stopStrings = args.stop;
  return o;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk as Uint8Array);
  return text;
}

/**
 * The core of `glassformer generate`: continue PROMPT (or stdin) with the
 * model. With --json, print one JSON object {ids, text} (plus `results` when
 * several sequences are returned); otherwise stream the text as it comes.
 */
export async function runGenerate(args: GenerateArgs, streams: CommandStreams, load: GeneratorLoader = loadGenerator): Promise<number> {
  let options: GenerateOptions;
  try {
    options = decodingOptions(args);
  } catch (error) {
    streams.stderr.write(`glassformer: ${(error as Error).message}\n`);
    return EXIT.usage;
  }
  if (args.numBeams !== undefined) options.numBeams = args.numBeams;
  if (args.numReturnSequences !== undefined) options.numReturnSequences = args.numReturnSequences;
  const prompt = args.prompt ?? (streams.stdin && !streams.stdin.isTTY ? (await readAll(streams.stdin)).replace(/\r?\n$/, '') : '');
  try {
    const g = await load(args.model, args.tokenizer);
    const batchOutput = args.json || (options.numBeams ?? 1) > 1 || (options.numReturnSequences ?? 1) > 1;
    if (batchOutput) {
      const results = generateText(g, prompt, options);
      if (args.json) {
        const first = results[0];
        const json: Record<string, unknown> = { ids: first.ids, text: first.text };
        if (results.length > 1) json.results = results;
        streams.stdout.write(JSON.stringify(json) + '\n');
      } else {
        for (const r of results) streams.stdout.write(r.text + '\n');
      }
      return EXIT.ok;
    }
    const started = performance.now();
    let tokens = 0;
    for await (const chunk of streamText(g, prompt, options)) {
      streams.stdout.write(chunk.text);
      tokens++;
    }
    streams.stdout.write('\n');
    // On a terminal, the speed; in a pipe or a log, only the text.
    if ((streams.stderr as { isTTY?: boolean }).isTTY) {
      const seconds = (performance.now() - started) / 1000;
      streams.stderr.write(`[${tokens} tokens in ${seconds.toFixed(2)} s, ${(tokens / seconds).toFixed(1)} tokens/s]\n`);
    }
    return EXIT.ok;
  } catch (error) {
    if (error instanceof GlassformerError) return reportError(error, streams.stderr);
    throw error;
  }
}

function numberFlag(flag: string, check: (n: number) => boolean, what: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || !check(n)) throw new InvalidArgumentError(`${flag} must be ${what}, found "${value}"`);
    return n;
  };
}

const positiveInteger = (flag: string) => numberFlag(flag, (n) => Number.isInteger(n) && n > 0, 'a positive integer');
const probability = (flag: string) => numberFlag(flag, (n) => n >= 0 && n <= 1, 'a number in [0, 1]');

/** The decoding flags of `generate` and `chat`. */
export function addDecodingOptions(command: Command): Command {
  return command
    .option('--max-new-tokens <n>', 'generate at most n tokens (default: generation_config.json, else max_length 20)', positiveInteger('--max-new-tokens'))
    .option('--greedy', 'always take the most likely token (overrides do_sample in generation_config.json)')
    .option('--temperature <t>', 'sample with this temperature', numberFlag('--temperature', (n) => n > 0, 'a positive number'))
    .option('--top-k <k>', 'sample from the k most likely tokens', positiveInteger('--top-k'))
    .option('--top-p <p>', 'nucleus sampling: the smallest set with probability ≥ p', probability('--top-p'))
    .option('--min-p <p>', 'drop tokens less likely than p × the top probability', probability('--min-p'))
    .option('--typical-p <p>', 'locally typical sampling with mass p', probability('--typical-p'))
    .option('--repetition-penalty <r>', 'CTRL repetition penalty (1 = none)', numberFlag('--repetition-penalty', (n) => n > 0, 'a positive number'))
    .option('--seed <n>', 'seed of the sampler: the same seed gives the same text', numberFlag('--seed', (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer'))
    .option('--stop <text...>', 'stop once the generated text contains one of these strings');
}

export function generateCommand(): Command {
  return addDecodingOptions(
    new Command('generate')
      .description('continue a prompt with a decoder-only model (GPT-2, Llama, Mistral, Qwen2/3, Phi-3, llama2.c)')
      .argument('[prompt]', 'the text to continue (default: stdin)')
      .requiredOption('--model <dir|id|file.bin>', 'a model folder, a Hub id, or a llama2.c checkpoint (.bin)')
      .option('--tokenizer <tokenizer.bin>', 'the tokenizer of a llama2.c checkpoint (default: tokenizer.bin beside it)'),
  )
    .option('--num-beams <n>', 'beam search with n beams', positiveInteger('--num-beams'))
    .option('--num-return-sequences <n>', 'return n sequences (sampling or beam search)', positiveInteger('--num-return-sequences'))
    .option('--json', 'print one JSON object {ids, text} instead of streaming text')
    .addHelpText(
      'after',
      `
Examples:
  glassformer generate --model stories260K.bin --tokenizer tok512.bin "Once upon a time" --max-new-tokens 64 --greedy
  glassformer generate --model ./gpt2 "The meaning of life is" --temperature 0.8 --top-p 0.95 --seed 1
  glassformer generate --model ./gpt2 "Hello" --num-beams 4 --max-new-tokens 20 --json`,
    )
    .action(async (prompt: string | undefined, options: Omit<GenerateArgs, 'prompt'>) => {
      process.exitCode = await runGenerate({ ...options, prompt }, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });
    });
}
