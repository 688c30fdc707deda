/**
 * npm run train:kjv-llama — trains models/kjv-llama from scratch with
 * glassformer: a byte-level BPE tokenizer and a small Llama-shaped decoder on
 * the King James Bible of Debian's bible-kjv-text package (public domain).
 *
 *   node dist/scripts/train-kjv-llama.js [--steps N] [--corpus FILE] [--out DIR] [--resume]
 *
 * Every 50th verse is held out; the held-out loss and perplexity are written to
 * DIR/quality.json. Checkpoints go to $TMPDIR/glassformer-train/kjv-llama/checkpoint (or
 * --work DIR) every 100 steps, and --resume continues from the last one exactly.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { existsSync } from 'node:fs';
import { useFastestKernel } from '../src/kernels/index.js';
import { LlamaModel, parseLlamaConfig } from '../src/models/llama.js';
import { Weights } from '../src/nn/weights.js';
import { noGrad } from '../src/tensor/autograd.js';
import { Tokenizer } from '../src/tokenizers/index.js';
import { writeCurve } from '../src/train/curve.js';
import { initParameters, llamaParameterShapes } from '../src/train/init.js';
import { readKjv } from '../src/train/recipes/kjv-corpus.js';
import { llamaConfigJson, saveHfFolder } from '../src/train/save.js';
import { causalLmLoss, packBlocks } from '../src/train/tasks.js';
import { trainByteLevelBpe } from '../src/train/tokenizer-trainers.js';
import { Trainer } from '../src/train/trainer.js';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '1500' },
    corpus: { type: 'string' },
    out: { type: 'string', default: 'models/kjv-llama' },
    work: { type: 'string', default: join(tmpdir(), 'glassformer-train', 'kjv-llama') },
    resume: { type: 'boolean', default: false },
  },
});
const steps = Number(values.steps);
const started = performance.now();
const log = (msg: string): void => console.error(`[${((performance.now() - started) / 1000).toFixed(0)}s] ${msg}`);
await useFastestKernel();

const EOT = '<|endoftext|>';
const VOCAB = 2048;
const BLOCK = 128;

const verses = readKjv(values.corpus);
const lines = verses.map((v) => v.text + '\n');
const train = lines.filter((_, i) => i % 50 !== 0);
const heldOut = lines.filter((_, i) => i % 50 === 0);
log(`${verses.length} verses: ${train.length} to train on, ${heldOut.length} held out`);

const bpe = trainByteLevelBpe(train, { vocabSize: VOCAB, specialTokens: [EOT] });
const tokenizer = Tokenizer.fromJSON(bpe.json);
log(`tokenizer: ${bpe.vocab.size} tokens, ${bpe.merges.length} merges`);
const encode = (texts: string[]): number[] => texts.flatMap((t) => tokenizer.encode(t).ids);
const trainIds = encode(train);
const heldOutIds = encode(heldOut);
log(`${trainIds.length} training tokens, ${heldOutIds.length} held-out tokens`);

const configJson = llamaConfigJson({
  vocabSize: VOCAB,
  hiddenSize: 128,
  intermediateSize: 256,
  layers: 3,
  heads: 4,
  kvHeads: 4,
  maxPositions: 512,
  bosTokenId: 0,
  eosTokenId: 0,
  tieWordEmbeddings: true,
  initializerRange: 0.02,
});
const config = parseLlamaConfig(configJson);
const params = initParameters(llamaParameterShapes(config), { std: 0.02, seed: 1611 });
const model = new LlamaModel(config, Weights.from(params));
const blocks = packBlocks(trainIds, BLOCK);
const trainer = new Trainer(params, blocks, causalLmLoss(model), {
  steps,
  batchSize: 8,
  learningRate: 3e-3,
  warmupSteps: 50,
  schedule: 'cosine',
  weightDecay: 0.1,
  betas: [0.9, 0.95],
  maxGradNorm: 1,
  seed: 1611,
  progress: process.stderr,
});
const checkpoint = join(values.work, 'checkpoint');
if (values.resume && existsSync(checkpoint)) {
  await trainer.resume(checkpoint);
  log(`resumed at step ${trainer.state.step}`);
}
await mkdir(values.work, { recursive: true });
await trainer.train(async (step) => {
  if (step % 100 === 0 || step === steps) await trainer.save(checkpoint);
  if (!process.stderr.isTTY && step % 50 === 0) log(`step ${step} loss ${trainer.state.history.at(-1)!.loss.toFixed(4)}`);
});
const trainSeconds = (performance.now() - started) / 1000;

/** Mean next-token loss over the held-out verses, in blocks like training. */
const evalLoss = noGrad(() => {
  const lossOf = causalLmLoss(model);
  const evalBlocks = packBlocks(heldOutIds, BLOCK);
  let sum = 0;
  for (let i = 0; i < evalBlocks.length; i += 8) sum += lossOf(evalBlocks.slice(i, i + 8)).loss.f32()[0] * Math.min(8, evalBlocks.length - i);
  return sum / evalBlocks.length;
});
log(`held-out loss ${evalLoss.toFixed(4)}, perplexity ${Math.exp(evalLoss).toFixed(2)}`);

await saveHfFolder(values.out, {
  config: configJson,
  params,
  tokenizer: bpe.json,
  tokenizerConfig: {
    add_bos_token: false,
    add_prefix_space: false,
    bos_token: EOT,
    eos_token: EOT,
    unk_token: EOT,
    clean_up_tokenization_spaces: false,
    model_max_length: 512,
    tokenizer_class: 'GPT2Tokenizer',
  },
  generationConfig: { bos_token_id: 0, eos_token_id: 0, transformers_version: '4.47.1' },
});
const history = trainer.state.history;
await writeCurve(join(values.out, 'loss'), history, 'kjv-llama: training loss per step');
await writeFile(
  join(values.out, 'quality.json'),
  JSON.stringify(
    {
      corpus: 'King James Bible, Debian bible-kjv-text 4.38 (every 50th verse held out)',
      trainTokens: trainIds.length,
      heldOutTokens: heldOutIds.length,
      steps,
      tokensPerStep: 8 * BLOCK,
      finalTrainLoss: history.at(-1)?.loss,
      heldOutLoss: evalLoss,
      heldOutPerplexity: Math.exp(evalLoss),
      wallSeconds: Math.round(trainSeconds),
    },
    null,
    2,
  ) + '\n',
);
log(`saved ${values.out}`);
