/**
 * npm run train:kjv-bert — trains models/kjv-bert with glassformer: a small
 * BERT for semantic search over the King James Bible (Debian bible-kjv-text).
 * A WordPiece tokenizer, then masked-LM pre-training (15%, 80/10/10) on the
 * verses, then contrastive training on pairs of neighbouring verses with
 * in-batch negatives. Saved as a sentence-transformers folder (mean pooling,
 * normalised) that the embed and search jobs load.
 *
 * Every 20th chapter is held out: its verses are queries, and the task is to
 * find each verse's next verse among all held-out verses (DIR/quality.json
 * gives recall@1, recall@10 and MRR after MLM alone and after the contrastive
 * stage).
 *
 *   node dist/scripts/train-kjv-bert.js [--mlm-steps N] [--pair-steps N] [--corpus FILE] [--out DIR]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { parseModelConfig, type BertConfig } from '../src/io/config.js';
import { useFastestKernel } from '../src/kernels/index.js';
import { BertForMaskedLM, loadBert } from '../src/models/bert.js';
import { noGrad } from '../src/tensor/autograd.js';
import { Tokenizer } from '../src/tokenizers/index.js';
import { inBatchNegativesLoss, meanPooledEmbeddings, type Pair } from '../src/train/contrastive.js';
import { writeCurve } from '../src/train/curve.js';
import { bertParameterShapes, initParameters } from '../src/train/init.js';
import { readKjv, type Verse } from '../src/train/recipes/kjv-corpus.js';
import { saveHfFolder } from '../src/train/save.js';
import { maskedLmLoss } from '../src/train/tasks.js';
import { BERT_SPECIAL_TOKENS, trainWordPiece } from '../src/train/tokenizer-trainers.js';
import { Trainer } from '../src/train/trainer.js';

const { values } = parseArgs({
  options: {
    'mlm-steps': { type: 'string', default: '1000' },
    'pair-steps': { type: 'string', default: '500' },
    corpus: { type: 'string' },
    out: { type: 'string', default: 'models/kjv-bert' },
  },
});
const mlmSteps = Number(values['mlm-steps']);
const pairSteps = Number(values['pair-steps']);
const started = performance.now();
const log = (msg: string): void => console.error(`[${((performance.now() - started) / 1000).toFixed(0)}s] ${msg}`);
await useFastestKernel();

const MAX_TOKENS = 64;
const verses = readKjv(values.corpus);
const chapterKey = (v: Verse): string => `${v.book} ${v.chapter}`;
const chapters = [...new Set(verses.map(chapterKey))];
const heldOutChapters = new Set(chapters.filter((_, i) => i % 20 === 0));
const trainVerses = verses.filter((v) => !heldOutChapters.has(chapterKey(v)));
const heldOutVerses = verses.filter((v) => heldOutChapters.has(chapterKey(v)));
log(`${trainVerses.length} training verses, ${heldOutVerses.length} held-out verses in ${heldOutChapters.size} chapters`);

const wordPiece = trainWordPiece(
  trainVerses.map((v) => v.text),
  { vocabSize: 2048 },
);
const tokenizer = Tokenizer.fromJSON(wordPiece.json);
const ids = (text: string): number[] => {
  const all = tokenizer.encode(text).ids;
  return all.length <= MAX_TOKENS ? all : [...all.slice(0, MAX_TOKENS - 1), all[all.length - 1]];
};
const [padId, , , , maskId] = BERT_SPECIAL_TOKENS.map((t) => wordPiece.vocab.get(t)!);
log(`WordPiece vocabulary of ${wordPiece.vocab.size}`);

const configJson: Record<string, unknown> = {
  architectures: ['BertForMaskedLM'],
  attention_probs_dropout_prob: 0.0,
  classifier_dropout: null,
  hidden_act: 'gelu',
  hidden_dropout_prob: 0.0,
  hidden_size: 128,
  initializer_range: 0.02,
  intermediate_size: 256,
  layer_norm_eps: 1e-12,
  max_position_embeddings: 128,
  model_type: 'bert',
  num_attention_heads: 4,
  num_hidden_layers: 2,
  pad_token_id: padId,
  position_embedding_type: 'absolute',
  torch_dtype: 'float32',
  transformers_version: '4.47.1',
  type_vocab_size: 2,
  use_cache: true,
  vocab_size: wordPiece.vocab.size,
};
const config = parseModelConfig(configJson) as BertConfig;
const params = initParameters(bertParameterShapes(config, { prefix: 'bert', mlmHead: true }), { std: 0.02, seed: 1769 });
const mlm = loadBert({ config, weights: params });
if (!(mlm instanceof BertForMaskedLM)) throw new Error('expected BertForMaskedLM');
const encoder = mlm.bert;

/** Held-out retrieval: each verse's query finds its next verse among all held-out verses. */
function retrieval(): { recallAt1: number; recallAt10: number; mrr: number; queries: number; candidates: number } {
  return noGrad(() => {
    const tokens = heldOutVerses.map((v) => ids(v.text));
    const vectors: Float32Array[] = [];
    for (let i = 0; i < tokens.length; i += 64) {
      const e = meanPooledEmbeddings(encoder, tokens.slice(i, i + 64), padId);
      const d = e.shape[1];
      for (let r = 0; r < e.shape[0]; r++) vectors.push(e.f32().slice(r * d, (r + 1) * d));
    }
    let hits1 = 0;
    let hits10 = 0;
    let reciprocal = 0;
    let queries = 0;
    for (let q = 0; q + 1 < heldOutVerses.length; q++) {
      if (chapterKey(heldOutVerses[q]) !== chapterKey(heldOutVerses[q + 1])) continue;
      const dot = (a: Float32Array, b: Float32Array): number => a.reduce((s, x, k) => s + x * b[k], 0);
      const target = dot(vectors[q], vectors[q + 1]);
      let rank = 1;
      for (let c = 0; c < vectors.length; c++) if (c !== q && c !== q + 1 && dot(vectors[q], vectors[c]) > target) rank++;
      queries++;
      if (rank === 1) hits1++;
      if (rank <= 10) hits10++;
      reciprocal += 1 / rank;
    }
    return { recallAt1: hits1 / queries, recallAt10: hits10 / queries, mrr: reciprocal / queries, queries, candidates: vectors.length - 1 };
  });
}

