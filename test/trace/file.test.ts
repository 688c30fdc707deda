import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runTrace, traceCommand } from '../../src/cli/commands/trace.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { loadTraceable } from '../../src/trace/adapters/index.js';
import { decodeTensor, encodeDense, encodeTopK } from '../../src/trace/encoding.js';
import { buildTrace, type TraceFile } from '../../src/trace/report.js';
import { runWithCache } from '../../src/trace/run.js';
import { HF_TINY } from '../helpers/shared.js';
import { sink } from '../helpers/streams.js';


test('tensors survive the trace encodings: f32 exactly, f16 to half precision, top-k as the largest entries', () => {
  const t = Tensor.f32([0.1, -2.5, 3.25, 1e-3, 0.7, 0.2], [2, 3]);
  assert.deepEqual([...decodeTensor(encodeDense(t, 'f32')).f32()], [...t.f32()]);
  const half = decodeTensor(encodeDense(t, 'f16')).f32();
  t.f32().forEach((v, i) => assert.ok(Math.abs(half[i] - v) <= Math.abs(v) * 1e-3 + 1e-7, `${half[i]} vs ${v}`));
  const top = encodeTopK(t, 1);
  assert.ok(top.encoding === 'topk');
  assert.deepEqual(top.indices, [[2], [1]]);
  assert.deepEqual([...decodeTensor(top).f32()], [-Infinity, -Infinity, 3.25, -Infinity, Math.fround(0.7), -Infinity]);
  assert.throws(() => decodeTensor({ shape: [2], encoding: 'omitted' }, 'x'), /left out of the trace file/);
});

test('a trace file records the forward pass, the generation steps and its tensors, and respects the size cap', async () => {
  const model = await loadTraceable(nodeFileSystem, join(HF_TINY, 'gpt2'));
  const request = { inputIds: [118, 88, 88, 36, 74], source: 'gpt2' };
  const events: string[] = [];
  const { file, json } = await buildTrace(model, request, { maxNewTokens: 3, precision: 'f32', onEvent: (e) => void events.push(e.type) });
  assert.deepEqual(events, ['start', 'step', 'step', 'step', 'end']);
  const parsed = JSON.parse(json) as TraceFile;
  assert.equal(parsed.format, 'glassformer-trace');
  assert.equal(parsed.version, 1);
  assert.equal(parsed.tokens.input.length, 8);
  assert.equal(parsed.generation?.steps.length, 3);
  assert.deepEqual(parsed.budget.omitted, []);
  // The stored pattern is the one a cached run records.
  const { cache } = runWithCache(model, { inputIds: [parsed.tokens.input.map((t) => t.id)] }, { names: 'blocks.1.attn.pattern' });
  const stored = decodeTensor(parsed.tensors[parsed.stacks[0].blocks[1].patterns.self]);
  assert.deepEqual([...stored.f32()], [...cache.get('blocks.1.attn.pattern').at(0).f32()]);
  // Each step's attention rows are stored under the names the step lists.
  const step = parsed.generation?.steps[2];
  assert.deepEqual(decodeTensor(parsed.tensors[step?.attention['blocks.0.attn.pattern'] ?? '']).shape, [4, 7]); // the third new token sees 5 + 2 keys
  assert.equal(file.predictions?.length, 8);
  // The top prediction at the last position, taken apart by component: GPT-2 is pre-norm, so it adds up.
  const a = parsed.attribution;
  assert.ok(a && a.exact && a.position === 7 && a.token.id === parsed.predictions?.[7][0].id);
  assert.equal(a.components.length, 5);
  assert.ok(Math.abs(a.sum - a.logit) < 1e-4 && Math.abs(a.logit - (parsed.predictions?.[7][0].logit ?? 0)) < 1e-4);

  // Under a tight cap, tensors become summaries or are left out, and the file stays under it.
  const bytes = (v: unknown) => new TextEncoder().encode(JSON.stringify(v)).length;
  const keys = Object.keys(parsed.tensors);
  const skeleton = bytes({ ...parsed, tensors: Object.fromEntries(keys.map((k) => [k, { shape: parsed.tensors[k].shape, encoding: 'omitted' }])), budget: { ...parsed.budget, omitted: keys } });
  const cap = skeleton + Math.floor((bytes(parsed) - skeleton) / 3);
  const small = await buildTrace(model, request, { maxNewTokens: 3, precision: 'f32', maxBytes: cap });
  const size = new TextEncoder().encode(small.json).length;
  assert.ok(size <= cap, `${size} > ${cap}`);
  const kept = JSON.parse(small.json) as TraceFile;
  assert.ok(kept.budget.omitted.length + kept.budget.summarised.length > 0);
  for (const key of kept.budget.summarised) assert.equal(kept.tensors[key].encoding, 'topk');
  for (const key of kept.budget.omitted) assert.equal(kept.tensors[key].encoding, 'omitted');
  await assert.rejects(buildTrace(model, request, { maxNewTokens: 3, maxBytes: 1000 }), /more than the cap of 1000/);
});

