import assert from 'node:assert/strict';
import { dirname, join, resolve } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runChat } from '../../src/cli/commands/chat.js';
import { runGenerate } from '../../src/cli/commands/generate.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { fixtureGenerator } from './char-llama.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const shared = process.env.GLASSFORMER_SHARED ?? join(repoRoot, '..', 'shared');
const stories = join(shared, 'models/stories260K');

function sink(): { stream: Writable; text: () => string } {
  let out = '';
  const stream = new Writable({
    write(chunk, _encoding, done) {
      out += String(chunk);
      done();
    },
  });
  return { stream, text: () => out };
}

function input(text: string): PassThrough {
  const stream = new PassThrough();
  stream.end(text);
  return stream;
}

test('glassformer generate --json prints {ids, text} of the greedy continuation', async () => {
  const out = sink();
  const err = sink();
  const code = await runGenerate(
    { model: join(stories, 'stories260K.bin'), tokenizer: join(stories, 'tok512.bin'), prompt: 'Once upon a time', maxNewTokens: 12, greedy: true, json: true },
    { stdout: out.stream, stderr: err.stream },
  );
  assert.equal(code, 0, err.text());
  const json = JSON.parse(out.text()) as { ids: number[]; text: string };
  assert.equal(json.ids.length, 12);
  assert.ok(json.text.startsWith(', there was a little girl named Lily'), json.text);
  // Without --json the same text is streamed, then a newline.
  const streamed = sink();
  await runGenerate(
    { model: join(stories, 'stories260K.bin'), tokenizer: join(stories, 'tok512.bin'), prompt: 'Once upon a time', maxNewTokens: 12, greedy: true },
    { stdout: streamed.stream, stderr: err.stream },
  );
  assert.equal(streamed.text(), json.text + '\n');
});

test('glassformer generate: seeded sampling is reproducible from the command line', async () => {
  const run = async (seed: number) => {
    const out = sink();
    await runGenerate(
      { model: join(stories, 'stories260K.bin'), tokenizer: join(stories, 'tok512.bin'), prompt: 'Lily', maxNewTokens: 20, temperature: 1.2, topP: 0.95, seed, json: true },
      { stdout: out.stream, stderr: sink().stream },
    );
    return JSON.parse(out.text()) as { ids: number[] };
  };
  assert.deepEqual((await run(3)).ids, (await run(3)).ids);
  assert.notDeepEqual((await run(3)).ids, (await run(4)).ids);
});

test('glassformer generate: usage and input errors give exit codes 2 and 3 with a message', async () => {
  const err = sink();
  assert.equal(await runGenerate({ model: 'x.bin', greedy: true, temperature: 0.5 }, { stdout: sink().stream, stderr: err.stream }), 2);
  assert.match(err.text(), /--greedy cannot be combined/);
  const err2 = sink();
  assert.equal(await runGenerate({ model: join(stories, 'stories260K.bin'), prompt: 'x' }, { stdout: sink().stream, stderr: err2.stream }), 3);
  assert.match(err2.text(), /tokenizer\.bin/);
});

test('glassformer chat: one streamed reply per line, /reset and /exit', async () => {
  const g = await fixtureGenerator();
  const out = sink();
  const err = sink();
  const code = await runChat({ model: 'fixture', maxNewTokens: 4 }, { stdout: out.stream, stderr: err.stream, stdin: input('hello\n/reset\nagain\n/exit\nnever read\n') }, async () => g);
  assert.equal(code, 0, err.text());
  const lines = out.text().split('\n');
  // "> reply", "> (new conversation)", "> reply", then the prompt at which /exit was typed; the last line is never read.
  assert.equal(lines.length, 5, out.text());
  assert.equal(lines[1], '> (new conversation)');
  assert.ok(lines[0].length > 2 && lines[2].length > 2, out.text());
  assert.equal(lines[3], '> ');
  assert.match(err.text(), /\/reset/);
});

test('glassformer chat refuses a model without a chat template (exit 3)', async () => {
  const err = sink();
  const code = await runChat({ model: join(stories, 'stories260K.bin') }, { stdout: sink().stream, stderr: err.stream, stdin: input('') }, async () => {
    const { loadTextGenerator } = await import('../../src/tasks/generate.js');
    return loadTextGenerator(nodeFileSystem, join(stories, 'stories260K.bin'), { tokenizer: join(stories, 'tok512.bin') });
  });
  assert.equal(code, 3);
  assert.match(err.text(), /chat_template/);
});
