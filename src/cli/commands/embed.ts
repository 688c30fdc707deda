import { Command, InvalidArgumentError } from 'commander';
import { resolveModel } from '../../hub/node-resolve.js';
import { nodeFileSystem } from '../../io/node-fs.js';
import { Embedder, type EmbedOptions } from '../../tasks/embed.js';
import { loadFolderTokenizer } from '../../tasks/encoder-folder.js';
import { checkPoolingMode, POOLING_MODES, type PoolingMode } from '../../tasks/pooling.js';
import { EXIT } from '../errors.js';

/** Streams a command reads and writes; tests pass their own. */
export interface EncoderCommandStreams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  /** Read for the texts (one per non-empty line) when none are given as arguments. */
  stdin?: NodeJS.ReadableStream;
}

export const processStreams = (): EncoderCommandStreams => ({ stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });

export async function readLines(stream: NodeJS.ReadableStream): Promise<string[]> {
  let text = '';
  const decoder = new TextDecoder();
  for await (const chunk of stream) text += typeof chunk === 'string' ? chunk : decoder.decode(chunk as Uint8Array, { stream: true });
  return text.split(/\r?\n/).filter((line) => line.trim() !== '');
}

/** TEXT arguments, else the lines of stdin; null (after a usage message) when there are none. */
export async function textsFrom(args: string[], streams: EncoderCommandStreams): Promise<string[] | null> {
  const texts = args.length > 0 ? args : streams.stdin ? await readLines(streams.stdin) : [];
  if (texts.length === 0) {
    streams.stderr.write('glassformer: no text given: pass TEXT arguments or lines on stdin\n');
    return null;
  }
  return texts;
}

export function positiveInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} must be a positive integer, found "${value}"`);
    return n;
  };
}

export function poolingOption(value: string): PoolingMode[] {
  try {
    return value.split(',').map((m) => checkPoolingMode(m.trim(), '--pooling'));
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

export interface EmbedArgs {
  model: string;
  texts: string[];
  json?: boolean;
  pooling?: PoolingMode[];
  normalize?: boolean;
  promptName?: string;
  prompt?: string;
  batchSize?: number;
}

/** A model folder (or Hub id) as an Embedder with its own tokenizer and sentence-transformers settings. */
export async function openEmbedder(model: string): Promise<{ dir: string; embedder: Embedder }> {
  const dir = await resolveModel(model);
  const tokenizer = await loadFolderTokenizer(nodeFileSystem, dir);
  return { dir, embedder: await Embedder.fromFolder(nodeFileSystem, dir, tokenizer) };
}

function preview(v: Float32Array): string {
  const shown = Array.from(v.subarray(0, 6), (x) => x.toFixed(4)).join(', ');
  return `[${shown}${v.length > 6 ? ', …' : ''}] (${v.length} dims, norm ${Math.hypot(...v).toFixed(4)})`;
}

/** `glassformer embed`: one vector per text; JSON lines {text, embedding} with --json. */
export async function runEmbed(args: EmbedArgs, streams: EncoderCommandStreams = processStreams()): Promise<number> {
  const texts = await textsFrom(args.texts, streams);
  if (texts === null) return EXIT.usage;
  const { embedder } = await openEmbedder(args.model);
  const options: EmbedOptions = {};
  if (args.pooling !== undefined) options.pooling = args.pooling;
  if (args.normalize !== undefined) options.normalize = args.normalize;
  if (args.promptName !== undefined) options.promptName = args.promptName;
  if (args.prompt !== undefined) options.prompt = args.prompt;
  if (args.batchSize !== undefined) options.batchSize = args.batchSize;
  const vectors = embedder.embed(texts, options);
  texts.forEach((text, i) => {
    streams.stdout.write(args.json ? JSON.stringify({ text, embedding: Array.from(vectors[i]) }) + '\n' : `${text}\t${preview(vectors[i])}\n`);
  });
  return EXIT.ok;
}

export function embedCommand(): Command {
  return new Command('embed')
    .description('embed texts into vectors with an encoder (sentence-transformers folders: their pooling, normalisation and prompts)')
    .requiredOption('--model <dir>', 'a model folder or Hub id')
    .argument('[text...]', 'texts to embed (default: the lines of stdin)')
    .option('--json', 'print one JSON line {text, embedding} per text')
    .option('--pooling <modes>', `override the pooling: ${POOLING_MODES.join(', ')} (comma-separated to concatenate)`, poolingOption)
    .option('--normalize', 'scale vectors to unit length')
    .option('--no-normalize', 'do not scale vectors to unit length')
    .option('--prompt-name <name>', 'a prompt from config_sentence_transformers.json, e.g. query or passage')
    .option('--prompt <text>', 'a literal prompt prepended to every text')
    .option('--batch-size <n>', 'texts per forward pass (default 32)', positiveInt('--batch-size'))
    .addHelpText(
      'after',
      `
Examples:
  glassformer embed --model sentence-transformers/all-MiniLM-L6-v2 "A cat sat on the mat." --json
  cat sentences.txt | glassformer embed --model ./bge-small --prompt-name query --json > vectors.jsonl`,
    )
    .action(async (texts: string[], options: Omit<EmbedArgs, 'texts'>) => {
      process.exitCode = await runEmbed({ ...options, texts });
    });
}
