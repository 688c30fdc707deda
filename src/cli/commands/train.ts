/**
 * `glassformer train`: train a causal language model on a text file, from
 * scratch (a byte-level BPE tokenizer and a Llama-shaped decoder of the given
 * size) or by fine-tuning a model folder (GPT-2 or Llama family); or
 * fine-tune a folder for another task (--task masked-lm, classification,
 * seq2seq, sentence-embedding); and save the result as a Hugging Face model
 * folder with its loss curve.
 */
import { cp, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError, UnsupportedError } from '../../errors.js';
import { openModelFolder, TOKENIZER_FILES, type OpenModelFolderOptions } from '../../io/model-folder.js';
import { nodeFileSystem } from '../../io/node-fs.js';
import { useFastestKernel } from '../../kernels/index.js';
import { BartModel, parseBartConfig, type BartConfig } from '../../models/bart.js';
import { loadBert, type BertModel } from '../../models/bert.js';
import { parseModelConfig } from '../../io/config.js';
import { matmul } from '../../ops/index.js';
import { readSentenceEncoderConfig } from '../../tasks/embed.js';
import { loadFolderTokenizer } from '../../tasks/encoder-folder.js';
import { inBatchNegativesLoss, meanPooledEmbeddings, type Pair } from '../../train/contrastive.js';
import { parseLlamaConfig } from '../../models/llama.js';
import { T5Model, parseT5Config, type T5Config } from '../../models/t5.js';
import { Weights } from '../../nn/weights.js';
import { decoderFromConfig } from '../../tasks/generate.js';
import { noGrad } from '../../tensor/autograd.js';
import type { Tensor } from '../../tensor/tensor.js';
import { Tokenizer } from '../../tokenizers/index.js';
import { writeCurve } from '../../train/curve.js';
import { initParameters, llamaParameterShapes } from '../../train/init.js';
import { llamaConfigJson, saveHfFolder } from '../../train/save.js';
import { anchorPositives, classificationSetup, labelledTexts, maskedLmSetup, readJsonLines, textPairs, trainableCopy, type LabelledText, type TextPair } from '../../train/fine-tune.js';
import { dropoutSites, type DropoutHead } from '../../train/dropout.js';
import { Random } from '../../train/random.js';
import {
  causalLmLoss,
  classificationLoss,
  idsBatch,
  maskedLmLoss,
  packBlocks,
  padBatch,
  seq2seqLoss,
  type ClassificationExample,
  type Seq2SeqExample,
  type TrainingOptions,
} from '../../train/tasks.js';
import { trainByteLevelBpe } from '../../train/tokenizer-trainers.js';
import { Trainer, type StepLoss } from '../../train/trainer.js';
import { EXIT, reportError } from '../errors.js';
import type { CommandStreams } from './generate.js';

/** What the run trains for, as Hugging Face's example scripts name them (run_clm, run_mlm, run_glue, run_translation), and sentence-transformers' contrastive training. */
export type TrainTask = 'causal-lm' | 'masked-lm' | 'classification' | 'seq2seq' | 'sentence-embedding';

export interface TrainArgs {
  task?: TrainTask;
  /** A UTF-8 text file; each non-empty line is a document (causal-lm, masked-lm). */
  text?: string;
  /** JSON lines of examples (classification: text, text_pair?, label; seq2seq: source, target; sentence-embedding: anchor, positive). */
  data?: string;
  /** Held-out examples in the --data (or --text) format, scored before and after training. */
  evalData?: string;
  /** classification: train a new head even if the folder has one. */
  newHead?: boolean;
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
  return { params, config, tokenizer: Tokenizer.fromJSON(bpe.json), tokenizerJson: bpe.json, lossOf: causalLmLoss(model, trainMode(config)) };
}

/**
 * Train mode as Hugging Face's Trainer sets it (`model.train()`): dropout at
 * the config's probabilities. Held-out losses are measured without it.
 */
function trainMode(raw: Readonly<Record<string, unknown>>, head?: DropoutHead): TrainingOptions {
  return { dropout: dropoutSites({ modelType: String(raw.model_type), raw }, head) };
}