const untrained = retrieval();
log(`untrained: ${JSON.stringify(untrained)}`);

const mlmTrainer = new Trainer(
  params,
  trainVerses.map((v) => ids(v.text)),
  maskedLmLoss(mlm, padId, { maskTokenId: maskId, vocabSize: wordPiece.vocab.size, specialIds: new Set(BERT_SPECIAL_TOKENS.map((t) => wordPiece.vocab.get(t)!)) }),
  { steps: mlmSteps, batchSize: 32, learningRate: 1e-3, warmupSteps: 50, weightDecay: 0.01, maxGradNorm: 1, seed: 1769, progress: process.stderr },
);
await mlmTrainer.train((step) => {
  if (!process.stderr.isTTY && step % 100 === 0) log(`MLM step ${step} loss ${mlmTrainer.state.history.at(-1)!.loss.toFixed(4)}`);
});
const afterMlm = retrieval();
log(`after MLM: ${JSON.stringify(afterMlm)}`);

const pairs: Pair[] = [];
for (let i = 0; i + 1 < trainVerses.length; i++) {
  if (chapterKey(trainVerses[i]) === chapterKey(trainVerses[i + 1])) pairs.push({ anchor: ids(trainVerses[i].text), positive: ids(trainVerses[i + 1].text) });
}
// The MLM head takes no part in the contrastive stage.
const encoderParams = new Map([...params].filter(([name]) => name.startsWith('bert.')));
const pairTrainer = new Trainer(encoderParams, pairs, inBatchNegativesLoss(encoder, padId), {
  steps: pairSteps,
  batchSize: 32,
  learningRate: 5e-4,
  warmupSteps: 30,
  weightDecay: 0.01,
  maxGradNorm: 1,
  seed: 1770,
  progress: process.stderr,
});
await pairTrainer.train((step) => {
  if (!process.stderr.isTTY && step % 50 === 0) log(`pair step ${step} loss ${pairTrainer.state.history.at(-1)!.loss.toFixed(4)}`);
});
const afterPairs = retrieval();
log(`after contrastive: ${JSON.stringify(afterPairs)}`);
const wallSeconds = Math.round((performance.now() - started) / 1000);

// A sentence-transformers folder: the bare encoder at the root, mean pooling, normalisation.
const out = values.out;
const baseParams = new Map([...encoderParams].map(([name, t]) => [name.slice('bert.'.length), t]));
await saveHfFolder(out, {
  config: { ...configJson, architectures: ['BertModel'] },
  params: baseParams,
  tokenizer: wordPiece.json,
  tokenizerConfig: { tokenizer_class: 'BertTokenizer', do_lower_case: true, cls_token: '[CLS]', sep_token: '[SEP]', pad_token: '[PAD]', mask_token: '[MASK]', unk_token: '[UNK]', model_max_length: MAX_TOKENS, clean_up_tokenization_spaces: true },
});
const json = (value: unknown): string => JSON.stringify(value, null, 2) + '\n';
await writeFile(
  join(out, 'modules.json'),
  json([
    { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
    { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
    { idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' },
  ]),
);
await mkdir(join(out, '1_Pooling'), { recursive: true });
await mkdir(join(out, '2_Normalize'), { recursive: true });
await writeFile(
  join(out, '1_Pooling', 'config.json'),
  json({ word_embedding_dimension: 128, pooling_mode_cls_token: false, pooling_mode_mean_tokens: true, pooling_mode_max_tokens: false, pooling_mode_mean_sqrt_len_tokens: false, pooling_mode_weightedmean_tokens: false, pooling_mode_lasttoken: false, include_prompt: true }),
);
await writeFile(join(out, 'sentence_bert_config.json'), json({ max_seq_length: MAX_TOKENS, do_lower_case: false }));
await writeCurve(join(out, 'loss-mlm'), mlmTrainer.state.history, 'kjv-bert: masked-LM loss per step');
await writeCurve(join(out, 'loss-pairs'), pairTrainer.state.history, 'kjv-bert: in-batch-negatives loss per step');
await writeFile(
  join(out, 'quality.json'),
  json({
    corpus: 'King James Bible, Debian bible-kjv-text 4.38 (every 20th chapter held out)',
    task: 'find the next verse of each held-out verse among all held-out verses (cosine similarity)',
    untrained,
    afterMaskedLm: afterMlm,
    afterContrastive: afterPairs,
    mlmSteps,
    pairSteps,
    pairs: pairs.length,
    wallSeconds,
  }),
);
log(`saved ${out}`);
