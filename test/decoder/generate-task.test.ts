import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FormatError, UnsupportedError } from '../../src/errors.js';
import { generate } from '../../src/generation/generate.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { MemoryFileSystem } from '../../src/io/source.js';
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

test('a model folder loads config.json, model.safetensors, generation_config.json and tokenizer.json', async () => {
  const fixture = join(shared, 'fixtures/hf-tiny/llama');
  // A character-level BPE vocabulary over the fixture's 128 ids, with the Fuse decoder.
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let id = 3; id < 128; id++) vocab[String.fromCharCode(0x20 + id - 3)] = id;
  const tokenizerJson = {
    version: '1.0',
    added_tokens: [
      { id: 1, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 2, content: '</s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    ],
    normalizer: null,
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: { type: 'Fuse' },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  };
  const fs = new MemoryFileSystem({
    'm/config.json': readFileSync(join(fixture, 'config.json')),
    'm/generation_config.json': readFileSync(join(fixture, 'generation_config.json')),
    'm/model.safetensors': readFileSync(join(fixture, 'model.safetensors')),
    'm/tokenizer.json': JSON.stringify(tokenizerJson),
    'm/tokenizer_config.json': JSON.stringify({ bos_token: '<s>', eos_token: '</s>' }),
  });
  const g = await loadTextGenerator(fs, 'm');
  assert.deepEqual(g.defaults, { bosTokenId: 1, eosTokenId: 2, padTokenId: 0 });
  const prompt = 'hello';
  const ids = g.tokenizer.encode(prompt);
  assert.deepEqual(ids, [1, ...Array.from(prompt, (c) => c.charCodeAt(0) - 0x20 + 3)]);
  const [out] = generateText(g, prompt, { maxNewTokens: 5 });
  // The same ids as generate() on the model directly, decoded character by character.
  const direct = generate(g.model, { inputIds: [ids] }, { maxNewTokens: 5 }, g.defaults);
  const generated = direct.sequences[0].slice(ids.length);
  const end = generated.indexOf(2); // up to and including EOS; pads follow it
  assert.deepEqual(out.ids, end === -1 ? generated : generated.slice(0, end + 1));
  assert.equal(out.text, g.tokenizer.decode(out.ids));
});