test('glassformer trace tells a decoder\'s run step by step and writes the trace file and the HTML report', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-trace-cli-'));
  const out = sink();
  const code = await runTrace({ model: join(HF_TINY, 'gpt2'), ids: [118, 88, 88, 36], maxNewTokens: 2, out: join(dir, 't.json'), html: join(dir, 't.html') }, out.stream);
  assert.equal(code, 0);
  const text = out.text();
  for (const heading of ['## Tokenize', '## Inside the model (2 layers)', 'Embed:', 'Position: a learned vector', '### Layer 1', 'self-attention', 'residual stream norms', '## Project and softmax', '## Logit lens', '## Generate (greedy)', 'step 2: chose']) {
    assert.ok(text.includes(heading), `missing "${heading}"`);
  }
  assert.match(text, /head 3: "#118"→"#118" 1\.00/);
  const file = JSON.parse(await readFile(join(dir, 't.json'), 'utf8')) as TraceFile;
  assert.equal(file.generation?.generated.length, 2);
  // The chosen tokens are those the text names.
  for (const g of file.generation?.generated ?? []) assert.ok(text.includes(`(id ${g.id})`));
  const html = await readFile(join(dir, 't.html'), 'utf8');
  assert.ok(html.startsWith('<!doctype html>') && !/<script[^>]+src=|<link[^>]+href=/.test(html));
});

test('glassformer trace on an encoder-decoder shows cross-attention, and on an encoder no generation', async () => {
  const seq2seq = sink();
  await runTrace({ model: join(HF_TINY, 'bart'), ids: [0, 29, 48, 93, 2], decoderIds: [2, 0, 40] }, seq2seq.stream);
  assert.match(seq2seq.text(), /cross-attention \(each output token → the input token it attends to most\)/);
  assert.ok(!seq2seq.text().includes('## Generate'));
  const encoder = sink();
  await runTrace({ model: join(HF_TINY, 'bert'), ids: [2, 10, 4, 11, 3] }, encoder.stream);
  assert.match(encoder.text(), /Position: a learned vector per position/);
  assert.ok(!encoder.text().includes('## Generate'));
  await assert.rejects(runTrace({ model: join(HF_TINY, 'bert'), text: 'hello' }, sink().stream), /has no tokenizer\.json/);
  await assert.rejects(runTrace({ model: join(HF_TINY, 'gpt2'), ids: [1], decoderIds: [2] }, sink().stream), /--decoder-ids applies to encoder-decoder/);
});

