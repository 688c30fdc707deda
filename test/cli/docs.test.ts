import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { program } from '../../src/cli/program.js';
import { REPO } from '../helpers/shared.js';

test('docs/cli.md has a section for every command, with its usage line', async () => {
  const doc = await readFile(join(REPO, 'docs', 'cli.md'), 'utf8');
  const names = program().commands.map((c) => c.name());
  assert.ok(names.length >= 14);
  for (const name of names) {
    assert.match(doc, new RegExp(`^## ${name}$`, 'm'), `docs/cli.md lacks a "## ${name}" section`);
    assert.ok(doc.includes(`Usage: glassformer ${name} `), `docs/cli.md lacks the usage of ${name}`);
  }
});
