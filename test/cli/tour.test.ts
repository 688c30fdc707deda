import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { runTour } from '../../src/cli/commands/tour.js';
import { REPO, SHARED } from '../helpers/shared.js';

test('the tour generates, searches, translates and traces with the shipped models, and verifies every family', async () => {
  const chunks: string[] = [];
  const stdout = { write: (c: string) => chunks.push(c) > 0 } as unknown as NodeJS.WritableStream;
  const code = await runTour({ models: join(REPO, 'models'), shared: SHARED }, stdout);
  const text = chunks.join('');
  assert.equal(code, 0, text);
  assert.match(text, /And it came to pass\S*\s+\S+/, 'the decoder continues the prompt');
  // The verse about creation is the nearest by meaning to the query about creation.
  assert.match(text, /query: "the creation of the world"\n\s+[\d.]+ {2}In the beginning God created/);
  // 342,105 written in words comes back as its digits.
  assert.match(text, /three hundred forty-two thousand one hundred five →\n\s+342105\n/);
  assert.match(text, /## Tokenize/);
  assert.equal(text.match(/: all match/g)?.length, 9);
});