test('glassformer trace loads a real pretrained model (stories260K, llama2.c) and text, and agrees with run.c', async () => {
  const models = join(HF_TINY, '..', '..', 'models', 'stories260K');
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-trace-stories-'));
  const out = sink();
  const args = { model: join(models, 'stories260K.bin'), tokenizer: join(models, 'tok512.bin'), maxNewTokens: 4, out: join(dir, 't.json') };
  assert.equal(await runTrace({ ...args, text: '' }, out.stream), 0);
  const file = JSON.parse(await readFile(join(dir, 't.json'), 'utf8')) as TraceFile;
  // From BOS alone, run.c's greedy story begins " Once upon a time"; its top logit at position 0 is ' Once' at 17.0235.
  assert.deepEqual(file.generation?.generated.map((t) => t.id), [403, 407, 261, 378]);
  assert.deepEqual(file.generation?.generated.map((t) => t.text), [' Once', ' upon', ' a', ' time']);
  const first = file.predictions?.[0][0];
  assert.equal(first?.id, 403);
  assert.ok(Math.abs((first?.logit ?? 0) - 17.0235) < 1e-3);
  assert.equal(file.model.positions, 'rotary');
  // RoPE read back from the hooks: position p turns pair i by p · 10000^(−2i/8) (head width 8).
  const rotation = file.stacks[0].positional.rotation;
  assert.ok(rotation);
  rotation.angles.forEach((row, p) =>
    row.forEach((angle, i) => {
      const want = (p * 10000 ** (-(2 * rotation.pairs[i]) / 8)) % (2 * Math.PI);
      const diff = Math.abs(angle - want);
      assert.ok(Math.min(diff, 2 * Math.PI - diff) < 1e-3, `position ${p} pair ${i}: ${angle} vs ${want}`);
    }),
  );
  assert.match(out.text(), /id {4}403 {2}" Once" {2}\(generated\)/);

  const prompted = sink();
  await runTrace({ ...args, text: 'Once upon a time', out: undefined }, prompted.stream);
  assert.match(prompted.text(), /id {4}403 {2}" Once"\n/);
  assert.match(prompted.text(), /step 1: chose "," \(id 432\)/);
});

test('a T5 trace shows the relative position bias by distance, as Hugging Face computed it', async () => {
  const model = await loadTraceable(nodeFileSystem, join(HF_TINY, 't5'));
  const inputs = JSON.parse(await readFile(join(HF_TINY, 't5', 'inputs.json'), 'utf8')) as { input_ids: number[][] };
  const expected = (await readSafetensors(nodeFileSystem, join(HF_TINY, 't5', 'expected.safetensors'))).get('encoder.position_bias') as Tensor; // [1, 4, S, S]
  const { file } = await buildTrace(model, { inputIds: inputs.input_ids[0], decoderInputIds: [0], source: 't5' });
  const bias = file.stacks[0].positional.bias;
  assert.ok(bias);
  assert.deepEqual(bias.distances, [-4, -3, -2, -1, 0, 1, 2, 3, 4]);
  bias.distances.forEach((d, i) => {
    // Any pair at this distance will do: the bias depends on key − query only.
    const q = 8;
    for (let h = 0; h < 4; h++) assert.ok(Math.abs(bias.heads[h][i] - expected.get(0, h, q, q + d)) < 1e-3, `head ${h} distance ${d}`);
  });
  assert.equal(file.stacks[1].positional.bias?.distances.join(), '0', 'a one-token decoder sees only distance 0');
});

test('glassformer trace rejects malformed flags and inputs with messages that name them', async () => {
  const command = () => traceCommand().exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  await assert.rejects(command().parseAsync(['--model', 'x', '--ids', '1,x'], { from: 'user' }), /comma-separated token ids like 5,17,42, found "1,x"/);
  await assert.rejects(command().parseAsync(['--model', 'x', '--precision', 'f64', '--ids', '1'], { from: 'user' }), /expected f16 or f32, found "f64"/);
  await assert.rejects(command().parseAsync(['--ids', '1'], { from: 'user' }), /required option '--model <path>'/);
  await assert.rejects(command().parseAsync(['--model', 'x', '--ids', '1', '--early-stopping', 'soon'], { from: 'user' }), /expected true, false or never, found "soon"/);
  await assert.rejects(runTrace({ model: join(HF_TINY, 'gpt2'), ids: [5, 6], numBeams: 2, sample: true }, sink().stream), /beam sampling/);
  await assert.rejects(runTrace({ model: join(HF_TINY, 'gpt2') }, sink().stream), /exactly one of them/);
  await assert.rejects(runTrace({ model: join(HF_TINY, 'gpt2'), ids: [500] }, sink().stream), /500/);
});

