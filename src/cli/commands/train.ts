/**
 * `glassformer train`: train a causal language model on a text file, from
 * scratch (a byte-level BPE tokenizer and a Llama-shaped decoder of the given
 * size) or by fine-tuning a model folder (GPT-2 or Llama family), and save
 * the result as a Hugging Face model folder with its loss curve.
 */
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { UnsupportedError } from '../../errors.js';
import { nodeFileSystem } from '../../io/node-fs.js';
import { readSafetensors } from '../../io/safetensors.js';
import { useFastestKernel } from '../../kernels/index.js';
import { parseLlamaConfig } from '../../models/llama.js';
import { Weights } from '../../nn/weights.js';
import { decoderFromConfig } from '../../tasks/generate.js';
import type { Tensor } from '../../tensor/tensor.js';
import { Tokenizer } from '../../tokenizers/index.js';
import { loadTokenizerWith } from '../../tokenizers/load.js';
import { writeCurve } from '../../train/curve.js';
import { initParameters, llamaParameterShapes } from '../../train/init.js';
import { llamaConfigJson, saveHfFolder } from '../../train/save.js';
import { causalLmLoss, packBlocks } from '../../train/tasks.js';
import { trainByteLevelBpe } from '../../train/tokenizer-trainers.js';
import { Trainer } from '../../train/trainer.js';
import { EXIT, reportError } from '../errors.js';
import type { CommandStreams } from './generate.js';

export interface TrainArgs {
  /** A UTF-8 text file; each non-empty line is a document. */
  text: string;
  out: string;
  /** A model folder to fine-tune; from scratch when absent. */
  model?: string;
  /** Shape of a model trained from scratch (refused with --model, whose folder fixes it). */
  vocabSize?: number;
  hiddenSize?: number;
  layers?: number;
  heads?: number;
  intermediateSize?: number;
  blockSize: number;
  steps: number;
  batchSize: number;
  gradientAccumulation: number;
  lr: number;
  warmup: number;
  schedule: 'cosine' | 'linear' | 'constant';
  weightDecay: number;
  maxGradNorm?: number;
  seed: number;
  checkpointEvery?: number;
  resume?: boolean;
}

const EOT = '<|endoftext|>';

interface Setup {
  params: Map<string, Tensor>;
  config: Record<string, unknown>;
  tokenizer: Tokenizer;
  tokenizerJson?: Record<string, unknown>;
  lossOf: ReturnType<typeof causalLmLoss>;
}

async function fromScratch(args: TrainArgs, lines: string[]): Promise<Setup> {
  const bpe = trainByteLevelBpe(lines, { vocabSize: args.vocabSize ?? SHAPE.vocabSize, specialTokens: [EOT] });
  const heads = args.heads ?? SHAPE.heads;
  const config = llamaConfigJson({
    vocabSize: bpe.vocab.size,
    hiddenSize: args.hiddenSize ?? SHAPE.hiddenSize,
    intermediateSize: args.intermediateSize ?? SHAPE.intermediateSize,
    layers: args.layers ?? SHAPE.layers,
    heads,
    kvHeads: heads,
    maxPositions: Math.max(512, args.blockSize),
    bosTokenId: 0,
    eosTokenId: 0,
    tieWordEmbeddings: true,
    initializerRange: 0.02,
  });
  const parsed = parseLlamaConfig(config);
  const params = initParameters(llamaParameterShapes(parsed), { std: 0.02, seed: args.seed });
  const model = decoderFromConfig(config, Weights.from(params));
  return { params, config, tokenizer: Tokenizer.fromJSON(bpe.json), tokenizerJson: bpe.json, lossOf: causalLmLoss(model) };
}

async function fromFolder(dir: string, args: TrainArgs): Promise<Setup> {
  const shapeFlags = (Object.keys(SHAPE) as (keyof typeof SHAPE)[]).filter((k) => args[k] !== undefined);
  if (shapeFlags.length > 0) {
    throw new UnsupportedError(`${shapeFlags.map((k) => '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())).join(', ')}: only for training from scratch; ${dir} fixes the model's shape and tokenizer`);
  }
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const loaded = await readSafetensors(nodeFileSystem, join(dir, 'model.safetensors'));
  // Train in f32 whatever the checkpoint's dtype; every tensor becomes a parameter.
  const params = new Map([...loaded].map(([name, t]) => [name, t.to('f32').clone().requireGrad()]));
  const model = decoderFromConfig(config, Weights.from(params), join(dir, 'config.json'));
  const tokenizer = await loadTokenizerWith(async (name) => readFile(join(dir, name), 'utf8').catch(() => undefined), dir);
  return { params, config, tokenizer, lossOf: causalLmLoss(model) };
}

