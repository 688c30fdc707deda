import { writeFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError, ShapeError } from '../../errors.js';
import { generationOptionsFromJson, type GenerateOptions } from '../../generation/options.js';
import { nodeFileSystem } from '../../io/node-fs.js';
import type { FileSystem } from '../../io/source.js';
import { resolveModel } from '../../hub/node-resolve.js';
import { LlamaModel } from '../../models/llama.js';
import { loadLlama2cGenerator } from '../../tasks/generate.js';
import { loadTokenizer } from '../../tokenizers/load-node.js';
import { loadTraceable } from '../../trace/adapters/index.js';
import { LlamaTraceable } from '../../trace/adapters/decoder.js';
import type { Precision } from '../../trace/encoding.js';
import { renderHtml } from '../../trace/html.js';
import { buildTrace } from '../../trace/report.js';
import { formatTrace } from '../../trace/text.js';
import type { TraceableModel } from '../../trace/types.js';
import { EXIT } from '../errors.js';

export interface TraceArgs {
  /** A model folder (config.json, model.safetensors, optionally tokenizer.json and generation_config.json), a Hub id, or a llama2.c `.bin` checkpoint. */
  model: string;
  /** Text to tokenize (needs a tokenizer). */
  text?: string;
  /** Token ids instead of text (models without a tokenizer, e.g. the hf-tiny fixtures). */
  ids?: number[];
  /** Encoder-decoders: decoder ids to teacher-force instead of generating. */
  decoderIds?: number[];
  /** A tokenizer folder when it is not the model folder; for a llama2.c checkpoint, its tokenizer.bin. */
  tokenizer?: string;
  /** Tokens to generate after the input (decoders and encoder-decoders); default 4. */
  maxNewTokens?: number;
  sample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  repetitionPenalty?: number;
  /** Beam search with this many beams (HF num_beams). */
  numBeams?: number;
  lengthPenalty?: number;
  earlyStopping?: boolean | 'never';
  /** Candidates shown per position and per stage. */
  show?: number;
  /** Write the self-contained HTML report here. */
  html?: string;
  /** Write the trace file (JSON) here. */
  out?: string;
  maxBytes?: number;
  precision?: Precision;
  /** Print the trace file JSON instead of the text account. */
  json?: boolean;
}

/** A model ready to trace, with its tokenizer (when it has one) and its generation defaults. */
interface Loaded {
  model: TraceableModel;
  encode?: (text: string) => number[];
  tokenText?: (id: number) => string;
  defaults: GenerateOptions;
}

async function loadLlama2c(fs: FileSystem, args: TraceArgs): Promise<Loaded> {
  const g = await loadLlama2cGenerator(fs, args.model, args.tokenizer);
  return {
    model: new LlamaTraceable(g.model as LlamaModel),
    encode: (text) => g.tokenizer.encode(text, { addSpecialTokens: true }),
    tokenText: (id) => g.tokenizer.decode([id], { skipSpecialTokens: false }),
    defaults: g.defaults,
  };
}

/** A local folder, a Hugging Face cache folder, or a Hub id (downloaded into the cache). */
async function loadFolder(fs: FileSystem, args: TraceArgs): Promise<Loaded> {
  const folder = await resolveModel(args.model);
  const model = await loadTraceable(fs, folder);
  const dir = args.tokenizer ?? folder;
  const hasTokenizer = args.tokenizer !== undefined || (await fs.exists(fs.join(dir, 'tokenizer.json')));
  const tokenizer = hasTokenizer ? await loadTokenizer(dir) : undefined;
  const generationPath = fs.join(folder, 'generation_config.json');
  const defaults = (await fs.exists(generationPath)) ? generationOptionsFromJson(JSON.parse(await fs.readText(generationPath)) as Record<string, unknown>, generationPath) : {};
  return {
    model,
    encode: tokenizer ? (text) => tokenizer.encode(text, { addSpecialTokens: true }).ids : undefined,
    tokenText: tokenizer ? (id) => tokenizer.idToToken(id) ?? `<${id}>` : undefined,
    defaults,
  };
}

function generateOptions(args: TraceArgs): GenerateOptions {
  const o: GenerateOptions = {};
  if (args.sample) o.doSample = true;
  if (args.temperature !== undefined) o.temperature = args.temperature;
  if (args.topK !== undefined) o.topK = args.topK;
  if (args.topP !== undefined) o.topP = args.topP;
  if (args.seed !== undefined) o.seed = args.seed;
  if (args.repetitionPenalty !== undefined) o.repetitionPenalty = args.repetitionPenalty;
  if (args.numBeams !== undefined) o.numBeams = args.numBeams;
  if (args.lengthPenalty !== undefined) o.lengthPenalty = args.lengthPenalty;
  if (args.earlyStopping !== undefined) o.earlyStopping = args.earlyStopping;
  return o;
}

/**
 * Trace one input through a model and tell it step by step (stdout), and
 * optionally write the trace file and the HTML report. Returns the exit code.
 */
