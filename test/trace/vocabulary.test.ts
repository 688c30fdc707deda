import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { loadTraceable } from '../../src/trace/adapters/index.js';
import { runWithCache } from '../../src/trace/run.js';
import { HF_TINY } from '../helpers/shared.js';

/** The names docs/trace.md promises for every stack of every family, per layer. */
const BLOCK = ['resid_pre', 'attn.q', 'attn.k', 'attn.v', 'attn.scores', 'attn.pattern', 'attn.z', 'attn.out', 'resid_mid', 'ln1', 'ln2', 'mlp.pre', 'mlp.post', 'mlp.out', 'resid_post'];
const CROSS = ['cross_attn.q', 'cross_attn.k', 'cross_attn.v', 'cross_attn.scores', 'cross_attn.pattern', 'cross_attn.z', 'cross_attn.out', 'resid_mid_cross', 'ln_cross'];

/** Per family: the stack-level names beyond `tokens` and `embed` (positions and final norm differ by design). */
const STACK_EXTRAS: Record<string, string[]> = {
  vanilla: ['pos_embed', 'ln_final'],
  bert: ['pos_embed', 'type_embed', 'ln_embed'],
  gpt2: ['pos_embed', 'ln_final'],
  llama: ['ln_final'],
  t5: ['position_bias', 'ln_final'],
  bart: ['pos_embed', 'ln_embed'],
  marian: ['pos_embed'],
};

for (const [family, extras] of Object.entries(STACK_EXTRAS)) {
  test(`${family}: every hook point of the trace vocabulary is called, with the documented shapes`, async () => {
    const model = await loadTraceable(nodeFileSystem, join(HF_TINY, family));
    const { cache } = runWithCache(model, { inputIds: [[2, 5, 6, 7, 3]], decoderInputIds: [[1, 8, 9]] });
    const missing: string[] = [];
    for (const stack of model.description.stacks) {
      const p = stack.prefix;
      for (const name of ['tokens', 'embed', ...extras]) if (!cache.has(p + name)) missing.push(p + name);
      for (let i = 0; i < stack.layers; i++) {
        for (const part of [...BLOCK, ...(stack.crossAttention ? CROSS : [])]) if (!cache.has(`${p}blocks.${i}.${part}`)) missing.push(`${p}blocks.${i}.${part}`);
      }
      const seq = stack.input === 'inputIds' ? 5 : 3;
      assert.deepEqual(cache.get(`${p}blocks.0.resid_post`).shape, [1, seq, stack.dModel]);
      assert.deepEqual(cache.get(`${p}blocks.0.attn.pattern`).shape, [1, stack.heads, seq, seq]);
      assert.deepEqual(cache.get(`${p}blocks.0.attn.q`).shape, [1, stack.heads, seq, stack.dHead]);
      assert.deepEqual(cache.get(`${p}blocks.0.attn.k`).shape, [1, stack.kvHeads, seq, stack.dHead]);
      if (stack.crossAttention) assert.deepEqual(cache.get(`${p}blocks.0.cross_attn.pattern`).shape, [1, stack.heads, seq, 5]);
    }
    if (model.description.positions === 'rotary') for (const r of ['rotary_q', 'rotary_k']) if (!cache.has(`blocks.0.attn.${r}`)) missing.push(`blocks.0.attn.${r}`);
    for (const name of ['logits', 'probs']) if (!cache.has(name)) missing.push(name);
    assert.deepEqual(missing, []);
    // probs is the softmax of the logits: each row sums to one.
    const probs = cache.get('probs');
    const vocab = probs.shape[probs.rank - 1];
    const row = probs.f32().subarray(0, vocab).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(row - 1) < 1e-5, `probs row sums to ${row}`);
  });
}
