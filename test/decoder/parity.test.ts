import assert from 'node:assert/strict';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { formatReport, registerFixtureRunner, verifyFolder } from '../../src/verify/index.js';
import { runGpt2 } from '../../src/verify/gpt2.js';
import { runLlama } from '../../src/verify/llama.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const shared = process.env.GLASSFORMER_SHARED ?? join(repoRoot, '..', 'shared');

registerFixtureRunner('gpt2', runGpt2);
registerFixtureRunner('llama', runLlama);

for (const family of ['gpt2', 'llama']) {
  test(`${family} fixture: hidden states, attentions, logits, KV cache, incremental decode and every generate run match Hugging Face`, async () => {
    const report = await verifyFolder(nodeFileSystem, join(shared, 'fixtures/hf-tiny', family));
    assert.ok(report.pass, formatReport(report));
    assert.ok(report.tensors.length >= 20, `only ${report.tensors.length} tensors compared`);
    assert.equal(report.sequences.length, 6);
  });
}
