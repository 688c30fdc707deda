import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { openSafetensorsBytes, readSafetensors } from '../../src/io/safetensors.js';
import { matmul } from '../../src/ops/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { BertTraceable } from '../../src/trace/adapters/bert.js';
import { VanillaTraceable } from '../../src/trace/adapters/vanilla.js';
import { directLogitAttribution, logitLens, rowAt, softmaxRow } from '../../src/trace/lens.js';
import { ablateHead, patchActivation, runWithCache, runWithHooks } from '../../src/trace/run.js';
import { compareTensors } from '../../src/verify/index.js';
import { HF_TINY } from '../helpers/shared.js';
import { ToyPreNorm } from './toy.js';

type Ids = number[][];

async function fixture(family: string): Promise<{ inputs: Record<string, Ids>; expected: Map<string, Tensor> }> {
  const dir = join(HF_TINY, family);
  const inputs = JSON.parse(await nodeFileSystem.readText(join(dir, 'inputs.json'))) as Record<string, Ids>;
  return { inputs, expected: await readSafetensors(nodeFileSystem, join(dir, 'expected.safetensors')) };
}

function maxDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  const x = a.f32();
  const y = b.f32();
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

test('vanilla: the cached residual streams are the layer outputs PyTorch recorded', async () => {
  const model = await VanillaTraceable.load(nodeFileSystem, join(HF_TINY, 'vanilla'));
  const { inputs, expected } = await fixture('vanilla');
  const run = { inputIds: inputs.src_ids, attentionMask: inputs.src_attention_mask, decoderInputIds: inputs.tgt_ids };
  const { output, cache } = runWithCache(model, run, { names: '**resid_post' });
  assert.ok(cache.names().every((n) => n.endsWith('resid_post')));
  const source = { axis: 1, mask: inputs.src_attention_mask };
  for (let i = 0; i < 2; i++) {
    const enc = compareTensors(`encoder.${i}`, cache.get(`encoder.blocks.${i}.resid_post`), expected.get(`encoder.layer_outputs.${i}`) as Tensor, source);
    assert.ok(enc.pass, JSON.stringify(enc));
    const dec = compareTensors(`decoder.${i}`, cache.get(`decoder.blocks.${i}.resid_post`), expected.get(`decoder.layer_outputs.${i}`) as Tensor);
    assert.ok(dec.pass, JSON.stringify(dec));
  }
  assert.ok(compareTensors('logits', output, expected.get('logits') as Tensor).pass);
  const stacked = cache.stack('decoder.blocks.*.resid_post');
  assert.deepEqual(stacked.shape, [2, 2, 7, 32]);
  assert.equal(maxDiff(stacked.at(1), cache.get('decoder.blocks.1.resid_post')), 0);
});

test('bert: attention patterns captured by hooks equal Hugging Face output_attentions', async () => {
  const model = await BertTraceable.load(nodeFileSystem, join(HF_TINY, 'bert'));
  const { inputs, expected } = await fixture('bert');
  const run = { inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, tokenTypeIds: inputs.token_type_ids };
  const { cache } = runWithCache(model, run, { names: 'blocks.*.attn.pattern' });
  assert.deepEqual(cache.names(), ['blocks.0.attn.pattern', 'blocks.1.attn.pattern']);
  for (let i = 0; i < 2; i++) {
    const c = compareTensors(`attentions.${i}`, cache.get(`blocks.${i}.attn.pattern`), expected.get(`attentions.${i}`) as Tensor, { axis: 2, mask: inputs.attention_mask });
    assert.ok(c.pass && c.compared > 0, JSON.stringify(c));
  }
});