async function fromFolder(dir: string, args: TrainArgs): Promise<Setup> {
  const shapeFlags = (Object.keys(SHAPE) as (keyof typeof SHAPE)[]).filter((k) => args[k] !== undefined);
  if (shapeFlags.length > 0) {
    throw new UnsupportedError(`${shapeFlags.map(flagName).join(', ')}: only for training from scratch; ${dir} fixes the model's shape and tokenizer`);
  }
  const { raw: config, file, tensors, tokenizer } = await readFolder(dir);
  // Every tensor becomes a parameter (sharded folders too).
  const params = trainableCopy(tensors);
  const model = decoderFromConfig(config, Weights.from(params), file);
  return { params, config, tokenizer, lossOf: causalLmLoss(model, trainMode(config)) };
}

/** One run's examples, loss and saving, whatever the task. */
interface TaskRun<E> {
  params: Map<string, Tensor>;
  examples: E[];
  lossOf: (batch: E[], random: Random) => StepLoss;
  /** Tokens in the training examples. */
  tokens: number;
  /** Scores on the held-out examples (or the training ones when none were given), without gradients. */
  evaluate?: () => Record<string, number>;
  save(modelDir: string): Promise<void>;
  /** Fields added to the final JSON line. */
  report?: Record<string, unknown>;
}

async function readLines(path: string): Promise<string[]> {
  const lines = (await readFile(path, 'utf8')).split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new UnsupportedError(`${path}: no text to train on (the file has no non-empty line)`);
  return lines;
}

async function causalLmRun(args: TrainArgs): Promise<TaskRun<number[]>> {
  const text = requireFlag(args.text, '--text', 'causal-lm');
  const lines = await readLines(text);
  const setup = args.model ? await fromFolder(args.model, args) : await fromScratch(args, lines);
  const eos = setup.tokenizer.tokenToId(EOT);
  const ids = lines.flatMap((l) => [...setup.tokenizer.encode(l + '\n').ids, ...(eos === undefined ? [] : [eos])]);
  const blocks = packBlocks(ids, args.blockSize);
  if (blocks.length === 0) throw new UnsupportedError(`${text}: ${ids.length} tokens is less than one block of --block-size ${args.blockSize}`);
  return {
    params: setup.params,
    examples: blocks,
    lossOf: setup.lossOf,
    tokens: ids.length,
    save: async (modelDir) => {
      await saveHfFolder(modelDir, {
        config: setup.config,
        params: setup.params,
        tokenizer: setup.tokenizerJson,
        tokenizerConfig: setup.tokenizerJson ? { add_bos_token: false, add_prefix_space: false, bos_token: EOT, eos_token: EOT, unk_token: EOT, tokenizer_class: 'GPT2Tokenizer' } : undefined,
        generationConfig: setup.tokenizerJson ? { bos_token_id: 0, eos_token_id: 0, transformers_version: '4.47.1' } : undefined,
      });
      if (args.model) await copyFolderFiles(args.model, modelDir);
    },
  };
}

function requireFlag<T>(value: T | undefined, flag: string, task: TrainTask): T {
  if (value === undefined) throw new UnsupportedError(`--task ${task} needs ${flag}`);
  return value;
}

