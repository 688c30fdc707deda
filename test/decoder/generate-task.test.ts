import assert from 'node:assert/strict';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FormatError, UnsupportedError } from '../../src/errors.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { Weights } from '../../src/nn/weights.js';
import { decoderFromConfig, generateText, loadTextGenerator, streamText } from '../../src/tasks/generate.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const shared = process.env.GLASSFORMER_SHARED ?? join(repoRoot, '..', 'shared');
const stories = join(shared, 'models/stories260K');

async function storiesGenerator() {
  return loadTextGenerator(nodeFileSystem, join(stories, 'stories260K.bin'), { tokenizer: join(stories, 'tok512.bin') });
}

test('text generation job: a llama2.c checkpoint continues a prompt as text (greedy)', async () => {
  const g = await storiesGenerator();
  const [out] = generateText(g, 'Once upon a time', { maxNewTokens: 12 });
  assert.equal(out.ids.length, 12);
  // stories260K continues its own opening exactly as in run.c's sample ("…, there was a little girl named Lily.").
  assert.ok(out.text.startsWith(', there was a little girl named Lily'), JSON.stringify(out.text));
  assert.equal(out.logprobs?.length, 12);
  assert.ok(out.logprobs?.every((l) => l <= 0));
});

test('text generation job: a batch of prompts is left-padded and each continuation matches its single run', async () => {
  const g = await storiesGenerator();
  const batch = generateText(g, ['Once upon a time', 'Lily'], { maxNewTokens: 8 });
  const single = generateText(g, 'Lily', { maxNewTokens: 8 });
  assert.deepEqual(batch[1].ids, single[0].ids);
});

test('streaming text concatenates to the generated text, token by token', async () => {
  const g = await storiesGenerator();
  let text = '';
  const tokens: number[] = [];
  for await (const chunk of streamText(g, 'Once upon a time', { maxNewTokens: 10 })) {
    text += chunk.text;
    tokens.push(chunk.token);
  }
  const [out] = generateText(g, 'Once upon a time', { maxNewTokens: 10 });
  assert.deepEqual(tokens, out.ids);
  assert.equal(text, out.text);
});

test('loading errors name what is wrong', async () => {
  await assert.rejects(loadTextGenerator(nodeFileSystem, join(stories, 'stories260K.bin')), FormatError); // no tokenizer.bin beside it
  assert.throws(() => decoderFromConfig({ model_type: 'bert' }, Weights.from({})), UnsupportedError);
  await assert.rejects(loadTextGenerator(nodeFileSystem, join(shared, 'fixtures/hf-tiny/gpt2')), /tokenizer/i);
});
