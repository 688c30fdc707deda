import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runTour } from '../../src/cli/commands/tour.js';
import { SHARED } from '../helpers/shared.js';

test('the tour tells the stories260K story, verifies every family and traces a step', async () => {
  const chunks: string[] = [];
  const stdout = { write: (c: string) => chunks.push(c) > 0 } as unknown as NodeJS.WritableStream;
  const code = await runTour({ shared: SHARED }, stdout);
  const text = chunks.join('');
  assert.equal(code, 0, text);
  // The greedy story llama2.c's doc/stories260K.md prints for this model.
  assert.match(text, /Once upon a time, there was a little girl named Lily\. She loved to play outside in the park\./);
  assert.equal(text.match(/: all match/g)?.length, 9);
  assert.match(text, /## Tokenize/);
});
