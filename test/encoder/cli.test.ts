import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { test } from 'node:test';
import { EXIT } from '../../src/cli/errors.js';
import { classifyCommand, runClassify } from '../../src/cli/commands/classify.js';
import { embedCommand, runEmbed, type EncoderCommandStreams } from '../../src/cli/commands/embed.js';
import { fillMaskCommand, runFillMask } from '../../src/cli/commands/fill-mask.js';
import { runSearchIndex, runSearchQuery, runSearchRemove, searchCommand } from '../../src/cli/commands/search.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { Embedder } from '../../src/tasks/embed.js';
import { softmaxRow } from '../../src/tasks/classify.js';
import { MaskFiller } from '../../src/tasks/fill-mask.js';
import { cosineSimilarity } from '../../src/tasks/pooling.js';
import { recorded, segments } from './fixture.js';
import { BERT_CLASSIFICATION_FIXTURE, BERT_FIXTURE, temporaryFolder } from './shared.js';
import { textOf, tinyModelFolder, tinyTokenizer, VOCAB } from './tiny-tokenizer.js';

class Capture extends Writable {
  text = '';
  isTTY = false;
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

function streams(stdinLines?: string[], tty = false): EncoderCommandStreams & { stdout: Capture; stderr: Capture } {
  const stderr = new Capture();
  stderr.isTTY = tty;
  return { stdout: new Capture(), stderr, stdin: stdinLines ? Readable.from([stdinLines.join('\n') + '\n']) : undefined };
}

const SENTENCE_FILES = {
  'modules.json': JSON.stringify([
    { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
    { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
    { idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' },
  ]),
  '1_Pooling/config.json': JSON.stringify({ pooling_mode_mean_tokens: true }),
};

test('embed --json prints one {text, embedding} line per text, equal to the Embedder output', async () => {
  const dir = await tinyModelFolder(BERT_FIXTURE, SENTENCE_FILES);
  const io = streams();
  assert.equal(await runEmbed({ model: dir, texts: ['the cat sat', 'a dog runs'], json: true }, io), EXIT.ok);
  const lines = io.stdout.text.trim().split('\n').map((l) => JSON.parse(l) as { text: string; embedding: number[] });
  const expected = (await Embedder.fromFolder(nodeFileSystem, dir, tinyTokenizer())).embed(['the cat sat', 'a dog runs']);
  assert.deepEqual(lines.map((l) => l.text), ['the cat sat', 'a dog runs']);
  lines.forEach((l, i) => assert.deepEqual(l.embedding, Array.from(expected[i])));
  const fromStdin = streams(['the cat sat', '', 'a dog runs']);
  assert.equal(await runEmbed({ model: dir, texts: [] }, fromStdin), EXIT.ok);
  assert.match(fromStdin.stdout.text, /^the cat sat\t\[-?0\.\d{4}, .*\] \(32 dims, norm 1\.0000\)\na dog runs\t/);
  const empty = streams([]);
  assert.equal(await runEmbed({ model: dir, texts: [] }, empty), EXIT.usage);
  assert.match(empty.stderr.text, /no text given/);
});

test('search index then query returns documents by cosine similarity; remove takes one out', async () => {
  const dir = await tinyModelFolder(BERT_FIXTURE, SENTENCE_FILES);
  const work = await temporaryFolder('search-cli');
  const index = join(work, 'docs.gfindex');
  const docs = ['the cat sat on the mat', 'a dog runs fast', 'paris is the capital of france'];
  const io = streams(docs, true);
  assert.equal(await runSearchIndex({ model: dir, index, files: [] }, io), EXIT.ok);
  assert.match(io.stdout.text, /indexed 3 documents into .*docs.gfindex \(3 in total, 32 dimensions\)/);
  assert.match(io.stderr.text, /\r\[#+\] 3\/3 documents\n$/);
  const file = join(work, 'berlin.txt');
  await writeFile(file, 'berlin is the capital of germany');
  const quiet = streams();
  assert.equal(await runSearchIndex({ model: dir, index, files: [file] }, quiet), EXIT.ok);
  assert.equal(quiet.stderr.text, '', 'no progress bar when stderr is not a terminal');
  assert.match(quiet.stdout.text, /indexed 1 documents .*\(4 in total/);

  const query = streams();
  assert.equal(await runSearchQuery({ model: dir, index, query: 'the capital of england', topK: 4, json: true }, query), EXIT.ok);
  const { hits } = JSON.parse(query.stdout.text) as { hits: { id: string; score: number; text: string }[] };
  const embedder = await Embedder.fromFolder(nodeFileSystem, dir, tinyTokenizer());
  const all = [...docs, 'berlin is the capital of germany'];
  const vectors = embedder.embed(all);
  const [q] = embedder.embed(['the capital of england']);
  const order = all.map((text, i) => ({ text, s: cosineSimilarity(q, vectors[i]) })).sort((a, b) => b.s - a.s);
  assert.deepEqual(hits.map((h) => h.text), order.map((o) => o.text));
  assert.equal(hits.find((h) => h.text.startsWith('berlin'))!.id, file);
  const human = streams();
  await runSearchQuery({ model: dir, index, query: 'the capital of england', topK: 2 }, human);
  assert.match(human.stdout.text, /^1\. \d\.\d{4} {2}\S+ {2}.+\n2\. /);

  const remove = streams();
  assert.equal(await runSearchRemove({ index, ids: [file] }, remove), EXIT.ok);
  const after = streams();
  await runSearchQuery({ model: dir, index, query: 'the capital of england', topK: 10, json: true }, after);
  assert.equal((JSON.parse(after.stdout.text) as { hits: unknown[] }).hits.length, 3);
  const bytes = await readFile(index);
  bytes[bytes.length - 40] ^= 0xff;
  await writeFile(index, bytes);
  await assert.rejects(runSearchQuery({ model: dir, index, query: 'x' }, streams()), /docs.gfindex: not a usable glassformer index: the SHA-256 checksum does not match/);
});

test('classify prints softmax scores of the recorded logits for text pairs', async () => {
  const dir = await tinyModelFolder(BERT_CLASSIFICATION_FIXTURE);
  const run = await recorded(BERT_CLASSIFICATION_FIXTURE);
  const [a, pair] = segments(run, 0);
  const io = streams();
  assert.equal(await runClassify({ model: dir, texts: [textOf(a)], pair: textOf(pair), topK: 'all', json: true }, io), EXIT.ok);
  const { labels } = JSON.parse(io.stdout.text) as { labels: { label: string; score: number }[] };
  const probs = softmaxRow(Array.from(run.expected.get('logits')!.at(0).f32()));
  for (const l of labels) assert.ok(Math.abs(l.score - probs[Number(l.label.slice(6))]) < 1e-5);
  await assert.rejects(runClassify({ model: await tinyModelFolder(BERT_FIXTURE), texts: ['x'] }, streams()), /needs a \*ForSequenceClassification model/);
});

test('fill-mask prints the candidates the MaskFiller finds (checked against recorded logits in jobs.test.ts)', async () => {
  const dir = await tinyModelFolder(BERT_FIXTURE);
  const run = await recorded(BERT_FIXTURE);
  const [a, pair] = segments(run, 1);
  const text = `${textOf(a)} ${textOf(pair)}`;
  const io = streams();
  assert.equal(await runFillMask({ model: dir, texts: [text], topK: 3, json: true }, io), EXIT.ok);
  const { masks } = JSON.parse(io.stdout.text) as { masks: { token: number; tokenStr: string; score: number }[][] };
  const expected = (await MaskFiller.fromFolder(nodeFileSystem, dir, tinyTokenizer())).fill(text, { topK: 3 });
  assert.deepEqual(masks, expected);
  masks[0].forEach((c) => assert.equal(c.tokenStr, VOCAB[c.token]));
  const human = streams();
  await runFillMask({ model: dir, texts: ['the [MASK] sat'], topK: 2 }, human);
  assert.match(human.stdout.text, /^the \[MASK\] sat\n {2}0\.\d{4} {2}\S+ +the \S+ sat\n/);
  await assert.rejects(runFillMask({ model: dir, texts: ['no mask here'] }, streams()), /no mask token \[MASK\]/);
});

test('the commands declare their flags and arguments', () => {
  const flags = (c: ReturnType<typeof embedCommand>) => c.options.map((o) => o.long);
  assert.deepEqual(flags(embedCommand()), ['--model', '--json', '--pooling', '--normalize', '--no-normalize', '--prompt-name', '--prompt', '--batch-size']);
  assert.deepEqual(searchCommand().commands.map((c) => c.name()), ['index', 'query', 'remove']);
  assert.ok(flags(searchCommand().commands[1]).includes('--top-k'));
  assert.ok(flags(classifyCommand()).includes('--pair'));
  assert.ok(flags(fillMaskCommand()).includes('--targets'));
  assert.throws(() => embedCommand().exitOverride().configureOutput({ writeErr: () => undefined }).parse(['--model', 'x', '--pooling', 'median'], { from: 'user' }), /unknown pooling "median"/);
});
