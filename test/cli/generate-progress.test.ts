import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { runGenerate } from '../../src/cli/commands/generate.js';
import { SHARED } from '../helpers/shared.js';

function sink(isTTY: boolean): NodeJS.WritableStream & { text: () => string } {
  const chunks: string[] = [];
  return { isTTY, write: (c: string) => chunks.push(c) > 0, text: () => chunks.join('') } as unknown as NodeJS.WritableStream & { text: () => string };
}

const STORIES = join(SHARED, 'models', 'stories260K');
const ARGS = { model: join(STORIES, 'stories260K.bin'), tokenizer: join(STORIES, 'tok512.bin'), prompt: 'Once upon a time', maxNewTokens: 12, greedy: true };

test('streamed generation reports its speed on a terminal and stays quiet in a pipe', async () => {
  const tty = { stdout: sink(false), stderr: sink(true) };
  assert.equal(await runGenerate(ARGS, tty), 0);
  assert.match(tty.stderr.text(), /^\[12 tokens in [\d.]+ s, [\d.]+ tokens\/s\]\n$/);
  assert.match(tty.stdout.text(), /^, there was a little girl/);
  const pipe = { stdout: sink(false), stderr: sink(false) };
  assert.equal(await runGenerate(ARGS, pipe), 0);
  assert.equal(pipe.stderr.text(), '');
  assert.equal(pipe.stdout.text(), tty.stdout.text());
});
