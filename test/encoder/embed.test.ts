import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { loadBertFolder } from '../../src/models/bert.js';
import { defaultSentenceEncoderConfig, Embedder, readSentenceEncoderConfig, similarity } from '../../src/tasks/embed.js';
import { indexMetricFor } from '../../src/tasks/search.js';
import { cosineSimilarity, normalizeL2, pool } from '../../src/tasks/pooling.js';
import { padEncodings } from '../../src/tasks/text-batch.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { recorded } from './fixture.js';
import { BERT_FIXTURE, MINILM_FOLDER } from './shared.js';
import { sentenceEncoderFolder, tinyModelFolder, tinyTokenizer } from './tiny-tokenizer.js';

function maskTensor(rows: number[][]): Tensor {
  return Tensor.i32(rows.flat(), [rows.length, rows[0].length]);
}

test('mean, cls, max, mean_sqrt_len, weightedmean and lasttoken pooling of the recorded last_hidden_state equal a hand computation over real tokens', async () => {
  const run = await recorded(BERT_FIXTURE);
  const h = run.expected.get('last_hidden_state')!; // [2, 12, 32]
  const mask = run.inputs.attention_mask;
  const d = 32;
  for (let b = 0; b < 2; b++) {
    const real = mask[b].flatMap((m, t) => (m ? [t] : []));
    const at = (t: number, j: number) => h.get(b, t, j);
    const mean = Array.from({ length: d }, (_, j) => real.reduce((s, t) => s + at(t, j), 0) / real.length);
    const sqrt = Array.from({ length: d }, (_, j) => real.reduce((s, t) => s + at(t, j), 0) / Math.sqrt(real.length));
    const weighted = Array.from({ length: d }, (_, j) => real.reduce((s, t) => s + (t + 1) * at(t, j), 0) / real.reduce((s, t) => s + t + 1, 0));
    const max = Array.from({ length: d }, (_, j) => Math.max(...real.map((t) => at(t, j))));
    const cls = Array.from({ length: d }, (_, j) => at(0, j));
    const last = Array.from({ length: d }, (_, j) => at(real[real.length - 1], j));
    const cases: [Parameters<typeof pool>[2], number[]][] = [
      [['mean'], mean],
      [['mean_sqrt_len'], sqrt],
      [['weightedmean'], weighted],
      [['max'], max],
      [['cls'], cls],
      [['lasttoken'], last],
      [['mean', 'cls'], [...cls, ...mean]], // sentence-transformers order: cls, max, mean, …
    ];
    for (const [modes, expected] of cases) {
      const got = pool(h, maskTensor(mask), modes)[b];
      assert.equal(got.length, expected.length, modes.join('+'));
      expected.forEach((v, j) => assert.ok(Math.abs(got[j] - v) < 1e-5, `${modes.join('+')} row ${b} dim ${j}: ${got[j]} vs ${v}`));
    }
  }
  // Row 1 has 4 padded positions: their states must not leak into the mean.
  const polluted = pool(h, maskTensor(mask.map((row) => row.map(() => 1))), ['mean'])[1];
  const clean = pool(h, maskTensor(mask), ['mean'])[1];
  assert.ok(polluted.some((v, j) => Math.abs(v - clean[j]) > 1e-3));
});

test('normalizeL2 gives unit vectors and cosine similarity is scale-free', () => {
  const v = Float32Array.from([3, 4, 0]);
  assert.deepEqual(Array.from(normalizeL2(v)), [0.6000000238418579, 0.800000011920929, 0]);
  assert.ok(Math.abs(cosineSimilarity([1, 2, 3], [2, 4, 6]) - 1) < 1e-12);
  assert.equal(cosineSimilarity([1, 0], [0, 1]), 0);
});

test('the all-MiniLM-L6-v2 sentence-transformers folder parses to mean pooling, normalisation and 256 tokens', async () => {
  const config = await readSentenceEncoderConfig(nodeFileSystem, MINILM_FOLDER);
  assert.deepEqual(config.pooling, ['mean']);
  assert.equal(config.normalize, true);
  assert.equal(config.maxSeqLength, 256);
  assert.equal(config.doLowerCase, false);
  assert.deepEqual(config.prompts, {});
  assert.equal(config.similarity, 'cosine');
  assert.deepEqual(config.dense, []);
});

