import assert from 'node:assert/strict';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { runBart } from '../../src/verify/bart.js';
import { formatReport, registerFixtureRunner, verifyFolder } from '../../src/verify/index.js';

const shared = process.env.GLASSFORMER_SHARED ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../..', '../shared');
const fixtures = join(shared, 'fixtures', 'hf-tiny');

registerFixtureRunner('bart', runBart);
registerFixtureRunner('marian', runBart);

for (const folder of ['bart', 'marian']) {
  test(`${folder}: every recorded tensor and generation matches Hugging Face`, async () => {
    const report = await verifyFolder(nodeFileSystem, join(fixtures, folder));
    assert.ok(report.pass, formatReport(report));
  });
}