/** The command's work: exit code out, progress and results on the streams. */
export async function runTrain(args: TrainArgs, streams: CommandStreams): Promise<number> {
  try {
    await useFastestKernel();
    const lines = (await readFile(args.text, 'utf8')).split('\n').filter((l) => l.trim() !== '');
    if (lines.length === 0) throw new UnsupportedError(`${args.text}: no text to train on (the file has no non-empty line)`);
    const setup = args.model ? await fromFolder(args.model, args) : await fromScratch(args, lines);
    const eos = setup.tokenizer.tokenToId(EOT);
    const ids = lines.flatMap((l) => [...setup.tokenizer.encode(l + '\n').ids, ...(eos === undefined ? [] : [eos])]);
    const blocks = packBlocks(ids, args.blockSize);
    if (blocks.length === 0) throw new UnsupportedError(`${args.text}: ${ids.length} tokens is less than one block of --block-size ${args.blockSize}`);
    const trainer = new Trainer(setup.params, blocks, setup.lossOf, {
      steps: args.steps,
      batchSize: args.batchSize,
      gradientAccumulation: args.gradientAccumulation,
      learningRate: args.lr,
      warmupSteps: args.warmup,
      schedule: args.schedule,
      weightDecay: args.weightDecay,
      maxGradNorm: args.maxGradNorm,
      seed: args.seed,
      progress: streams.stderr,
    });
    const checkpoint = join(args.out, 'checkpoint');
    if (args.resume) await trainer.resume(checkpoint);
    await mkdir(args.out, { recursive: true });
    await trainer.train(async (step) => {
      if (args.checkpointEvery && step % args.checkpointEvery === 0) await trainer.save(checkpoint);
    });
    const modelDir = join(args.out, 'model');
    await saveHfFolder(modelDir, {
      config: setup.config,
      params: setup.params,
      tokenizer: setup.tokenizerJson,
      tokenizerConfig: setup.tokenizerJson ? { add_bos_token: false, add_prefix_space: false, bos_token: EOT, eos_token: EOT, unk_token: EOT, tokenizer_class: 'GPT2Tokenizer' } : undefined,
      generationConfig: setup.tokenizerJson ? { bos_token_id: 0, eos_token_id: 0, transformers_version: '4.47.1' } : undefined,
    });
    if (args.model) {
      for (const name of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt']) {
        await copyFile(join(args.model, name), join(modelDir, name)).catch(() => undefined);
      }
    }
    await writeCurve(join(args.out, 'loss'), trainer.state.history);
    const last = trainer.state.history.at(-1);
    streams.stdout.write(JSON.stringify({ model: modelDir, steps: trainer.state.step, tokens: ids.length, finalLoss: last?.loss, curve: join(args.out, 'loss.svg') }) + '\n');
    return EXIT.ok;
  } catch (error) {
    return reportError(error, streams.stderr);
  }
}

/** The default shape from scratch: that of models/kjv-llama. */
const SHAPE = { vocabSize: 2048, hiddenSize: 128, layers: 3, heads: 4, intermediateSize: 256 };

const DEFAULTS = { blockSize: 128, steps: 1000, batchSize: 8, gradientAccumulation: 1, lr: 3e-3, warmup: 50, weightDecay: 0.1, seed: 0 };

function numberFlag(flag: string, integer: boolean): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) {
      throw new InvalidArgumentError(`${flag} must be a ${integer ? 'non-negative integer' : 'non-negative number'}, got "${value}"`);
    }
    return n;
  };
}

export function trainCommand(): Command {
  const int = (flag: string) => numberFlag(flag, true);
  const num = (flag: string) => numberFlag(flag, false);
  return new Command('train')
    .description('train a causal language model on a text file (from scratch, or fine-tune --model) and save a Hugging Face model folder')
    .requiredOption('--text <file>', 'UTF-8 text, one document per non-empty line')
    .requiredOption('--out <dir>', 'writes <dir>/model (the HF folder), <dir>/loss.csv, <dir>/loss.svg and checkpoints')
    .option('--model <dir>', 'a GPT-2 or Llama-family model folder to fine-tune (default: train from scratch)')
    .option('--vocab-size <n>', 'byte-level BPE vocabulary trained on the text (from scratch; default 2048)', int('--vocab-size'))
    .option('--hidden-size <n>', 'model width (from scratch; default 128)', int('--hidden-size'))
    .option('--layers <n>', 'decoder layers (from scratch; default 3)', int('--layers'))
    .option('--heads <n>', 'attention heads (from scratch; default 4)', int('--heads'))
    .option('--intermediate-size <n>', 'SwiGLU width (from scratch; default 256)', int('--intermediate-size'))
    .option('--block-size <n>', 'tokens per training sequence', int('--block-size'), DEFAULTS.blockSize)
    .option('--steps <n>', 'optimizer steps', int('--steps'), DEFAULTS.steps)
    .option('--batch-size <n>', 'sequences per micro-batch', int('--batch-size'), DEFAULTS.batchSize)
    .option('--gradient-accumulation <n>', 'micro-batches per optimizer step', int('--gradient-accumulation'), DEFAULTS.gradientAccumulation)
    .option('--lr <x>', 'peak learning rate (AdamW)', num('--lr'), DEFAULTS.lr)
    .option('--warmup <n>', 'linear warm-up steps', int('--warmup'), DEFAULTS.warmup)
    .option('--schedule <kind>', 'decay after warm-up: cosine, linear or constant', (v: string) => {
      if (v !== 'cosine' && v !== 'linear' && v !== 'constant') throw new InvalidArgumentError(`--schedule must be cosine, linear or constant, got "${v}"`);
      return v;
    }, 'cosine')
    .option('--weight-decay <x>', 'AdamW decoupled weight decay (not on biases and norm gains)', num('--weight-decay'), DEFAULTS.weightDecay)
    .option('--max-grad-norm <x>', 'clip the global gradient norm', num('--max-grad-norm'))
    .option('--seed <n>', 'seeds initialisation and data order', int('--seed'), DEFAULTS.seed)
    .option('--checkpoint-every <n>', 'save <dir>/checkpoint every n steps', int('--checkpoint-every'))
    .option('--resume', 'continue exactly from <dir>/checkpoint')
    .addHelpText(
      'after',
      `
Examples:
  glassformer train --text kjv.txt --out runs/kjv --steps 2000 --checkpoint-every 200
  glassformer train --text kjv.txt --out runs/kjv --steps 2000 --resume          # continue exactly where it stopped
  glassformer train --text my-notes.txt --model models/kjv-llama --out runs/notes --steps 300 --lr 3e-4`,
    )
    .action(async (options: TrainArgs) => {
      process.exitCode = await runTrain(options, { stdout: process.stdout, stderr: process.stderr });
    });
}