/** Copy `names` that exist in `from` (files or folders) into `to`; a missing one is skipped, any other error surfaces. */
async function copyPresent(from: string, to: string, names: readonly string[]): Promise<void> {
  for (const name of names) {
    await cp(join(from, name), join(to, name), { recursive: true }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }
}

/** The files of a fine-tuned folder that training does not change: every tokenizer file and the generation settings. */
async function copyFolderFiles(from: string, to: string): Promise<void> {
  await copyPresent(from, to, [...TOKENIZER_FILES, 'generation_config.json']);
}

interface Folder {
  dir: string;
  raw: Record<string, unknown>;
  file: string;
  tensors: Map<string, Tensor>;
  tokenizer: Tokenizer;
}

/**
 * A model folder read whole: its config, every tensor (training copies them
 * all) and its tokenizer; `modelTypes` refuses other families before any
 * tensor is read.
 */
async function readFolder(dir: string, modelTypes?: OpenModelFolderOptions['modelTypes']): Promise<Folder> {
  const folder = await openModelFolder(nodeFileSystem, dir, { modelTypes });
  return {
    dir,
    raw: folder.config.raw as Record<string, unknown>,
    file: folder.configPath,
    tensors: await folder.checkpoint!.loadAll(),
    tokenizer: await loadFolderTokenizer(nodeFileSystem, dir),
  };
}

/** Mean loss over `examples` in batches, without gradients: the same loss as training, for before/after. */
function meanLoss<E>(examples: readonly E[], lossOf: (batch: E[], random: Random) => StepLoss, batchSize: number, seed: number): number {
  return noGrad(() => {
    const random = new Random(seed);
    let total = 0;
    for (let i = 0; i < examples.length; i += batchSize) {
      const batch = examples.slice(i, i + batchSize);
      total += lossOf(batch, random).loss.f32()[0] * batch.length;
    }
    return total / examples.length;
  });
}

function truncate(tokenizer: Tokenizer, texts: readonly string[], maxLength: number): { ids: number[][]; special: Set<number> } {
  const encodings = tokenizer.encodeBatch([...texts], { truncation: true, maxLength, padding: false });
  const special = new Set<number>();
  for (const e of encodings) e.ids.forEach((id, i) => e.specialTokensMask[i] === 1 && special.add(id));
  return { ids: encodings.map((e) => e.ids), special };
}

async function maskedLmRun(args: TrainArgs): Promise<TaskRun<number[]>> {
  const dir = requireFlag(args.model, '--model', 'masked-lm');
  const folder = await readFolder(dir);
  const setup = maskedLmSetup(folder, args.seed);
  const { tokenizer } = folder;
  const maskTokenId = tokenizer.maskTokenId;
  const padId = tokenizer.padTokenId;
  if (maskTokenId === undefined || padId === undefined) throw new UnsupportedError(`${dir}: masked-LM training needs the tokenizer's mask and pad tokens (tokenizer_config.json names ${maskTokenId === undefined ? 'no mask_token' : 'no pad_token'})`);
  const train = truncate(tokenizer, await readLines(requireFlag(args.text, '--text', 'masked-lm')), args.blockSize);
  const held = args.evalData ? truncate(tokenizer, await readLines(args.evalData), args.blockSize) : train;
  const masking = { maskTokenId, vocabSize: setup.model.config.vocabSize, specialIds: new Set([...train.special, ...held.special]) };
  const lossOf = maskedLmLoss(setup.model, padId, masking);
  return {
    params: setup.params,
    examples: train.ids,
    lossOf: maskedLmLoss(setup.model, padId, masking, trainMode(setup.model.config.raw, 'masked-lm')),
    tokens: train.ids.reduce((n, r) => n + r.length, 0),
    // A fixed seed masks the same tokens before and after, so the two losses compare.
    evaluate: () => ({ loss: meanLoss(held.ids, lossOf, args.batchSize, args.seed) }),
    save: async (modelDir) => {
      await saveHfFolder(modelDir, { config: setup.config, params: setup.params });
      await copyFolderFiles(dir, modelDir);
    },
    report: { newlyInitialized: setup.newlyInitialized },
  };
}

async function classificationRun(args: TrainArgs): Promise<TaskRun<ClassificationExample>> {
  const dir = requireFlag(args.model, '--model', 'classification');
  const dataFile = requireFlag(args.data, '--data', 'classification');
  const folder = await readFolder(dir);
  const train = labelledTexts(await readJsonLines(nodeFileSystem, dataFile), dataFile);
  const held = args.evalData ? labelledTexts(await readJsonLines(nodeFileSystem, args.evalData), args.evalData) : train;
  const setup = classificationSetup(folder, [...train, ...held].map((e) => e.label), { seed: args.seed, newHead: args.newHead });
  const padId = folder.tokenizer.padTokenId ?? 0;
  const examples = (texts: LabelledText[]): ClassificationExample[] => {
    const inputs = texts.map((e): string | [string, string] => (e.textPair === undefined ? e.text : [e.text, e.textPair]));
    const encodings = folder.tokenizer.encodeBatch(inputs, { truncation: true, maxLength: args.blockSize, padding: false });
    return encodings.map((enc, i) => ({ ids: enc.ids, label: setup.labels.indexOf(texts[i].label) }));
  };
  const trainExamples = examples(train);
  const heldExamples = args.evalData ? examples(held) : trainExamples;
  const lossOf = classificationLoss(setup.model, padId);
  const trainLoss = classificationLoss(setup.model, padId, trainMode(setup.model.config.raw, setup.model.head));
  const accuracy = (): number =>
    noGrad(() => {
      let right = 0;
      for (let i = 0; i < heldExamples.length; i += args.batchSize) {
        const batch = heldExamples.slice(i, i + args.batchSize);
        const padded = padBatch(batch.map((e) => e.ids), padId);
        const logits = setup.model.forward({ inputIds: idsBatch(padded.ids), attentionMask: idsBatch(padded.mask) }).logits!;
        const labels = logits.shape[1];
        const data = logits.f32();
        batch.forEach((e, r) => {
          const row = data.subarray(r * labels, (r + 1) * labels);
          if (row.indexOf(Math.max(...row)) === e.label) right++;
        });
      }
      return right / heldExamples.length;
    });
  return {
    params: setup.params,
    examples: trainExamples,
    lossOf: trainLoss,
    tokens: trainExamples.reduce((n, e) => n + e.ids.length, 0),
    evaluate: () => ({ loss: meanLoss(heldExamples, lossOf, args.batchSize, args.seed), accuracy: accuracy() }),
    save: async (modelDir) => {
      await saveHfFolder(modelDir, { config: setup.config, params: setup.params });
      await copyFolderFiles(dir, modelDir);
    },
    report: { labels: setup.config.id2label, newlyInitialized: setup.newlyInitialized },
  };
}

async function seq2seqRun(args: TrainArgs): Promise<TaskRun<Seq2SeqExample>> {
  const dir = requireFlag(args.model, '--model', 'seq2seq');
  const dataFile = requireFlag(args.data, '--data', 'seq2seq');
  const folder = await readFolder(dir, { names: ['t5', 'mt5', 'bart', 'marian'], kind: 'an encoder-decoder' });
  const modelType = String(folder.raw.model_type);
  const params = trainableCopy(folder.tensors);
  let model: T5Model | BartModel;
  let config: T5Config | BartConfig;
  if (modelType === 't5' || modelType === 'mt5') {
    config = parseT5Config(folder.raw, folder.file);
    model = new T5Model(config, Weights.from(params, folder.file));
  } else {
    config = parseBartConfig(folder.raw, folder.file);
    // final_logits_bias is a registered buffer in HF, never trained.
    params.get('final_logits_bias')?.requireGrad(false);
    model = new BartModel(config, Weights.from(params, folder.file));
  }
  const encode = (texts: readonly string[]): number[][] => truncate(folder.tokenizer, texts, args.blockSize).ids;
  const pairsOf = (pairs: TextPair[]): Seq2SeqExample[] => {
    const sources = encode(pairs.map((p) => p.source));
    const targets = encode(pairs.map((p) => p.target));
    return pairs.map((_, i) => ({ source: sources[i], target: targets[i] }));
  };
  const train = pairsOf(textPairs(await readJsonLines(nodeFileSystem, dataFile), dataFile));
  const held = args.evalData ? pairsOf(textPairs(await readJsonLines(nodeFileSystem, args.evalData), args.evalData)) : train;
  const padId = requireConfig(config.padTokenId, 'pad_token_id', folder.file);
  const ids = { padId, decoderStartTokenId: requireConfig(config.decoderStartTokenId ?? padId, 'decoder_start_token_id', folder.file) };
  const lossOf = seq2seqLoss(model, ids);
  return {
    params,
    examples: train,
    lossOf: seq2seqLoss(model, { ...ids, ...trainMode(config.raw) }),
    tokens: train.reduce((n, e) => n + e.source.length + e.target.length, 0),
    evaluate: () => ({ loss: meanLoss(held, lossOf, args.batchSize, args.seed) }),
    save: async (modelDir) => {
      await saveHfFolder(modelDir, { config: folder.raw, params });
      await copyFolderFiles(dir, modelDir);
    },
  };
}

function requireConfig(value: number | null, field: string, file: string): number {
  if (value === null) throw new ConfigError(`${file}: seq2seq training needs "${field}"`);
  return value;
}

async function sentenceEmbeddingRun(args: TrainArgs): Promise<TaskRun<Pair>> {
  const dir = requireFlag(args.model, '--model', 'sentence-embedding');
  const dataFile = requireFlag(args.data, '--data', 'sentence-embedding');
  const folder = await readFolder(dir);
  const settings = await readSentenceEncoderConfig(nodeFileSystem, dir);
  if (settings.pooling.length !== 1 || settings.pooling[0] !== 'mean' || settings.dense.length > 0) {
    throw new UnsupportedError(`${settings.source}: sentence-embedding training pools by the mean of the token states with no Dense module; this folder pools by ${settings.pooling.join(' + ')}${settings.dense.length ? ` with ${settings.dense.length} Dense module(s)` : ''}`);
  }
  const params = trainableCopy(folder.tensors);
  const model = loadBert({ config: parseModelConfig(folder.raw, folder.file), weights: params, weightsName: folder.file }, { head: 'base' });
  const maxLength = Math.min(args.blockSize, settings.maxSeqLength ?? args.blockSize);
  const encode = (texts: readonly string[]): number[][] => truncate(folder.tokenizer, settings.doLowerCase ? texts.map((t) => t.toLowerCase()) : texts, maxLength).ids;
  const pairsOf = (records: Record<string, unknown>[], file: string): Pair[] => {
    const texts = anchorPositives(records, file);
    const anchors = encode(texts.map((p) => p.anchor));
    const positives = encode(texts.map((p) => p.positive));
    return texts.map((_, i) => ({ anchor: anchors[i], positive: positives[i] }));
  };
  const train = pairsOf(await readJsonLines(nodeFileSystem, dataFile), dataFile);
  const held = args.evalData ? pairsOf(await readJsonLines(nodeFileSystem, args.evalData), args.evalData) : train;
  const padId = folder.tokenizer.padTokenId ?? 0;
  const lossOf = inBatchNegativesLoss(model.bert, padId);
  return {
    params,
    examples: train,
    lossOf: inBatchNegativesLoss(model.bert, padId, undefined, trainMode(folder.raw)),
    tokens: train.reduce((n, p) => n + p.anchor.length + p.positive.length, 0),
    evaluate: () => ({ loss: meanLoss(held, lossOf, args.batchSize, args.seed), recallAt1: recallAt1(model.bert, held, padId) }),
    save: async (modelDir) => {
      await saveHfFolder(modelDir, { config: folder.raw, params });
      await copyFolderFiles(dir, modelDir);
      await copyPresent(dir, modelDir, ['modules.json', 'sentence_bert_config.json', 'config_sentence_transformers.json', '1_Pooling', '2_Normalize']);
    },
  };
}

/** Share of held-out anchors whose own positive is the nearest (cosine) of all held-out positives. */
function recallAt1(encoder: BertModel, pairs: readonly Pair[], padId: number): number {
  return noGrad(() => {
    const anchors = meanPooledEmbeddings(encoder, pairs.map((p) => p.anchor), padId);
    const positives = meanPooledEmbeddings(encoder, pairs.map((p) => p.positive), padId);
    const scores = matmul(anchors, positives, { transposeB: true }).f32(); // [pairs, pairs]
    const n = pairs.length;
    let hits = 0;
    for (let i = 0; i < n; i++) {
      const row = scores.subarray(i * n, (i + 1) * n);
      if (row.every((v, j) => j === i || v < row[i])) hits++;
    }
    return hits / n;
  });
}

async function trainRun<E>(run: TaskRun<E>, args: TrainArgs, streams: CommandStreams): Promise<void> {
  const before = run.evaluate?.();
  const trainer = new Trainer(run.params, run.examples, run.lossOf, {
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
  await run.save(modelDir);
  await writeCurve(join(args.out, 'loss'), trainer.state.history);
  const after = run.evaluate?.();
  const last = trainer.state.history.at(-1);
  streams.stdout.write(
    JSON.stringify({
      task: args.task ?? 'causal-lm',
      model: modelDir,
      steps: trainer.state.step,
      tokens: run.tokens,
      finalLoss: last?.loss,
      ...(before && after ? { eval: { before, after } } : {}),
      ...run.report,
      curve: join(args.out, 'loss.svg'),
    }) + '\n',
  );
}

/** The command's work: exit code out, progress and results on the streams. */
export async function runTrain(args: TrainArgs, streams: CommandStreams): Promise<number> {
  try {
    await useFastestKernel();
    const task = args.task ?? 'causal-lm';
    if (task !== 'causal-lm') {
      const shapeFlags = (Object.keys(SHAPE) as (keyof typeof SHAPE)[]).filter((k) => args[k] !== undefined);
      if (shapeFlags.length > 0) throw new UnsupportedError(`${shapeFlags.map(flagName).join(', ')}: only for training a causal LM from scratch; --task ${task} fine-tunes --model`);
    }
    if ((task === 'causal-lm' || task === 'masked-lm') && args.data !== undefined) throw new UnsupportedError(`--data is for classification, seq2seq and sentence-embedding; --task ${task} reads --text`);
    if (task !== 'causal-lm' && task !== 'masked-lm' && args.text !== undefined) throw new UnsupportedError(`--text is for causal-lm and masked-lm; --task ${task} reads JSON lines from --data`);
    if (task === 'causal-lm' && args.evalData !== undefined) throw new UnsupportedError('--eval-data: not offered for causal-lm (its held-out measure is perplexity; see the train:kjv-llama recipe)');
    if (args.newHead && task !== 'classification') throw new UnsupportedError('--new-head is for --task classification');
    if (task === 'causal-lm') await trainRun(await causalLmRun(args), args, streams);
    else if (task === 'masked-lm') await trainRun(await maskedLmRun(args), args, streams);
    else if (task === 'classification') await trainRun(await classificationRun(args), args, streams);
    else if (task === 'seq2seq') await trainRun(await seq2seqRun(args), args, streams);
    else await trainRun(await sentenceEmbeddingRun(args), args, streams);
    return EXIT.ok;
  } catch (error) {
    return reportError(error, streams.stderr);
  }
}

function flagName(key: string): string {
  return '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

/** The default shape from scratch: that of models/kjv-llama. */
const SHAPE = { vocabSize: 2048, hiddenSize: 128, layers: 3, heads: 4, intermediateSize: 256 };

const TASKS: readonly TrainTask[] = ['causal-lm', 'masked-lm', 'classification', 'seq2seq', 'sentence-embedding'];

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
    .description('train a causal language model on a text file (from scratch, or fine-tune --model), or fine-tune --model for masked-lm, classification or seq2seq; save a Hugging Face model folder')
    .option('--task <task>', 'causal-lm (GPT-2/Llama), masked-lm (BERT family), classification (BERT family), seq2seq (T5, BART, Marian) or sentence-embedding (sentence-transformers folders: in-batch negatives)', (v: string) => {
      if (!TASKS.includes(v as TrainTask)) throw new InvalidArgumentError(`--task must be one of ${TASKS.join(', ')}, got "${v}"`);
      return v;
    }, 'causal-lm')
    .option('--text <file>', 'causal-lm, masked-lm: UTF-8 text, one document per non-empty line')
    .option('--data <file>', 'classification: JSON lines {"text", "text_pair"?, "label"}; seq2seq: {"source", "target"}; sentence-embedding: {"anchor", "positive"}')
    .option('--eval-data <file>', 'all but causal-lm: held-out examples in the same format, scored before and after (default: the training examples)')
    .requiredOption('--out <dir>', 'writes <dir>/model (the HF folder), <dir>/loss.csv, <dir>/loss.svg and checkpoints')
    .option('--model <dir>', 'the model folder to fine-tune (required but for causal-lm, which otherwise trains from scratch)')
    .option('--new-head', 'classification: train a new head even if --model has one')
    .option('--vocab-size <n>', 'byte-level BPE vocabulary trained on the text (from scratch; default 2048)', int('--vocab-size'))
    .option('--hidden-size <n>', 'model width (from scratch; default 128)', int('--hidden-size'))
    .option('--layers <n>', 'decoder layers (from scratch; default 3)', int('--layers'))
    .option('--heads <n>', 'attention heads (from scratch; default 4)', int('--heads'))
    .option('--intermediate-size <n>', 'SwiGLU width (from scratch; default 256)', int('--intermediate-size'))
    .option('--block-size <n>', 'tokens per training sequence (causal-lm); longest input, truncated (other tasks)', int('--block-size'), DEFAULTS.blockSize)
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
  glassformer train --text my-notes.txt --model models/kjv-llama --out runs/notes --steps 300 --lr 3e-4
  glassformer train --task classification --model models/kjv-bert --data reviews.jsonl --out runs/reviews --steps 200 --lr 5e-4
  glassformer train --task masked-lm --model models/kjv-bert --text psalms.txt --out runs/psalms --steps 200 --lr 3e-4
  glassformer train --task seq2seq --model models/numbers-marian --data pairs.jsonl --out runs/pairs --steps 100 --lr 1e-3
  glassformer train --task sentence-embedding --model models/kjv-bert --data qa.jsonl --out runs/qa --steps 100 --lr 2e-4`,
    )
    .action(async (options: TrainArgs) => {
      process.exitCode = await runTrain(options, { stdout: process.stdout, stderr: process.stderr });
    });
}
