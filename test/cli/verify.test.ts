import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { runVerify } from '../../src/cli/commands/verify.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { HF_TINY, REPO } from '../helpers/shared.js';

const run = promisify(execFile);
const CLI = join(REPO, 'dist', 'src', 'cli', 'main.js');

function sink(): NodeJS.WritableStream & { text: string } {
  const chunks: string[] = [];
  return {
    write(chunk: string) {
      chunks.push(chunk);
      return true;
    },
    get text() {
      return chunks.join('');
    },
  } as unknown as NodeJS.WritableStream & { text: string };
}

test('verify --out writes the produced tensors and ids beside a passing report', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-verify-'));
  const out = sink();
  const code = await runVerify({ dir: join(HF_TINY, 'vanilla'), out: join(dir, 'ours') }, out);
  assert.equal(code, 0);
  assert.match(out.text, /PASS {2}logits/);
  const tensors = await readSafetensors(nodeFileSystem, join(dir, 'ours.safetensors'));
  assert.deepEqual(tensors.get('logits')?.shape, [2, 7, 112]);
  assert.ok((await stat(join(dir, 'ours.json'))).size > 0);
  JSON.parse(await readFile(join(dir, 'ours.json'), 'utf8'));
});

test('the command exits 3 with the path when the folder is missing, and 2 on a usage error', async () => {
  const missing = await run('node', [CLI, 'verify', join(HF_TINY, 'no-such-family')]).catch((e: { code: number; stderr: string }) => e);
  assert.equal((missing as { code: number }).code, 3);
  assert.match((missing as { stderr: string }).stderr, /no-such-family\/config\.json: no such file/);
  const usage = await run('node', [CLI, 'verify']).catch((e: { code: number }) => e);
  assert.equal((usage as { code: number }).code, 2);
});
