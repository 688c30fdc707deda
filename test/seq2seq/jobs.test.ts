import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, UnsupportedError } from '../../src/errors.js';
import { generate } from '../../src/generation/generate.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { summarize } from '../../src/tasks/summarize.js';
import { generateText, loadEncoderDecoder, loadSeq2Seq, padRight, translate, translationSetup } from '../../src/tasks/translate.js';
import { removeTinyFolders, textOf, tinyModelFolder, type SpecialIds } from './tiny-tokenizer.js';

after(removeTinyFolders);

const shared = process.env.GLASSFORMER_SHARED ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../..', '../shared');
const fixtures = join(shared, 'fixtures', 'hf-tiny');

interface FixtureFiles {
  dir: string;
  config: Record<string, unknown>;
  inputs: { input_ids: number[][]; attention_mask: number[][] };
  expected: { generate: Record<string, { sequences: number[][] }> };
}

function fixture(name: string): FixtureFiles {
  const dir = join(fixtures, name);
  const read = (file: string) => JSON.parse(readFileSync(join(dir, file), 'utf8')) as unknown;
  return { dir, config: read('config.json') as FixtureFiles['config'], inputs: read('inputs.json') as FixtureFiles['inputs'], expected: read('expected.json') as FixtureFiles['expected'] };
}

/** The fixture's input rows as texts: the real tokens without the special ones the tokenizer adds back. */
function fixtureTexts(f: FixtureFiles, special: SpecialIds): string[] {
  return f.inputs.input_ids.map((row, r) => {
    const real = row.filter((_, i) => f.inputs.attention_mask[r][i] === 1);
    const body = real.slice(special.bos === undefined ? 0 : 1, -1);
    return textOf(body);
  });
}

const T5: SpecialIds = { pad: 0, eos: 1, unk: 2 };
const BART: SpecialIds = { bos: 0, pad: 1, eos: 2, unk: 3 };
const MARIAN: SpecialIds = { eos: 0, unk: 1, pad: 127 };
const withoutSpecial = (ids: number[], special: SpecialIds) => ids.filter((id) => !Object.values(special).includes(id));

test('summarize on the t5 fixture model: texts → the recorded Hugging Face greedy and beam ids, and their text', async () => {
  const f = fixture('t5');
  const pipeline = await loadSeq2Seq(nodeFileSystem, tinyModelFolder(f.dir, T5, f.config));
  const texts = fixtureTexts(f, T5);
  // The text path rebuilds exactly the fixture's right-padded batch.
  const rows = texts.map((t) => pipeline.tokenizer.encode(t, { addSpecialTokens: true }).ids);
  assert.deepEqual(padRight(rows, 0), { inputIds: f.inputs.input_ids, attentionMask: f.inputs.attention_mask });

  const greedy = await generateText(pipeline, texts, { prefix: '', defaults: {} }, { maxNewTokens: 16 });
  assert.deepEqual(
    greedy.map((o) => o.ids),
    f.expected.generate.greedy.sequences,
  );
  assert.deepEqual(
    greedy.map((o) => o.text),
    f.expected.generate.greedy.sequences.map((ids) => textOf(withoutSpecial(ids, T5))),
  );
  const beam = await summarize(pipeline, texts, { prefix: '', maxNewTokens: 16, numBeams: 4, earlyStopping: true });
  assert.deepEqual(
    beam,
    f.expected.generate.beam.sequences.map((ids) => textOf(withoutSpecial(ids, T5))),
  );
});

test('batching does not change the answer: one input at a time gives the same texts as the padded batch', async () => {
  const f = fixture('t5/gated-gelu');
  const pipeline = await loadSeq2Seq(nodeFileSystem, tinyModelFolder(f.dir, T5, f.config));
  const texts = fixtureTexts(f, T5);
  const together = await summarize(pipeline, texts, { prefix: '', maxNewTokens: 16 });
  const alone = await summarize(pipeline, texts, { prefix: '', maxNewTokens: 16, batchSize: 1 });
  assert.deepEqual(alone, together);
  assert.deepEqual(
    together,
    f.expected.generate.greedy.sequences.map((ids) => textOf(withoutSpecial(ids, T5))),
  );
});