test('patching a layer\'s resid_post from run A into run B makes B\'s later activations equal A\'s', async () => {
  const model = await BertTraceable.load(nodeFileSystem, join(HF_TINY, 'bert'));
  const a = { inputIds: [[2, 10, 11, 12, 4, 13, 3]] };
  const b = { inputIds: [[2, 20, 21, 22, 23, 24, 3]] };
  const runA = runWithCache(model, a);
  const runB = runWithCache(model, b);
  assert.ok(maxDiff(runA.output, runB.output) > 1e-2, 'the two runs must differ to begin with');
  const patched = runWithCache(model, b, { hooks: [patchActivation('blocks.0.resid_post', runA.cache)] });
  for (const name of ['blocks.1.attn.pattern', 'blocks.1.mlp.out', 'blocks.1.resid_post']) {
    assert.equal(maxDiff(patched.cache.get(name), runA.cache.get(name)), 0, name);
  }
  assert.equal(maxDiff(patched.output, runA.output), 0);
  // Upstream of the patch, B is still B.
  assert.equal(maxDiff(patched.cache.get('blocks.0.attn.pattern'), runB.cache.get('blocks.0.attn.pattern')), 0);

  // Patching one position takes that position from A and keeps the rest of B.
  const one = runWithCache(model, b, { hooks: [patchActivation('blocks.0.resid_post', runA.cache, [3])], names: ['blocks.0.resid_post', 'blocks.1.resid_post'] });
  const got = one.cache.get('blocks.0.resid_post');
  assert.deepEqual([...rowAt(got, 0, 3)], [...rowAt(runA.cache.get('blocks.0.resid_post'), 0, 3)]);
  assert.deepEqual([...rowAt(got, 0, 2)], [...rowAt(runB.cache.get('blocks.0.resid_post'), 0, 2)]);
  // Attention mixes positions: every position of layer 1 now differs from B.
  for (let t = 0; t < 7; t++) {
    const d = Math.max(...rowAt(one.cache.get('blocks.1.resid_post'), 0, t).map((v, j) => Math.abs(v - rowAt(runB.cache.get('blocks.1.resid_post'), 0, t)[j])));
    assert.ok(d > 1e-6, `position ${t} of layer 1 is unchanged`);
  }
});

test('ablating a head removes exactly its term W_O,h · z_h from the attention output', async () => {
  const model = await VanillaTraceable.load(nodeFileSystem, join(HF_TINY, 'vanilla'));
  const run = { inputIds: [[5, 6, 7, 8, 2]], decoderInputIds: [[1, 9, 10, 11]] };
  const names = ['decoder.blocks.1.attn.z', 'decoder.blocks.1.attn.out', 'logits'];
  const base = runWithCache(model, run, { names });
  const ablated = runWithCache(model, run, { names, hooks: [ablateHead(1, 2, { prefix: 'decoder.' })] });
  const z = base.cache.get('decoder.blocks.1.attn.z'); // [1, 4, 4, 8]
  const zAblated = ablated.cache.get('decoder.blocks.1.attn.z');
  assert.equal(zAblated.slice(1, 2, 3).f32().every((v) => v === 0), true);
  assert.equal(maxDiff(zAblated.slice(1, 0, 2), z.slice(1, 0, 2)), 0);
  // Head 2's contribution: z_h [1, 4, 8] times the out_proj columns of that head, [32, 8]ᵀ.
  const wO = model.model.decoderLayers[1].selfAttention.o.weight.slice(1, 16, 24);
  const term = matmul(z.slice(1, 2, 3).reshape([1, 4, 8]), wO, { transposeB: true });
  const expected = Tensor.f32(base.cache.get('decoder.blocks.1.attn.out').f32().map((v, i) => v - term.f32()[i]), [1, 4, 32]);
  assert.ok(maxDiff(ablated.cache.get('decoder.blocks.1.attn.out'), expected) < 1e-5);
  assert.ok(maxDiff(ablated.output, base.output) > 1e-3);
  assert.throws(() => runWithHooks(model, run, [ablateHead(1, 4, { prefix: 'decoder.' })]), /head 4 is out of range/);
});

