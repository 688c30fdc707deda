import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import type { LlamaModel } from '../../src/models/llama.js';
import { loadLlama2cGenerator } from '../../src/tasks/generate.js';
import { LlamaTraceable } from '../../src/trace/adapters/decoder.js';
import { loadTraceable } from '../../src/trace/adapters/index.js';
import { renderHtml } from '../../src/trace/html.js';
import { buildTrace, type BeamStepRecord, type BeamTrace } from '../../src/trace/report.js';
import { HF_TINY } from '../helpers/shared.js';

const CHROMIUM = '/usr/bin/chromium';

/** Headless Chromium from the system package; never a downloaded browser. */
async function launch(profile: string) {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium); the HTML report test needs it`);
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1400, height: 1000 },
  });
}

/** The report page opened from disk and rendered, with no script error and no request beyond the file itself. */
async function openOffline(context: Awaited<ReturnType<typeof launch>>, page: string) {
  const tab = await context.newPage();
  const requests: string[] = [];
  tab.on('request', (r) => void (r.url().startsWith('file:') || requests.push(r.url())));
  const errors: string[] = [];
  tab.on('pageerror', (e) => void errors.push(e.message));
  await tab.goto(pathToFileURL(page).href);
  await tab.waitForSelector('body[data-rendered="true"]', { timeout: 10000 });
  assert.deepEqual(errors, []);
  assert.deepEqual(requests, [], 'the report must not touch the network');
  return tab;
}

test('the HTML report renders every heatmap with token labels, the logit lens and the generation bars, offline', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-trace-html-'));
  const model = await loadTraceable(nodeFileSystem, join(HF_TINY, 't5'));
  const words = ['the', 'cat', 'sat', 'on', 'mat', '</s>'];
  const input = [42, 112, 71, 108, 90, 1];
  const { file } = await buildTrace(model, { inputIds: input, source: 'hf-tiny/t5' }, {
    maxNewTokens: 3,
    tokenText: (id, side) => (side === 'input' && input.includes(id) ? words[input.indexOf(id)] : `t${id}`),
  });
  const page = join(dir, 'report.html');
  await writeFile(page, renderHtml(file));

  const context = await launch(join(dir, 'profile'));
  try {
    const tab = await openOffline(context, page);

    // Encoder self-attention, decoder self-attention and cross-attention: 3 kinds × 2 layers × 4 heads.
    assert.equal(await tab.locator('svg.heatmap').count(), 24);
    assert.equal(await tab.locator('svg.thumb').count(), 24);
    const first = tab.locator('svg.heatmap[data-name="encoder.blocks.0.attn.pattern head 0"]');
    assert.equal(await first.locator('rect.cell').count(), 36);
    assert.deepEqual(await first.locator('text.ylabel').allTextContents(), words);
    assert.deepEqual(await first.locator('text.xlabel').allTextContents(), words);
    // Cross-attention maps put the output tokens on the rows and the input words on the columns.
    const cross = tab.locator('svg.heatmap[data-name="decoder.blocks.1.cross_attn.pattern head 3"]');
    assert.deepEqual(await cross.locator('text.xlabel').allTextContents(), words);
    assert.deepEqual(await cross.locator('text.ylabel').allTextContents(), (file.tokens.decoder ?? []).map((t) => t.text));
    // A cell's colour follows its weight: the darkest cell of a row is its largest weight.
    const fills = await first.locator('rect.cell').evaluateAll((rects) => rects.slice(0, 6).map((r) => r.getAttribute('fill')));
    assert.equal(new Set(fills).size > 1, true);

    assert.equal(await tab.locator('table.lens tr.lens-row').count(), 3);
    // Residual norms: for each of the two stacks, the embeddings and two layers.
    assert.equal(await tab.locator('table.norms tr.norm-row').count(), 6);
    const firstNorm = Number(await tab.locator('table.norms tr.norm-row td').first().textContent());
    assert.ok(Math.abs(firstNorm - file.stacks[0].inputNorm[0]) < 0.01);
    // Attribution bars: embeddings, then attention, cross-attention and MLP of each decoder layer.
    assert.deepEqual(await tab.locator('.barrow.attribution .name').allTextContents(), ['embeddings', 'L0 attn', 'L0 cross-attn', 'L0 mlp', 'L1 attn', 'L1 cross-attn', 'L1 mlp']);
    assert.equal(await tab.locator('.step').count(), 3);
    assert.equal(await tab.locator('.bar.chosen').count(), 3);
    const shot = join(dir, 'report.png');
    await tab.screenshot({ path: shot, fullPage: true });
    console.log(`screenshot: ${shot}`);
  } finally {
    await context.close();
  }
});

test('long sequences are drawn as one bitmap per head with every other token labelled', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-trace-long-'));
  const stories = join(HF_TINY, '..', '..', 'models', 'stories260K');
  const g = await loadLlama2cGenerator(nodeFileSystem, join(stories, 'stories260K.bin'), join(stories, 'tok512.bin'));
  const model = new LlamaTraceable(g.model as LlamaModel);
  const ids = g.tokenizer.encode('Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her big red ball and her dog. One day, she saw a bird in a tree and wanted to help it.');
  assert.ok(ids.length > 48, `${ids.length} tokens`);
  const { file } = await buildTrace(model, { inputIds: ids, source: 'stories260K' }, { tokenText: (id) => g.tokenizer.decode([id], { skipSpecialTokens: false }) });
  const page = join(dir, 'long.html');
  await writeFile(page, renderHtml(file));
  const context = await launch(join(dir, 'profile'));
  try {
    const tab = await context.newPage();
    await tab.goto(pathToFileURL(page).href);
    await tab.waitForSelector('body[data-rendered="true"]', { timeout: 20000 });
    assert.equal(await tab.locator('svg.heatmap').count(), 5 * 8);
    assert.equal(await tab.locator('svg.heatmap image.cells').count(), 5 * 8);
    assert.equal(await tab.locator('rect.cell').count(), 0);
    const map = tab.locator('svg.heatmap[data-name="blocks.4.attn.pattern head 7"]');
    const cell = Math.max(3, Math.min(26, 360 / ids.length));
    const every = Math.ceil(10 / cell);
    const labels = await map.locator('text.ylabel').allTextContents();
    assert.equal(labels.length, Math.ceil(ids.length / every));
    const second = file.tokens.input[every].text;
    assert.equal(labels[1], second.length > 10 ? `${second.slice(0, 9)}…` : second);
    // The bitmap is a real image of the pattern: as wide as the sequence.
    const size = await map.locator('image.cells').evaluate((el) => new Promise<number[]>((resolve) => {
      const img = new Image();
      img.onload = () => resolve([img.naturalWidth, img.naturalHeight]);
      img.src = el.getAttribute('href') ?? '';
    }));
    assert.deepEqual(size, [ids.length, ids.length]);
    await tab.screenshot({ path: join(dir, 'long.png') });
    console.log(`screenshot: ${join(dir, 'long.png')}`);
  } finally {
    await context.close();
  }
});

test('a beam-search report draws the tree of beams, the best path, each step\'s ranked candidates and the hypotheses, offline', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-trace-beam-'));
  const model = await loadTraceable(nodeFileSystem, join(HF_TINY, 't5'));
  const { file } = await buildTrace(model, { inputIds: [42, 112, 71, 108, 90, 1], source: 'hf-tiny/t5' }, {
    maxNewTokens: 8,
    generateOptions: { numBeams: 3, earlyStopping: true, eosTokenId: 95 },
  });
  const traced = file.generation?.beam;
  assert.ok(traced);
  const beam: BeamTrace = traced;
  const page = join(dir, 'beam.html');
  await writeFile(page, renderHtml(file));
  const context = await launch(join(dir, 'profile'));
  try {
    const tab = await openOffline(context, page);
    const sum = (f: (s: BeamStepRecord) => number) => beam.steps.reduce((a, s) => a + f(s), 0);
    // One node per beam per step (the step-0 copies left out) and the final beams; one edge per next beam and per finished hypothesis.
    assert.equal(await tab.locator('svg.beam-tree circle.beam-node').count(), sum((s) => s.beams.length) + beam.numBeams);
    assert.equal(await tab.locator('svg.beam-tree line.beam-edge').count(), sum((s) => s.next.length + s.finished.length));
    assert.equal(await tab.locator('svg.beam-tree circle.finished').count(), sum((s) => s.finished.length));
    assert.deepEqual(await tab.locator('svg.beam-tree text.step-label').allTextContents(), beam.steps.map((s) => `step ${s.step + 1}`));
    // The returned hypothesis is drawn as one highlighted path: one edge per generated token.
    const best = beam.hypotheses[0];
    assert.equal(await tab.locator('svg.beam-tree line.best').count(), best.generated.length);
    assert.equal(await tab.locator('.beam-step').count(), beam.steps.length);
    assert.equal(await tab.locator('table.beam-candidates tr.candidate').count(), sum((s) => s.candidates.length));
    assert.equal(await tab.locator('table.beam-candidates tr.fate-continues').count(), sum((s) => s.next.length));
    const returned = tab.locator('table.beam-hypotheses tr.returned');
    assert.equal(await returned.count(), 1);
    assert.match((await returned.textContent()) ?? '', new RegExp(best.score.toFixed(4)));
    assert.equal(await tab.locator('table.beam-hypotheses tr.hypothesis').count(), beam.hypotheses.length);
    assert.match((await tab.locator('.beam-stop').textContent()) ?? '', new RegExp(`sequence score ${beam.sequencesScores[0].toFixed(4)}`));
    // The single-sequence probability bars are not drawn for a beam search.
    assert.equal(await tab.locator('.bar.chosen').count(), 0);
    const shot = join(dir, 'beam.png');
    await tab.screenshot({ path: shot, fullPage: true });
    console.log(`screenshot: ${shot}`);
  } finally {
    await context.close();
  }
});
