import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { loadTraceable } from '../../src/trace/adapters/index.js';
import { directLogitAttribution, rowAt } from '../../src/trace/lens.js';
import { patchActivation, runWithCache } from '../../src/trace/run.js';
import type { TraceInputs } from '../../src/trace/types.js';
import { compareTensors, type ValidPositions } from '../../src/verify/index.js';
import { HF_TINY } from '../helpers/shared.js';

type Ids = number[][];

/** Hugging Face's name for a recorded attention → our hook name, and which query positions count. */
interface AttentionCheck {
  expected: string;
  hook: string;
  valid?: ValidPositions;
}

async function load(folder: string): Promise<{ inputs: Record<string, Ids>; expected: Map<string, Tensor> }> {
  const dir = join(HF_TINY, folder);
  const inputs = JSON.parse(await nodeFileSystem.readText(join(dir, 'inputs.json'))) as Record<string, Ids>;
  return { inputs, expected: await readSafetensors(nodeFileSystem, join(dir, 'expected.safetensors')) };
}

function traceInputs(inputs: Record<string, Ids>): TraceInputs {
  return { inputIds: inputs.input_ids, attentionMask: inputs.attention_mask, decoderInputIds: inputs.decoder_input_ids, tokenTypeIds: inputs.token_type_ids };
}

function attentionChecks(expected: Map<string, Tensor>, mask: Ids): AttentionCheck[] {
  const checks: AttentionCheck[] = [];
  const queries = { axis: 2, mask };
  for (const name of expected.keys()) {
    let m = /^attentions\.(\d+)$/.exec(name);
    if (m) checks.push({ expected: name, hook: `blocks.${m[1]}.attn.pattern`, valid: queries });
    m = /^encoder\.attentions\.(\d+)$/.exec(name);
    if (m) checks.push({ expected: name, hook: `encoder.blocks.${m[1]}.attn.pattern`, valid: queries });
    // Decoder positions are all real tokens.
    m = /^decoder\.attentions\.(\d+)$/.exec(name);
    if (m) checks.push({ expected: name, hook: `decoder.blocks.${m[1]}.attn.pattern` });
    m = /^decoder\.cross_attentions\.(\d+)$/.exec(name);
    if (m) checks.push({ expected: name, hook: `decoder.blocks.${m[1]}.cross_attn.pattern` });
  }
  return checks;
}

for (const folder of ['bert', 'gpt2', 'llama', 't5', 't5/gated-gelu', 'bart', 'marian']) {
  test(`${folder}: every attention pattern captured by hooks equals Hugging Face output_attentions`, async () => {
    const model = await loadTraceable(nodeFileSystem, join(HF_TINY, folder));
    const { inputs, expected } = await load(folder);
    const checks = attentionChecks(expected, inputs.attention_mask);
    assert.ok(checks.length >= 2, `${folder}: the fixture records no attentions`);
    const { output, cache } = runWithCache(model, traceInputs(inputs), { names: '**.pattern' });
    for (const c of checks) {
      const r = compareTensors(c.expected, cache.get(c.hook), expected.get(c.expected) as Tensor, c.valid);
      assert.ok(r.pass && r.compared > 0, `${folder} ${c.hook} vs ${c.expected}: ${JSON.stringify(r)}`);
    }
    const logits = compareTensors('logits', output, expected.get('logits') as Tensor, inputs.decoder_input_ids ? undefined : { axis: 1, mask: inputs.attention_mask });
    assert.ok(logits.pass, JSON.stringify(logits));
  });
}

for (const folder of ['gpt2', 'llama', 't5']) {
  test(`${folder}: direct logit attribution adds up to the recorded logit (pre-norm)`, async () => {
    const model = await loadTraceable(nodeFileSystem, join(HF_TINY, folder));
    const { inputs, expected } = await load(folder);
    const { cache } = runWithCache(model, traceInputs(inputs));
    const recorded = expected.get('logits') as Tensor;
    const perLayer = folder === 't5' ? 3 : 2;
    for (const [row, position, token] of [[0, 5, 17], [1, 4, 100]]) {
      const a = directLogitAttribution(model, cache, { row, position, token });
      assert.equal(a.exact, true);
      assert.equal(a.components.length, 1 + perLayer * 2);
      assert.ok(Math.abs(a.logit - rowAt(recorded, row, position)[token]) < 1e-4);
      assert.ok(Math.abs(a.sum - a.logit) < 1e-4 * Math.max(1, Math.abs(a.logit)), `sum ${a.sum} vs logit ${a.logit}`);
    }
  });
}

test('bart: patching the encoder output from run A makes run B\'s decoder see A\'s source', async () => {
  const model = await loadTraceable(nodeFileSystem, join(HF_TINY, 'bart'));
  const decoderInputIds = [[2, 0, 40, 41]];
  const a = { inputIds: [[0, 10, 11, 12, 13, 2]], decoderInputIds };
  const b = { inputIds: [[0, 50, 51, 52, 53, 2]], decoderInputIds };
  const last = 'encoder.blocks.1.resid_post';
  const runA = runWithCache(model, a);
  const runB = runWithCache(model, b);
  const patched = runWithCache(model, b, { hooks: [patchActivation(last, runA.cache)] });
  for (const name of ['decoder.blocks.0.cross_attn.pattern', 'decoder.blocks.1.resid_post']) {
    const same = compareTensors(name, patched.cache.get(name), runA.cache.get(name));
    assert.equal(same.maxAbsDiff, 0, name);
    assert.ok(compareTensors(name, runB.cache.get(name), runA.cache.get(name)).maxAbsDiff > 1e-3, `${name} must differ between A and B`);
  }
  // The decoder's own self-attention in layer 0 does not read the encoder: it stays B's.
  assert.equal(compareTensors('self', patched.cache.get('decoder.blocks.0.attn.pattern'), runB.cache.get('decoder.blocks.0.attn.pattern')).maxAbsDiff, 0);
});
