import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CommanderError } from 'commander';
import { runSummarize } from '../../src/cli/commands/summarize.js';
import { runTranslate, translateCommand } from '../../src/cli/commands/translate.js';
import { EXIT } from '../../src/cli/errors.js';
import { generate } from '../../src/generation/generate.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { loadEncoderDecoder } from '../../src/tasks/translate.js';
import { removeTinyFolders, textOf, tinyModelFolder, type SpecialIds } from './tiny-tokenizer.js';

after(removeTinyFolders);

const shared = process.env.GLASSFORMER_SHARED ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../..', '../shared');
const fixtures = join(shared, 'fixtures', 'hf-tiny');

interface Recorded {
  inputs: { input_ids: number[][]; attention_mask: number[][] };
  expected: { generate: Record<string, { sequences: number[][] }> };
  config: Record<string, unknown>;
}

function recorded(name: string): Recorded {
  const read = (file: string) => JSON.parse(readFileSync(join(fixtures, name, file), 'utf8')) as never;
  return { inputs: read('inputs.json'), expected: read('expected.json'), config: read('config.json') };
}

function capture(stdin?: string) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  return { streams: { stdout, stderr, stdin: stdin === undefined ? undefined : Readable.from([stdin]) }, out: () => out, err: () => err };
}

const MARIAN: SpecialIds = { eos: 0, unk: 1, pad: 127 };
const BART: SpecialIds = { bos: 0, pad: 1, eos: 2, unk: 3 };
const strip = (ids: number[], special: SpecialIds) => ids.filter((id) => !Object.values(special).includes(id));
/** Fixture rows as texts: real tokens without the specials the tokenizer adds back (BART: leading <s>; all: closing </s>). */
const texts = (r: Recorded, special: SpecialIds) =>
  r.inputs.input_ids.map((row, b) => textOf(row.filter((_, i) => r.inputs.attention_mask[b][i] === 1).slice(special.bos === undefined ? 0 : 1, -1)));

test('glassformer translate prints one translation per line, the recorded greedy ids as text', async () => {
  const r = recorded('marian');
  const dir = tinyModelFolder(join(fixtures, 'marian'), MARIAN, r.config);
  const c = capture();
  const code = await runTranslate({ model: dir, texts: texts(r, MARIAN), maxNewTokens: 16 }, c.streams);
  assert.equal(code, EXIT.ok, c.err());
  assert.equal(c.out(), r.expected.generate.greedy.sequences.map((ids) => textOf(strip(ids, MARIAN)) + '\n').join(''));
});

test('glassformer translate --json with --num-beams gives each input, text and the recorded beam ids; texts may come from stdin', async () => {
  const r = recorded('marian');
  const dir = tinyModelFolder(join(fixtures, 'marian'), MARIAN, r.config);
  const inputs = texts(r, MARIAN);
  const c = capture(inputs.join('\n') + '\n\n');
  const code = await runTranslate({ model: dir, texts: [], numBeams: 4, maxNewTokens: 16, json: true }, c.streams);
  assert.equal(code, EXIT.ok, c.err());
  const json = JSON.parse(c.out()) as { results: { input: string; text: string; ids: number[] }[] };
  assert.deepEqual(
    json.results.map((x) => x.input),
    inputs,
  );
  assert.deepEqual(
    json.results.map((x) => x.ids),
    r.expected.generate.beam.sequences,
  );
});

test('glassformer summarize on the bart fixture model: beam search texts; no text is a usage error', async () => {
  const r = recorded('bart');
  const dir = tinyModelFolder(join(fixtures, 'bart'), BART, r.config);
  const c = capture();
  assert.equal(await runSummarize({ model: dir, texts: texts(r, BART), numBeams: 4, maxNewTokens: 16 }, c.streams), EXIT.ok, c.err());
  assert.equal(c.out(), r.expected.generate.beam.sequences.map((ids) => textOf(strip(ids, BART)) + '\n').join(''));
  const empty = capture('');
  assert.equal(await runSummarize({ model: dir, texts: [] }, empty.streams), EXIT.usage);
  assert.match(empty.err(), /no text given/);
});

test('generate\'s decoding flags work here too: a seeded sampled translation is the one generate() gives; --greedy with sampling flags is a usage error', async () => {
  const r = recorded('marian');
  const dir = tinyModelFolder(join(fixtures, 'marian'), MARIAN, r.config);
  const args = { model: dir, texts: texts(r, MARIAN), maxNewTokens: 8, temperature: 1.5, topK: 20, seed: 7, json: true };
  const run = async () => {
    const c = capture();
    assert.equal(await runTranslate(args, c.streams), EXIT.ok, c.err());
    return (JSON.parse(c.out()) as { results: { ids: number[] }[] }).results.map((x) => x.ids);
  };
  const sampled = await run();
  assert.deepEqual(await run(), sampled, 'the same seed gives the same tokens');
  const folder = await loadEncoderDecoder(nodeFileSystem, dir);
  const direct = generate(folder.model, { inputIds: r.inputs.input_ids, attentionMask: r.inputs.attention_mask }, { maxNewTokens: 8, doSample: true, temperature: 1.5, topK: 20, seed: 7 }, folder.generationDefaults);
  assert.deepEqual(sampled, direct.sequences);
  const firstSteps = (rows: number[][]) => rows.map((ids) => ids.slice(0, 8));
  assert.notDeepEqual(firstSteps(sampled), firstSteps(r.expected.generate.greedy.sequences), 'sampling at temperature 1.5 leaves the greedy path');
  const bad = capture();
  assert.equal(await runTranslate({ ...args, greedy: true }, bad.streams), EXIT.usage);
  assert.match(bad.err(), /--greedy cannot be combined/);
});

test('translate flags are checked: --num-beams must be a positive integer, --model is required', async () => {
  const parse = async (argv: string[]) => {
    const command = translateCommand()
      .exitOverride()
      .configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
    await command.parseAsync(argv, { from: 'user' });
  };
  await assert.rejects(
    () => parse(['--model', 'x', '--num-beams', '0', 'hello']),
    (e: unknown) => e instanceof CommanderError && /--num-beams must be a positive integer/.test(e.message),
  );
  await assert.rejects(
    () => parse(['hello']),
    (e: unknown) => e instanceof CommanderError && /--model/.test(e.message),
  );
});
