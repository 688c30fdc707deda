/**
 * npm run train:numbers-marian — trains models/numbers-marian with glassformer:
 * a small encoder-decoder in the 2017 Transformer's shape (post-norm, ReLU,
 * sinusoidal positions, scaled and shared embeddings), saved as a Hugging Face
 * Marian model so the translate job runs it, that turns numbers written in
 * English words into digits. The data is generated; 500 numbers of 4–6 digits
 * never seen in training measure exact-match accuracy (DIR/quality.json).
 *
 *   node dist/scripts/train-numbers-marian.js [--steps N] [--out DIR]
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { generate } from '../src/generation/generate.js';
import { useFastestKernel } from '../src/kernels/index.js';
import { BartModel, parseBartConfig } from '../src/models/bart.js';
import { Weights } from '../src/nn/weights.js';
import { Tokenizer } from '../src/tokenizers/index.js';
import { writeCurve } from '../src/train/curve.js';
import { initParameters, marianParameterShapes } from '../src/train/init.js';
import { Random } from '../src/train/random.js';
import { numberToWords, sampleNumbers } from '../src/train/recipes/number-words.js';
import { saveHfFolder } from '../src/train/save.js';
import { seq2seqLoss, type Seq2SeqExample } from '../src/train/tasks.js';
import { trainByteLevelBpe } from '../src/train/tokenizer-trainers.js';
import { Trainer } from '../src/train/trainer.js';

const { values } = parseArgs({ options: { steps: { type: 'string', default: '1500' }, out: { type: 'string', default: 'models/numbers-marian' } } });
const steps = Number(values.steps);
const started = performance.now();
const log = (msg: string): void => console.error(`[${((performance.now() - started) / 1000).toFixed(0)}s] ${msg}`);
await useFastestKernel();

const EOS = '</s>';
const UNK = '<unk>';
const PAD = '<pad>';
const random = new Random(2017);
// Held-out numbers have 4–6 digits: every smaller number is in the training set.
const heldOut = sampleNumbers(500, random, new Set(), 4);
const train = sampleNumbers(30000, random, new Set(heldOut));
log(`${train.length} training numbers, ${heldOut.length} held out`);

const texts = train.flatMap((n) => [numberToWords(n), String(n)]);
const bpe = trainByteLevelBpe(texts, { vocabSize: 320, specialTokens: [EOS, UNK, PAD] });
// Marian's tokenizer ends every sequence with </s>.
bpe.json.post_processor = {
  type: 'TemplateProcessing',
  single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: EOS, type_id: 0 } }],
  pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 0 } }, { SpecialToken: { id: EOS, type_id: 0 } }],
  special_tokens: { [EOS]: { id: EOS, ids: [0], tokens: [EOS] } },
};
const tokenizer = Tokenizer.fromJSON(bpe.json);
const vocab = bpe.vocab.size;
const padId = bpe.vocab.get(PAD)!;
const encode = (text: string): number[] => tokenizer.encode(text).ids;
const examples: Seq2SeqExample[] = train.map((n) => ({ source: encode(numberToWords(n)), target: encode(String(n)) }));

const configJson: Record<string, unknown> = {
  activation_dropout: 0.0,
  activation_function: 'relu',
  architectures: ['MarianMTModel'],
  attention_dropout: 0.0,
  d_model: 64,
  decoder_attention_heads: 4,
  decoder_ffn_dim: 256,
  decoder_layerdrop: 0.0,
  decoder_layers: 2,
  decoder_start_token_id: padId,
  decoder_vocab_size: vocab,
  dropout: 0.0,
  encoder_attention_heads: 4,
  encoder_ffn_dim: 256,
  encoder_layerdrop: 0.0,
  encoder_layers: 2,
  eos_token_id: 0,
  forced_eos_token_id: 0,
  init_std: 0.02,
  is_encoder_decoder: true,
  max_position_embeddings: 64,
  model_type: 'marian',
  num_hidden_layers: 2,
  pad_token_id: padId,
  scale_embedding: true,
  share_encoder_decoder_embeddings: true,
  torch_dtype: 'float32',
  transformers_version: '4.47.1',
  use_cache: true,
  vocab_size: vocab,
};
const config = parseBartConfig(configJson);
const params = initParameters(marianParameterShapes(config), { std: 0.02, seed: 2017 });
// final_logits_bias is a buffer in HF (zeros, never trained).
params.get('final_logits_bias')!.requireGrad(false);
const model = new BartModel(config, Weights.from(params));
const trainer = new Trainer(params, examples, seq2seqLoss(model, { padId, decoderStartTokenId: padId }), {
  steps,
  batchSize: 32,
  learningRate: 3e-3,
  warmupSteps: 100,
  schedule: 'cosine',
  weightDecay: 0.01,
  maxGradNorm: 1,
  seed: 2017,
  progress: process.stderr,
});
await trainer.train((step) => {
  if (!process.stderr.isTTY && step % 100 === 0) log(`step ${step} loss ${trainer.state.history.at(-1)!.loss.toFixed(4)}`);
});
const trainSeconds = (performance.now() - started) / 1000;

const generation = { decoderStartTokenId: padId, eosTokenId: 0, padTokenId: padId, maxNewTokens: 12 };
let correct = 0;
const mistakes: string[] = [];
for (const n of heldOut) {
  const source = encode(numberToWords(n));
  const out = generate(model, { inputIds: [source] }, generation);
  const text = tokenizer.decode(out.sequences[0], { skipSpecialTokens: true });
  if (text === String(n)) correct++;
  else if (mistakes.length < 10) mistakes.push(`${numberToWords(n)} → ${text} (expected ${n})`);
}
const accuracy = correct / heldOut.length;
log(`held-out exact match ${(100 * accuracy).toFixed(1)}%`);

await saveHfFolder(values.out, {
  config: configJson,
  params,
  tokenizer: bpe.json,
  tokenizerConfig: { tokenizer_class: 'PreTrainedTokenizerFast', eos_token: EOS, unk_token: UNK, pad_token: PAD, model_max_length: 64, clean_up_tokenization_spaces: false },
  generationConfig: { bad_words_ids: [[padId]], decoder_start_token_id: padId, eos_token_id: 0, forced_eos_token_id: 0, max_length: 16, num_beams: 1, pad_token_id: padId, transformers_version: '4.47.1' },
});
await writeCurve(join(values.out, 'loss'), trainer.state.history, 'numbers-marian: training loss per step');
await writeFile(
  join(values.out, 'quality.json'),
  JSON.stringify({ task: 'English number words → digits, 0 ≤ n < 1,000,000', trainExamples: examples.length, heldOut: heldOut.length, steps, heldOutExactMatch: accuracy, mistakes, wallSeconds: Math.round(trainSeconds) }, null, 2) + '\n',
);
log(`saved ${values.out}`);
