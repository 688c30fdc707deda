import assert from 'node:assert/strict';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fusedAttentionKernel } from '../../src/kernels/attention.js';
import { kernelInfo, useFastestKernel } from '../../src/kernels/index.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { formatReport, verifyFolder } from '../../src/verify/index.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const shared = process.env.GLASSFORMER_SHARED ?? join(repoRoot, '..', 'shared');

// The other test files run the models on the TypeScript kernels and unfused
// attention; this one runs every recorded Hugging Face fixture (prompt passes,
// KV-cache steps, greedy and beam generations) with the native kernels and the
// fused attention, as the CLI and the package entry do.
for (const fixture of ['vanilla', 'bert', 'bert/classification', 'gpt2', 'llama', 't5', 't5/gated-gelu', 'bart', 'marian']) {
  test(`${fixture}: every recorded tensor and generation matches with the native kernels and fused attention`, async () => {
    await useFastestKernel();
    if (process.env.GLASSFORMER_NATIVE !== '0') {
      assert.ok(kernelInfo().name.startsWith('native'), `native kernel not loaded: ${kernelInfo().nativeUnavailable}`);
      assert.ok(fusedAttentionKernel(), 'the addon has no fused attention');
    }
    const report = await verifyFolder(nodeFileSystem, join(shared, 'fixtures/hf-tiny', fixture));
    assert.ok(report.pass, formatReport(report));
  });
}