test('the logit lens\'s last layer is the model\'s own prediction', async () => {
  for (const model of [await VanillaTraceable.load(nodeFileSystem, join(HF_TINY, 'vanilla')), await BertTraceable.load(nodeFileSystem, join(HF_TINY, 'bert'))]) {
    const run = { inputIds: [[2, 5, 6, 4, 7, 3]], decoderInputIds: [[1, 9, 10]] };
    const { output, cache } = runWithCache(model, run);
    const lens = logitLens(model, cache, { k: 3 });
    const stack = model.description.stacks.find((s) => s.prefix === model.description.lensStack);
    assert.equal(lens.layers.length, (stack?.layers ?? 0) + 1);
    const last = lens.layers[lens.layers.length - 1];
    last.positions.forEach((top, t) => {
      const logits = rowAt(output, 0, t);
      const probs = softmaxRow(logits);
      const argmax = logits.indexOf(Math.max(...logits));
      assert.equal(top[0].id, argmax);
      assert.ok(Math.abs(top[0].prob - probs[argmax]) < 1e-6);
      assert.ok(top[0].prob >= top[1].prob && top[1].prob >= top[2].prob);
    });
    // Earlier layers predict something else somewhere (the lens is not the output copied).
    assert.ok(lens.layers[0].positions.some((top, t) => top[0].id !== last.positions[t][0].id || Math.abs(top[0].prob - last.positions[t][0].prob) > 1e-3));
  }
});

test('direct logit attribution adds up to the logit in a pre-norm model', () => {
  const model = new ToyPreNorm();
  const run = { inputIds: [[3, 1, 4, 1, 5, 9]] };
  const { output, cache } = runWithCache(model, run);
  for (const [position, token] of [[5, 2], [2, 17]]) {
    const a = directLogitAttribution(model, cache, { position, token });
    assert.equal(a.exact, true);
    assert.equal(a.components.length, 1 + 2 * 2);
    assert.ok(Math.abs(a.logit - rowAt(output, 0, position)[token]) < 1e-5);
    assert.ok(Math.abs(a.sum - a.logit) < 1e-4, `sum ${a.sum} vs logit ${a.logit}`);
    assert.ok(a.components.every((c) => Math.abs(c.value) > 0));
  }
});

test('direct logit attribution in a post-norm model is flagged as not adding up, and BERT\'s MLM head is refused', async () => {
  const vanilla = await VanillaTraceable.load(nodeFileSystem, join(HF_TINY, 'vanilla'));
  const run = { inputIds: [[5, 6, 7, 2]], decoderInputIds: [[1, 9, 10]] };
  const { output, cache } = runWithCache(vanilla, run);
  const a = directLogitAttribution(vanilla, cache, { position: 2, token: 40 });
  assert.equal(a.exact, false);
  assert.match(a.note, /post-norm/);
  assert.deepEqual(a.components.map((c) => c.label), ['embeddings', 'L0 attn', 'L0 cross-attn', 'L0 mlp', 'L1 attn', 'L1 cross-attn', 'L1 mlp']);
  assert.ok(Math.abs(a.logit - rowAt(output, 0, 2)[40]) < 1e-5);
  const bert = await BertTraceable.load(nodeFileSystem, join(HF_TINY, 'bert'));
  assert.throws(() => directLogitAttribution(bert, { inputIds: [[2, 5, 3]] }, { position: 1, token: 7 }), /linear after the final norm/);
});

test('the activation cache round-trips through safetensors and names what it lacks', async () => {
  const model = new ToyPreNorm();
  const { cache } = runWithCache(model, { inputIds: [[1, 2, 3]] }, { names: /attn\.pattern$|^tokens$/ });
  const file = await openSafetensorsBytes(cache.toSafetensors({ model: 'toy' }));
  const back = await file.loadAll();
  assert.deepEqual([...back.keys()].sort(), cache.names().sort());
  assert.equal(maxDiff(back.get('blocks.1.attn.pattern') as Tensor, cache.get('blocks.1.attn.pattern')), 0);
  assert.deepEqual([...(back.get('tokens') as Tensor).data], [1, 2, 3]);
  assert.throws(() => cache.get('blocks.1.attn.patern'), /closest recorded names: blocks\.1\.attn\.pattern/);
  assert.throws(() => cache.stack('blocks.*.mlp.out'), /no recorded name matches/);
});
