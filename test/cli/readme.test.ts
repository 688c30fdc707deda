import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateText, loadTextGenerator, loadTraceable, nodeFileSystem, runWithCache } from '../../src/index.js';
import { REPO } from '../helpers/shared.js';

test("the README's TypeScript example runs as written, through the package entry", async () => {
  const dir = join(REPO, 'models', 'kjv-llama');
  const generator = await loadTextGenerator(nodeFileSystem, dir);
  const [story] = generateText(generator, 'And it came to pass', { maxNewTokens: 30, doSample: true, temperature: 0.8, seed: 1 });
  assert.equal(story.ids.length, 30);
  assert.ok(story.text.trim().length > 0);
  const [again] = generateText(generator, 'And it came to pass', { maxNewTokens: 30, doSample: true, temperature: 0.8, seed: 1 });
  assert.deepEqual(again.ids, story.ids, 'a seed makes sampling reproducible');

  const model = await loadTraceable(nodeFileSystem, dir);
  const { cache } = runWithCache(model, { inputIds: [[1, 42, 7]] });
  const pattern = cache.get('blocks.0.attn.pattern');
  assert.deepEqual(pattern.shape.slice(2), [3, 3]);
  // Causal attention: the first token sees only itself.
  assert.equal(pattern.get(0, 0, 0, 0), 1);
  assert.equal(pattern.get(0, 0, 0, 1), 0);
});