export async function runTrace(args: TraceArgs, stdout: NodeJS.WritableStream = process.stdout, fs: FileSystem = nodeFileSystem): Promise<number> {
  if ((args.text === undefined) === (args.ids === undefined)) throw new ConfigError('trace: give the input as TEXT or as --ids 1,2,3 (exactly one of them)');
  const { model, encode, tokenText, defaults } = args.model.endsWith('.bin') ? await loadLlama2c(fs, args) : await loadFolder(fs, args);
  let inputIds = args.ids;
  if (args.text !== undefined) {
    if (!encode) throw new ConfigError(`trace: ${args.model} has no tokenizer.json; pass --tokenizer DIR, or token ids with --ids 1,2,3`);
    inputIds = encode(args.text);
  }
  if (!inputIds || inputIds.length === 0) throw new ShapeError('trace: the input is empty');
  const family = model.description.family;
  if (args.decoderIds && family !== 'encoder-decoder') throw new ConfigError(`trace: --decoder-ids applies to encoder-decoder models; ${args.model} is a ${family} model`);
  const generating = family !== 'encoder' && args.decoderIds === undefined;
  const { file, json } = await buildTrace(
    model,
    { inputIds, decoderInputIds: args.decoderIds, source: args.model },
    {
      tokenText,
      maxNewTokens: generating ? (args.maxNewTokens ?? 4) : 0,
      generateOptions: generateOptions(args),
      generationDefaults: defaults,
      k: args.show,
      maxBytes: args.maxBytes,
      precision: args.precision,
    },
  );
  if (args.out) await writeFile(args.out, json);
  if (args.html) await writeFile(args.html, renderHtml(file));
  stdout.write(args.json ? json + '\n' : formatTrace(file));
  return EXIT.ok;
}

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`expected an integer, found "${value}"`);
  return n;
}

function decimal(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, found "${value}"`);
  return n;
}

function idList(value: string): number[] {
  const ids = value.split(',').map((s) => s.trim());
  if (ids.some((s) => !/^\d+$/.test(s))) throw new InvalidArgumentError(`expected comma-separated token ids like 5,17,42, found "${value}"`);
  return ids.map(Number);
}

function earlyStopping(value: string): boolean | 'never' {
  if (value === 'true' || value === 'false') return value === 'true';
  if (value !== 'never') throw new InvalidArgumentError(`expected true, false or never, found "${value}"`);
  return value;
}

function precision(value: string): Precision {
  if (value !== 'f16' && value !== 'f32') throw new InvalidArgumentError(`expected f16 or f32, found "${value}"`);
  return value;
}

export function traceCommand(): Command {
  return new Command('trace')
    .description('load a model and trace each step: tokens, embeddings, positions, attention per layer and head, residual norms, predictions, generation (greedy, sampled, or every beam of a beam search)')
    .argument('[text]', 'the input text (needs tokenizer.json in the model folder, or --tokenizer)')
    .requiredOption('--model <path>', 'a model folder (config.json + model.safetensors), a Hub id, or a llama2.c .bin checkpoint')
    .option('--ids <ids>', 'token ids instead of text, e.g. 5,17,42', idList)
    .option('--decoder-ids <ids>', 'encoder-decoders: decoder ids to teacher-force instead of generating', idList)
    .option('--tokenizer <path>', 'a tokenizer folder when it is not the model folder; for a llama2.c checkpoint, its tokenizer.bin')
    .option('--max-new-tokens <n>', 'tokens to generate after the input (decoders, encoder-decoders)', integer, 4)
    .option('--sample', 'sample instead of greedy decoding')
    .option('--temperature <t>', 'sampling temperature', decimal)
    .option('--top-k <k>', 'sampling: keep the k most probable tokens', integer)
    .option('--top-p <p>', 'sampling: keep the smallest set of tokens with this probability mass', decimal)
    .option('--seed <n>', 'sampling seed', integer)
    .option('--repetition-penalty <p>', 'penalise tokens already in the sequence', decimal)
    .option('--num-beams <n>', 'beam search with n beams: trace every beam, the candidates ranked and the hypotheses finished at each step', integer)
    .option('--length-penalty <p>', 'beam search: a hypothesis scores sum of log-probabilities / length^p', decimal)
    .option('--early-stopping <when>', 'beam search: true (stop at numBeams finished hypotheses), false (HF heuristic) or never', earlyStopping)
    .option('--show <n>', 'candidates shown per position and per stage', integer, 5)
    .option('--html <file>', 'write a self-contained HTML report (attention heatmaps, logit lens, probability bars, the tree of beams)')
    .option('--out <file>', 'write the trace file (JSON, docs/trace-format.md)')
    .option('--max-bytes <n>', 'cap on the trace file size; tensors beyond it are summarised or left out', integer)
    .option('--precision <p>', 'stored tensor precision, f16 or f32', precision, 'f16')
    .option('--json', 'print the trace file instead of the text account')
    .addHelpText(
      'after',
      `
Examples:
  glassformer trace --model models/gpt2 "The cat sat on the"
  glassformer trace --model ../shared/models/stories260K/stories260K.bin --tokenizer ../shared/models/stories260K/tok512.bin "Once upon a time" --html story.html
  glassformer trace --model ../shared/fixtures/hf-tiny/t5 --ids 42,112,71,1 --max-new-tokens 3 --html t5.html
  glassformer trace --model ../shared/fixtures/hf-tiny/gpt2 --ids 5,17,42 --num-beams 4 --early-stopping true --max-new-tokens 6
  glassformer trace --model ../shared/fixtures/hf-tiny/bert --ids 2,10,4,11,3 --out bert-trace.json`,
    )
    .action(async function (this: Command, text: string | undefined, options: Omit<TraceArgs, 'text'>) {
      process.exitCode = await runTrace({ ...options, text });
    });
}
