import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../src/errors.js';
import { generate } from '../../src/generation/generate.js';
import { applyChatTemplate, Chat } from '../../src/tasks/chat.js';
import { charTokenizer, fixtureGenerator } from './char-llama.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const shared = process.env.GLASSFORMER_SHARED ?? join(repoRoot, '..', 'shared');
const tokenizerConfig = (name: string) => JSON.parse(readFileSync(join(shared, 'fixtures/tokenizers', name, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;

test('phi3-mini chat template: role headers, <|end|> after each turn, assistant header as generation prompt', () => {
  const messages = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Hi' },
  ];
  const config = tokenizerConfig('phi3-mini');
  assert.equal(applyChatTemplate(config, messages, { addGenerationPrompt: true }), '<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n');
  // Without the generation prompt the template closes with eos_token.
  assert.equal(applyChatTemplate(config, messages), '<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|endoftext|>');
});

test('llama3 chat template: BOS once, trimmed content, <|eot_id|> after each turn', () => {
  const text = applyChatTemplate(
    tokenizerConfig('llama3'),
    [
      { role: 'user', content: '  Hi  ' },
      { role: 'assistant', content: 'Hello' },
      { role: 'user', content: 'Bye' },
    ],
    { addGenerationPrompt: true },
  );
  assert.equal(
    text,
    '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>' +
      '<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>' +
      '<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>' +
      '<|start_header_id|>assistant<|end_header_id|>\n\n',
  );
});

test('qwen3 chat template: <|im_start|>/<|im_end|> turns, and an empty think block when enable_thinking is false', () => {
  const config = tokenizerConfig('qwen3');
  const messages = [
    { role: 'system', content: 'S' },
    { role: 'user', content: 'Hi' },
  ];
  assert.equal(applyChatTemplate(config, messages, { addGenerationPrompt: true }), '<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
  assert.equal(
    applyChatTemplate(config, messages, { addGenerationPrompt: true, variables: { enable_thinking: false } }),
    '<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n',
  );
  // An earlier assistant turn (before the last user message) is written without a think block.
  const history = [
    { role: 'user', content: 'a' },
    { role: 'assistant', content: 'b' },
    { role: 'user', content: 'c' },
  ];
  assert.equal(applyChatTemplate(config, history), '<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n<|im_start|>user\nc<|im_end|>\n');
});

test('a tokenizer without a chat template is a typed error', () => {
  assert.throws(() => applyChatTemplate(tokenizerConfig('gpt2'), [{ role: 'user', content: 'x' }]), ConfigError);
});

test('chat keeps its KV cache between turns: the second turn feeds only the new tokens and answers as a fresh run would', async () => {
  const g = await fixtureGenerator();
  const chat = new Chat(g);
  const options = { maxNewTokens: 6 };
  chat.send('hello', options);
  const cachedAfterFirst = chat.cachedLength;
  const fedBefore = chat.fedLengths.length;
  const reply = chat.send('more', options);
  const prompt2 = charTokenizer.encode(applyChatTemplate(charTokenizer.config, chat.messages.slice(0, 3), { addGenerationPrompt: true }));
  // Turn 2's first forward pass fed the prompt minus the cached prefix.
  assert.equal(chat.fedLengths[fedBefore], prompt2.length - cachedAfterFirst);
  assert.ok(chat.fedLengths[fedBefore] < prompt2.length / 2);
  const fresh = generate(g.model, { inputIds: [prompt2] }, options, g.defaults);
  assert.equal(reply, charTokenizer.decode(fresh.sequences[0].slice(prompt2.length)));
  assert.equal(chat.messages.length, 4);
  chat.reset();
  assert.equal(chat.messages.length, 0);
  assert.throws(() => chat.send('x', { numBeams: 2 }), ConfigError);
});

test('raise_exception in a template becomes a typed error with its message', () => {
  assert.throws(
    () => applyChatTemplate({}, [{ role: 'user', content: 'x' }], { template: "{{ raise_exception('roles must alternate') }}" }),
    (e: unknown) => e instanceof ConfigError && /roles must alternate/.test(e.message),
  );
});