test('prompts, default prompt, similarity and pooling flags are read from the sentence-transformers files', async () => {
  const dir = await tinyModelFolder(BERT_FIXTURE, {
    'modules.json': JSON.stringify([
      { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
      { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
    ]),
    '1_Pooling/config.json': JSON.stringify({ word_embedding_dimension: 32, pooling_mode_cls_token: true, pooling_mode_mean_tokens: false }),
    'sentence_bert_config.json': JSON.stringify({ max_seq_length: 8, do_lower_case: true }),
    'config_sentence_transformers.json': JSON.stringify({ prompts: { query: 'query: ', passage: 'passage: ' }, default_prompt_name: null, similarity_fn_name: 'dot' }),
  });
  const config = await readSentenceEncoderConfig(nodeFileSystem, dir);
  assert.deepEqual(config.pooling, ['cls']);
  assert.equal(config.normalize, false);
  assert.equal(config.maxSeqLength, 8);
  assert.equal(config.doLowerCase, true);
  assert.deepEqual(config.prompts, { query: 'query: ', passage: 'passage: ' });
  assert.equal(config.similarity, 'dot');
});

test('a damaged sentence-transformers folder gives errors naming the file and field', async () => {
  const noMode = await tinyModelFolder(BERT_FIXTURE, {
    'modules.json': JSON.stringify([{ idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' }]),
    '1_Pooling/config.json': JSON.stringify({ pooling_mode_mean_tokens: false }),
  });
  await assert.rejects(readSentenceEncoderConfig(nodeFileSystem, noMode), /1_Pooling\/config.json: no pooling mode is switched on/);
  const unknown = await tinyModelFolder(BERT_FIXTURE, {
    'modules.json': JSON.stringify([{ idx: 0, name: '0', path: 'x', type: 'sentence_transformers.models.LSTM' }]),
  });
  await assert.rejects(readSentenceEncoderConfig(nodeFileSystem, unknown), /module type "sentence_transformers.models.LSTM" is not supported/);
  const badDefault = await tinyModelFolder(BERT_FIXTURE, {
    'modules.json': JSON.stringify([{ idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' }]),
    '1_Pooling/config.json': JSON.stringify({ pooling_mode_mean_tokens: true }),
    'config_sentence_transformers.json': JSON.stringify({ prompts: { query: 'q: ' }, default_prompt_name: 'passage' }),
  });
  await assert.rejects(readSentenceEncoderConfig(nodeFileSystem, badDefault), /default_prompt_name "passage" is not one of the prompts \(query\)/);
});

test('embed returns the pooled, normalised encoder output of each text, whatever the batch and padding', async () => {
  const dir = await sentenceEncoderFolder();
  const tokenizer = tinyTokenizer();
  const embedder = await Embedder.fromFolder(nodeFileSystem, dir, tokenizer);
  const texts = ['the cat sat on the mat', 'a dog runs', 'paris is the capital of france and london is the capital of england'];
  const batched = embedder.embed(texts, { batchSize: 2 });
  const model = await loadBertFolder(nodeFileSystem, dir, { head: 'base' });
  texts.forEach((text, i) => {
    const batch = padEncodings(tokenizer.encodeBatch([text], { padding: false }), 0);
    const hidden = model.forward(batch.inputs).lastHiddenState;
    const expected = normalizeL2(pool(hidden, batch.inputs.attentionMask, ['mean'])[0]);
    assert.equal(batched[i].length, 32);
    expected.forEach((v, j) => assert.ok(Math.abs(batched[i][j] - v) < 1e-5, `text ${i} dim ${j}`));
  });
  const unnormalised = embedder.embed([texts[0]], { normalize: false, pooling: 'cls' })[0];
  assert.ok(Math.abs(Math.hypot(...unnormalised) - 1) > 1e-3);
  // A prompt by name is prepended to the text.
  const [withPrompt] = embedder.embed(['a dog runs'], { promptName: 'query' });
  const [literal] = embedder.embed(['query a dog runs']);
  assert.deepEqual(Array.from(withPrompt), Array.from(literal));
  assert.throws(() => embedder.embed(['x'], { promptName: 'title' }), /prompt "title" is not defined .* defined: query, passage/);
  assert.deepEqual(embedder.embed([]), []);
});

test('texts longer than max_seq_length are truncated, keeping [CLS] … [SEP]', async () => {
  const dir = await tinyModelFolder(BERT_FIXTURE, {
    'modules.json': JSON.stringify([{ idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' }]),
    '1_Pooling/config.json': JSON.stringify({ pooling_mode_mean_tokens: true }),
    'sentence_bert_config.json': JSON.stringify({ max_seq_length: 6 }),
  });
  const embedder = await Embedder.fromFolder(nodeFileSystem, dir, tinyTokenizer());
  assert.equal(embedder.maxLength, 6);
  const [long] = embedder.embed(['the cat sat on the mat and the dog sat on the road']);
  const [short] = embedder.embed(['the cat sat on']);
  assert.deepEqual(Array.from(long), Array.from(short));
  // The fixture model has 64 positions; a longer text without max_seq_length is cut there rather than failing.
  const plain = await Embedder.fromFolder(nodeFileSystem, await tinyModelFolder(BERT_FIXTURE), tinyTokenizer());
  assert.equal(plain.maxLength, 64);
  assert.equal(plain.embed([Array(100).fill('cat').join(' ')])[0].length, 32);
});

test('similarity follows similarity_fn_name, and the index metric ranks the same way or is refused', async () => {
  const a = Float32Array.from([1, 2, 2]);
  const b = Float32Array.from([2, 0, 1]);
  assert.ok(Math.abs(similarity(a, b, 'cosine') - 4 / (3 * Math.sqrt(5))) < 1e-7);
  assert.equal(similarity(a, b, 'dot'), 4);
  assert.ok(Math.abs(similarity(a, b, 'euclidean') + Math.sqrt(1 + 4 + 1)) < 1e-7);
  assert.equal(similarity(a, b, 'manhattan'), -4);
  const model = await loadBertFolder(nodeFileSystem, BERT_FIXTURE, { head: 'base' });
  const withSettings = (similarityFn: 'cosine' | 'dot' | 'euclidean' | 'manhattan', normalize: boolean) =>
    new Embedder(model, tinyTokenizer(), { ...defaultSentenceEncoderConfig('test settings'), similarity: similarityFn, normalize });
  assert.equal(indexMetricFor(withSettings('dot', false)), 'dot');
  assert.equal(indexMetricFor(withSettings('cosine', false)), 'cosine');
  assert.equal(indexMetricFor(withSettings('euclidean', true)), 'cosine');
  assert.throws(() => indexMetricFor(withSettings('euclidean', false)), /test settings: similarity_fn_name "euclidean" on unnormalised vectors ranks differently/);
  assert.throws(() => indexMetricFor(withSettings('manhattan', true)), /"manhattan" ranks differently/);
});