test('a sequence classifier\'s trace gives each label\'s probability, from the logits Hugging Face recorded', async () => {
  const dir = join(HF_TINY, 'bert', 'classification');
  const model = await loadTraceable(nodeFileSystem, dir);
  const inputs = JSON.parse(await readFile(join(dir, 'inputs.json'), 'utf8')) as Record<string, number[][]>;
  const expected = (await readSafetensors(nodeFileSystem, join(dir, 'expected.safetensors'))).get('logits') as Tensor; // [2, 3]
  for (const row of [0, 1]) {
    // Right padding does not change real positions in BERT, so the unpadded row gives the same logits.
    const real = inputs.attention_mask[row].filter((m) => m === 1).length;
    const { file } = await buildTrace(model, { inputIds: inputs.input_ids[row].slice(0, real), tokenTypeIds: inputs.token_type_ids[row].slice(0, real), source: 'bert/classification' });
    assert.equal(file.predictions, null);
    const c = file.classification;
    assert.ok(c && c.length === 3);
    for (const entry of c) assert.ok(Math.abs(entry.logit - expected.get(row, entry.id)) < 1e-4, `row ${row} label ${entry.id}`);
    assert.ok(c[0].prob >= c[1].prob && c[1].prob >= c[2].prob);
    assert.ok(Math.abs(c.reduce((a, e) => a + e.prob, 0) - 1) < 1e-9);
    assert.equal(c[0].label, `LABEL_${c[0].id}`);
  }
});

test('glassformer trace --num-beams tells each beam-search step and returns HF\'s recorded beam sequence', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-trace-beam-cli-'));
  const expected = JSON.parse(await readFile(join(HF_TINY, 'gpt2', 'expected.json'), 'utf8')) as { generate: { beam: { sequences: number[][]; sequences_scores: number[] } } };
  const inputs = JSON.parse(await readFile(join(HF_TINY, 'gpt2', 'inputs.json'), 'utf8')) as { input_ids: number[][] };
  const out = sink();
  const args = { model: join(HF_TINY, 'gpt2'), ids: inputs.input_ids[0], maxNewTokens: 16, numBeams: 4, lengthPenalty: 1, earlyStopping: true as const, out: join(dir, 'beam.json') };
  assert.equal(await runTrace(args, out.stream), 0);
  const text = out.text();
  for (const line of ['## Generate (beam search: 4 beams, length penalty 1, early stopping true)', 'Beam search keeps the 4 most likely sequences', 'step 1: 1 beam (the other 3 start as copies', 'step 16: 4 beams', 'the best 8 candidates', 'Finished hypotheses, best first']) {
    assert.ok(text.includes(line), `missing "${line}"`);
  }
  const file = JSON.parse(await readFile(join(dir, 'beam.json'), 'utf8')) as TraceFile;
  const beam = file.generation?.beam;
  assert.ok(beam);
  assert.equal(beam.steps.length, 16);
  const want = expected.generate.beam;
  // The forward pass of the file is the returned sequence, which is HF's.
  assert.deepEqual(file.tokens.input.map((t) => t.id), want.sequences[0]);
  assert.ok(Math.abs(beam.sequencesScores[0] - want.sequences_scores[0]) < 1e-4);
  const returned = beam.hypotheses.filter((h) => h.returned);
  assert.equal(returned.length, 1);
  assert.deepEqual(returned[0].generated.map((t) => t.id), want.sequences[0].slice(inputs.input_ids[0].length));
  // The returned line names its score as sum / length and the beams it came through.
  const line = text.split('\n').find((l) => l.endsWith('← returned')) ?? '';
  assert.ok(line.includes(`score ${returned[0].score.toFixed(3)} = ${returned[0].sumLogprobs.toFixed(3)} / 16^1`), line);
  assert.ok(line.includes(`beams ${returned[0].beamIndices.join(' → ')}`), line);
  // Every step lists its 8 ranked candidates, and 4 of them continue.
  for (const s of beam.steps) {
    assert.equal(s.candidates.length, 8);
    assert.equal(s.candidates.filter((c) => c.fate === 'continues').length, 4);
  }
});