test('T5 task prefixes: "summarize: " and "translate English to German: " by default, task_specific_params when present', async () => {
  const f = fixture('t5');
  const plain = await loadSeq2Seq(nodeFileSystem, tinyModelFolder(f.dir, T5, f.config));
  assert.equal(translationSetup(plain, 'en', 'de').prefix, 'translate English to German: ');
  assert.equal(translationSetup(plain, 'English', 'French').prefix, 'translate English to French: ');
  await assert.rejects(() => translate(plain, 'w5', { src: 'en' }), ConfigError);
  await assert.rejects(() => translate(plain, 'w5'), ConfigError);

  const params = { translation_en_to_de: { prefix: 'w5 w6 ', num_beams: 4, early_stopping: true, max_length: 12 }, summarization: { prefix: 'w7 ', max_length: 9 } };
  const pipeline = await loadSeq2Seq(nodeFileSystem, tinyModelFolder(f.dir, T5, { ...f.config, task_specific_params: params }));
  const source = [42, 112, 71];
  // What the job must amount to: the prefix's ids before the text, the task's settings as defaults.
  const direct = (ids: number[], options: object) => generate(pipeline.model, { inputIds: [[...ids, 1]] }, options, pipeline.generationDefaults).sequences[0];
  const expectedTranslation = direct([5, 6, ...source], { numBeams: 4, earlyStopping: true, maxLength: 12 });
  assert.equal(expectedTranslation.length <= 12, true);
  assert.equal(await translate(pipeline, textOf(source), { src: 'en', tgt: 'de' }), textOf(withoutSpecial(expectedTranslation, T5)));
  assert.equal(await translate(pipeline, textOf(source)), textOf(withoutSpecial(expectedTranslation, T5)), 'no languages: the first translation task');
  const expectedSummary = direct([7, ...source], { maxLength: 9 });
  assert.equal(await summarize(pipeline, textOf(source)), textOf(withoutSpecial(expectedSummary, T5)));
  // The caller's options win over the task's.
  const greedy = direct([5, 6, ...source], { maxLength: 12, numBeams: 1 });
  assert.equal(await translate(pipeline, textOf(source), { src: 'en', tgt: 'de', numBeams: 1 }), textOf(withoutSpecial(greedy, T5)));
});

test('translate on the marian fixture model reproduces the recorded ids (bad words, forced EOS from generation_config.json)', async () => {
  const f = fixture('marian');
  const pipeline = await loadSeq2Seq(nodeFileSystem, tinyModelFolder(f.dir, MARIAN, f.config));
  const texts = fixtureTexts(f, MARIAN);
  for (const run of ['greedy', 'beam'] as const) {
    const options = run === 'beam' ? { maxNewTokens: 16, numBeams: 4, earlyStopping: true } : { maxNewTokens: 16 };
    const out = await translate(pipeline, texts, options);
    assert.deepEqual(
      out,
      f.expected.generate[run].sequences.map((ids) => textOf(withoutSpecial(ids, MARIAN))),
    );
  }
  await assert.rejects(() => translate(pipeline, texts[0], { src: 'en', tgt: 'de' }), UnsupportedError);
});

test('summarize on the bart fixture model reproduces the recorded ids; BART is refused for translation', async () => {
  const f = fixture('bart');
  const pipeline = await loadSeq2Seq(nodeFileSystem, tinyModelFolder(f.dir, BART, f.config));
  const texts = fixtureTexts(f, BART);
  const rows = texts.map((t) => pipeline.tokenizer.encode(t, { addSpecialTokens: true }).ids);
  assert.deepEqual(padRight(rows, 1).inputIds, f.inputs.input_ids);
  const out = await summarize(pipeline, texts, { maxNewTokens: 16, numBeams: 4, earlyStopping: true });
  assert.deepEqual(
    out,
    f.expected.generate.beam.sequences.map((ids) => textOf(withoutSpecial(ids, BART))),
  );
  await assert.rejects(() => translate(pipeline, texts[0]), UnsupportedError);
  await assert.rejects(() => summarize(pipeline, texts, { numReturnSequences: 2, numBeams: 2 }), ConfigError);
});

test('loadSeq2Seq names what is wrong with a folder', async () => {
  await assert.rejects(() => loadSeq2Seq(nodeFileSystem, join(fixtures, 'no-such-model')), /no config\.json/);
  const f = fixture('t5');
  const dir = tinyModelFolder(f.dir, T5, { ...f.config, model_type: 'gpt2' });
  await assert.rejects(() => loadSeq2Seq(nodeFileSystem, dir), /not an encoder-decoder/);
  const m = fixture('marian');
  const spm = tinyModelFolder(m.dir, MARIAN, m.config);
  rmSync(join(spm, 'tokenizer.json'));
  writeFileSync(join(spm, 'source.spm'), '');
  await assert.rejects(() => loadSeq2Seq(nodeFileSystem, spm), /needs a tokenizer\.json/);
});

test('loadEncoderDecoder: ids in, ids out from a folder without a tokenizer; without generation_config.json the config.json tokens apply', async () => {
  const f = fixture('bart');
  const folder = await loadEncoderDecoder(nodeFileSystem, f.dir);
  const run = (defaults: object) => generate(folder.model, { inputIds: f.inputs.input_ids, attentionMask: f.inputs.attention_mask }, { maxNewTokens: 16 }, defaults).sequences;
  assert.deepEqual(run(folder.generationDefaults), f.expected.generate.greedy.sequences);
  // The same folder without generation_config.json: decoder start, EOS and forced EOS come from config.json.
  const bare = mkdtempSync(join(tmpdir(), 'glassformer-seq2seq-'));
  after(() => rmSync(bare, { recursive: true, force: true }));
  for (const name of ['config.json', 'model.safetensors']) symlinkSync(join(f.dir, name), join(bare, name));
  const fromConfig = await loadEncoderDecoder(nodeFileSystem, bare);
  assert.equal(fromConfig.generationDefaults.forcedEosTokenId, 2);
  assert.deepEqual(run(fromConfig.generationDefaults), f.expected.generate.greedy.sequences);
});
