import assert from 'node:assert/strict';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generate } from '../../src/generation/generate.js';
import { readLlama2cCheckpoint, readLlama2cTokenizer } from '../../src/io/llama2c.js';
import { useFastestKernel } from '../../src/kernels/index.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { LlamaModel, parseLlamaConfig } from '../../src/models/llama.js';
import { Llama2cTokenizer } from '../../src/models/llama2c-tokenizer.js';
import { Weights } from '../../src/nn/weights.js';
import { Tensor } from '../../src/tensor/tensor.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const shared = process.env.GLASSFORMER_SHARED ?? join(repoRoot, '..', 'shared');
const dir = join(shared, 'models/stories260K');

/** shared/models/README.md: run.c greedy from BOS, 256 steps (BOS not included). */
const EXPECTED_IDS = [
  403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385,
  328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338, 391, 266, 267, 337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13, 438, 310,
  439, 419, 357, 336, 432, 313, 438, 310, 432, 278, 316, 439, 419, 298, 414, 267, 265, 282, 295, 433, 426, 436, 317, 286, 296, 418, 269, 279, 292, 416, 439, 413,
  409, 416, 327, 263, 415, 294, 267, 400, 426, 338, 336, 432, 313, 442, 391, 267, 337, 335, 364, 420, 268, 388, 432, 398, 359, 280, 303, 439, 413, 272, 417, 264,
  312, 426, 436, 13, 438, 310, 286, 296, 418, 269, 279, 292, 416, 439, 413, 409, 416, 327, 263, 415, 294, 267, 400, 426, 338, 336, 432, 313, 442, 439, 423, 262,
  304, 420, 422, 432, 317, 426, 359, 279, 292, 416, 439, 413, 409, 416, 327, 263, 415, 294, 267, 400, 426, 436, 13, 438, 310, 279, 292, 416, 439, 413, 391, 267,
  281, 421, 427, 311, 357, 432, 384, 358, 336, 432, 313, 442, 439, 423, 262, 304, 420, 422, 432, 357, 426, 359, 279, 292, 416, 439, 413, 409, 416, 327, 263, 415,
  294, 267, 400, 426, 436, 320, 285, 357, 336, 432, 313, 455, 289, 439, 413, 263, 304, 420, 422, 432, 317, 426, 410, 448, 411, 280, 303, 281, 421, 427, 364, 426,
];

const EXPECTED_TEXT_START = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.';

async function load(): Promise<{ model: LlamaModel; tokenizer: Llama2cTokenizer }> {
  const checkpoint = await readLlama2cCheckpoint(nodeFileSystem.source(join(dir, 'stories260K.bin')));
  const config = parseLlamaConfig(checkpoint.llamaConfig.raw as Record<string, unknown>, 'stories260K.bin');
  const model = new LlamaModel(config, Weights.from(checkpoint.tensors, 'stories260K.bin'));
  const tokenizer = new Llama2cTokenizer(await readLlama2cTokenizer(nodeFileSystem, join(dir, 'tok512.bin'), config.vocabSize));
  return { model, tokenizer };
}

test('stories260K: greedy generation from BOS reproduces run.c\'s 256 token ids and text', async () => {
  const { model, tokenizer } = await load();
  const result = generate(model, { inputIds: [[1]] }, { maxNewTokens: 256 }, { eosTokenId: 2, padTokenId: 0 });
  assert.deepEqual(result.sequences[0].slice(1), EXPECTED_IDS);
  const text = tokenizer.decode(result.sequences[0]);
  assert.ok(text.startsWith(EXPECTED_TEXT_START), text.slice(0, 120));
  assert.ok(text.endsWith('Her mom said, "Don\'t worry, Lily. We can help you.'), text.slice(-80));
});

test('stories260K: the same 256 ids with the native kernels, fused attention and the KV cache read in place', async () => {
  await useFastestKernel();
  const { model } = await load();
  const result = generate(model, { inputIds: [[1]] }, { maxNewTokens: 256 }, { eosTokenId: 2, padTokenId: 0 });
  assert.deepEqual(result.sequences[0].slice(1), EXPECTED_IDS);
});

test('stories260K: the top-5 logits at position 0 match the NumPy reference within 1e-3', async () => {
  const { model } = await load();
  const { logits } = model.forward(Tensor.i32([1], [1, 1]));
  const row = logits.f32();
  const top = Array.from(row.keys()).sort((a, b) => row[b] - row[a]).slice(0, 5);
  const expected: [number, number][] = [[403, 17.0235], [385, 15.4062], [410, 13.1083], [317, 12.7692], [407, 12.4181]];
  assert.deepEqual(top, expected.map(([id]) => id));
  for (const [id, value] of expected) assert.ok(Math.abs(row[id] - value) < 1e-3, `logit ${id}: ${row[id]} vs ${value}`);
});

test('llama2.c tokenizer: encode is run.c\'s score-greedy BPE and decode inverts it', async () => {
  const { tokenizer } = await load();
  const ids = tokenizer.encode('Once upon a time');
  assert.deepEqual(ids.slice(0, 3), [1, 403, 407]);
  assert.equal(tokenizer.decode(ids), 'Once upon a time');
  // A character outside the vocabulary falls back to its UTF-8 bytes (<0xHH> = byte + 3) and decodes back.
  const emoji = tokenizer.encode('🙂', { bos: false });
  assert.deepEqual(emoji.slice(-4), [0xf0 + 3, 0x9f + 3, 0x99 + 3, 0x82 + 3]);
  assert.equal(tokenizer.decode(emoji, { previous: 1 }), '🙂');
});
