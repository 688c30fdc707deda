import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { runDownload } from '../../src/cli/commands/download.js';
import { runInfo } from '../../src/cli/commands/info.js';
import { formatModelInfo, modelInfo, type ModelInfo } from '../../src/hub/info.js';
import { HF_TINY, SHARED } from '../helpers/shared.js';
import { FakeHub, fixtureBytes } from './fake-hub.js';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { readSafetensors, WIDEN_CHUNK, writeSafetensors } from '../../src/io/safetensors.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { tmpdir } from 'node:os';

const MINILM = join(SHARED, 'models', 'tokenizer-only', 'all-MiniLM-L6-v2');

async function config(family: string): Promise<Record<string, number>> {
  return JSON.parse(await readFile(join(HF_TINY, family, 'config.json'), 'utf8')) as Record<string, number>;
}

/** Bytes of tensor data: the file minus the 8-byte length and the JSON header. */
async function dataBytes(path: string): Promise<number> {
  const bytes = await readFile(path);
  return bytes.length - 8 - Number(bytes.readBigUInt64LE(0));
}

test('GPT-2: parameters from the safetensors headers equal the count from the architecture', async () => {
  const c = await config('gpt2');
  const [d, L, V, P] = [c.n_embd, c.n_layer, c.vocab_size, c.n_positions];
  const ff = 4 * d;
  // wte + wpe + per block (ln_1, c_attn, c_proj, ln_2, c_fc, mlp c_proj) + ln_f; lm_head is tied to wte and not stored.
  const perBlock = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * ff + ff) + (ff * d + d);
  const expected = V * d + P * d + L * perBlock + 2 * d;
  const info = await modelInfo(join(HF_TINY, 'gpt2'));
  assert.equal(info.family, 'decoder-only');
  assert.equal(info.weights?.parameters, expected);
  assert.deepEqual(info.weights?.dtypes, { F32: expected });
  assert.equal(info.weights?.bytes, await dataBytes(join(HF_TINY, 'gpt2', 'model.safetensors')));
  assert.equal(info.contextLength, P);
  assert.equal(info.ffnSize, ff);
  const kv = 2 * L * c.n_head * (d / c.n_head) * P * 4;
  assert.deepEqual({ ...info.memory, load: undefined }, { weightsF32: expected * 4, kvCache: kv, total: expected * 4 + kv, load: undefined });
  // Loading: the linear matrices (wte, the head, and each block's four Conv1D weights) follow linearDtype, the rest is f32.
  const matrices = V * d + L * (d * 3 * d + d * d + d * ff + ff * d);
  const rows = V + L * (3 * d + d + ff + d); // int8 scales: one per output row
  // Conversions reuse a block buffer (here each matrix fits one: the largest is V·d or d·ff) and GPT-2's transposing buffer (the largest Conv1D, d·ff).
  const buffers = 4 * Math.max(V * d, d * ff) + 4 * d * ff;
  assert.deepEqual(info.memory?.load, {
    f32: { resident: expected * 4, transient: 0, transientTensor: null, peak: expected * 4 },
    bf16: { resident: expected * 4 - 2 * matrices, transient: buffers, transientTensor: 'transformer.h.0.mlp.c_fc.weight', peak: expected * 4 - 2 * matrices + buffers },
    int8: { resident: expected * 4 - 3 * matrices + 4 * rows, transient: buffers, transientTensor: 'transformer.h.0.mlp.c_fc.weight', peak: expected * 4 - 3 * matrices + 4 * rows + buffers },
  });
  assert.match(formatModelInfo(info), /memory to load +≈ 123\.5 KiB \(f32\), ≈ 67\.5 KiB \(bf16\), ≈ 42\.3 KiB \(int8\)/);
  assert.match(formatModelInfo(info), /peak while loading +≈ 123\.5 KiB \(f32\), ≈ 99\.5 KiB \(bf16\), ≈ 74\.3 KiB \(int8\)/);
});

test('Llama: grouped-query attention shrinks the parameter count and the KV cache', async () => {
  const c = await config('llama');
  const [d, L, V, ff, H, KV, hd] = [c.hidden_size, c.num_hidden_layers, c.vocab_size, c.intermediate_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim];
  const attention = d * H * hd + 2 * d * KV * hd + H * hd * d;
  const mlp = 3 * d * ff;
  // embed_tokens + untied lm_head + per layer (attention, SwiGLU, two RMSNorm gains) + final norm.
  const expected = 2 * V * d + L * (attention + mlp + 2 * d) + d;
  const info = await modelInfo(join(HF_TINY, 'llama'));
  assert.equal(info.weights?.parameters, expected);
  assert.equal(info.kvHeads, KV);
  assert.equal(info.memory?.kvCache, 2 * L * KV * hd * c.max_position_embeddings * 4);
  assert.match(formatModelInfo(info), /4 \(2 key\/value heads: grouped-query\)/);
});

test('each fixture family is named from model_type; T5 has no fixed context length', async () => {
  const families: Record<string, ModelInfo['family']> = {
    bert: 'encoder-only',
    gpt2: 'decoder-only',
    llama: 'decoder-only',
    t5: 'encoder-decoder',
    bart: 'encoder-decoder',
    marian: 'encoder-decoder',
    vanilla: 'encoder-decoder',
  };
  for (const [folder, family] of Object.entries(families)) {
    const info = await modelInfo(join(HF_TINY, folder));
    assert.equal(info.family, family, folder);
    assert.equal(info.layers, 2, folder);
    assert.equal(info.hiddenSize, 32, folder);
    assert.equal(info.heads, 4, folder);
    assert.ok((info.weights?.parameters ?? 0) > 0, folder);
  }
  const t5 = await modelInfo(join(HF_TINY, 't5'));
  assert.equal(t5.contextLength, null);
  assert.equal(t5.memory?.kvCache, null);
  assert.equal(t5.headDim, 8);
  assert.equal(t5.decoderLayers, 2);
  const bert = await modelInfo(join(HF_TINY, 'bert'));
  assert.equal(bert.memory?.kvCache, 0);
  assert.deepEqual(bert.configTokenIds, { pad: 0, unk: 1, sep: 3, cls: 2, mask: 4 });
});

test('a folder without weights is described, and says it has none: all-MiniLM-L6-v2 tokenizer only', async () => {
  const info = await modelInfo(MINILM);
  assert.equal(info.weights, null);
  assert.equal(info.memory, null);
  assert.match(info.weightsNote, /no weights in this folder/);
  assert.equal(info.family, 'encoder-only');
  assert.equal(info.layers, 6);
  assert.equal(info.hiddenSize, 384);
  assert.equal(info.contextLength, 512);
  assert.equal(info.tokenizer?.kind, 'WordPiece');
  assert.equal(info.tokenizer?.vocabSize, 30522);
  assert.deepEqual(info.tokenizer?.specialTokens, {
    unk_token: { token: '[UNK]', id: 100 },
    sep_token: { token: '[SEP]', id: 102 },
    pad_token: { token: '[PAD]', id: 0 },
    cls_token: { token: '[CLS]', id: 101 },
    mask_token: { token: '[MASK]', id: 103 },
  });
  assert.match(formatModelInfo(info), /weights +no weights in this folder/);
});

function sink(): Writable & { text: () => string; isTTY?: boolean } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  }) as Writable & { text: () => string };
  stream.text = () => chunks.join('');
  return stream;
}

test('glassformer info prints the description, as JSON with --json, and exits 3 with the reason on a bad folder', async () => {
  const out = sink();
  const err = sink();
  assert.equal(await runInfo({ model: join(HF_TINY, 'gpt2'), json: true }, { stdout: out, stderr: err, env: {} }), 0);
  const json = JSON.parse(out.text()) as ModelInfo;
  assert.equal(json.weights?.parameters, 31616);
  assert.equal(json.modelType, 'gpt2');
  assert.equal(json.memory?.load.int8.resident, 43264, '--json carries the loading prediction');
  assert.equal(err.text(), '', 'no progress noise when stderr is not a terminal');
  const text = sink();
  assert.equal(await runInfo({ model: MINILM }, { stdout: text, stderr: sink(), env: {} }), 0);
  assert.match(text.text(), /tokenizer +WordPiece \(tokenizer\.json, 30522 tokens\)/);
  const bad = sink();
  assert.equal(await runInfo({ model: join(HF_TINY, 'missing-family') }, { stdout: sink(), stderr: bad, env: {} }), 3);
  assert.match(bad.text(), /no such folder/);
});

test('glassformer info on a Hub id reads the safetensors headers with range requests and does not download the weights', async (t) => {
  const weights = fixtureBytes('llama', 'model.safetensors');
  const files = { 'config.json': fixtureBytes('llama', 'config.json'), 'model.safetensors': weights, 'README.md': Buffer.from('# llama') };
  const hub = await FakeHub.start({ 'tiny-org/llama': { commit: 'd'.repeat(40), files } });
  const cacheDir = await mkdtemp(join(tmpdir(), 'glassformer-cli-'));
  t.after(async () => {
    await hub.close();
    await rm(cacheDir, { recursive: true, force: true });
  });
  const out = sink();
  const err = sink();
  assert.equal(await runInfo({ model: 'tiny-org/llama', cacheDir, json: true }, { stdout: out, stderr: err, env: { HF_ENDPOINT: hub.endpoint } }), 0, err.text());
  const json = JSON.parse(out.text()) as ModelInfo & { remoteWeights: string[] };
  const local = await modelInfo(join(HF_TINY, 'llama'));
  assert.deepEqual(json.weights, local.weights);
  assert.deepEqual(json.memory?.load, local.memory?.load, 'the loading prediction comes from the remote header alone');
  assert.ok((local.memory?.load.int8.resident ?? 0) > 0);
  assert.deepEqual(json.remoteWeights, ['model.safetensors']);
  const headerLength = Number(weights.readBigUInt64LE(0));
  assert.deepEqual(
    hub.requests((r) => r.server === 'cdn').map((r) => r.range),
    ['bytes=0-7', `bytes=8-${8 + headerLength - 1}`],
  );
  const snapshot = join(cacheDir, 'models--tiny-org--llama', 'snapshots', 'd'.repeat(40));
  assert.deepEqual(await readdir(snapshot), ['config.json']);
});

test('glassformer download prints the snapshot folder (JSON with --json) and draws progress only on a terminal', async (t) => {
  const files = { 'config.json': fixtureBytes('bert', 'config.json'), 'model.safetensors': fixtureBytes('bert', 'model.safetensors') };
  const commit = 'c'.repeat(40);
  const hub = await FakeHub.start({ 'tiny-org/bert': { commit, files } });
  const cacheDir = await mkdtemp(join(tmpdir(), 'glassformer-cli-'));
  t.after(async () => {
    await hub.close();
    await rm(cacheDir, { recursive: true, force: true });
  });
  const out = sink();
  const tty = Object.assign(sink(), { isTTY: true, columns: 120 });
  const code = await runDownload({ model: 'tiny-org/bert', cacheDir, json: true }, { stdout: out, stderr: tty, env: { HF_ENDPOINT: hub.endpoint } });
  assert.equal(code, 0, tty.text());
  const printed = JSON.parse(out.text()) as { path: string; revision: string };
  assert.equal(printed.path, join(cacheDir, 'models--tiny-org--bert', 'snapshots', commit));
  assert.equal(printed.revision, 'main');
  assert.equal((await stat(join(printed.path, 'model.safetensors'))).size, files['model.safetensors'].length);
  assert.match(tty.text(), /model\.safetensors \[#{24}\] 100%/);
  const plain = sink();
  assert.equal(await runDownload({ model: 'tiny-org/bert', cacheDir, offline: true }, { stdout: plain, stderr: sink(), env: {} }), 0);
  assert.equal(plain.text(), `${printed.path}\n`);
  const err = sink();
  assert.equal(await runDownload({ model: 'tiny-org/absent', cacheDir }, { stdout: sink(), stderr: err, env: { HF_ENDPOINT: hub.endpoint } }), 3);
  assert.match(err.text(), /tiny-org\/absent: no such model/);
});

test('a sharded checkpoint is described from every shard header: the same parameters and loading memory, one widening buffer per bf16 shard', async () => {
  const tensors = await readSafetensors(nodeFileSystem, join(HF_TINY, 'gpt2', 'model.safetensors'));
  const names = [...tensors.keys()];
  const half = Math.ceil(names.length / 2);
  const single = await modelInfo(join(HF_TINY, 'gpt2'));
  for (const dtype of ['f32', 'bf16'] as const) {
    const dir = await mkdtemp(join(tmpdir(), 'glassformer-info-shards-'));
    try {
      await writeFile(join(dir, 'config.json'), await readFile(join(HF_TINY, 'gpt2', 'config.json')));
      const weightMap: Record<string, string> = {};
      for (const [i, members] of [names.slice(0, half), names.slice(half)].entries()) {
        const file = `model-0000${i + 1}-of-00002.safetensors`;
        await writeSafetensors(nodeFileSystem, join(dir, file), new Map(members.map((n) => [n, (tensors.get(n) as Tensor).to(dtype)])));
        for (const n of members) weightMap[n] = file;
      }
      await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
      const info = await modelInfo(dir);
      assert.equal(info.weights?.files.length, 2);
      assert.equal(info.weights?.parameters, single.weights?.parameters);
      const load = info.memory?.load;
      assert.ok(load && single.memory);
      if (dtype === 'f32') assert.deepEqual(load, single.memory.load);
      else {
        // Read from bf16: the f32 mode widens everything through one buffer per shard; bf16 matrices are kept as stored.
        assert.equal(load.f32.resident, single.memory.load.f32.resident);
        assert.equal(load.f32.transient, 2 * 2 * WIDEN_CHUNK);
        assert.equal(load.bf16.resident, single.memory.load.bf16.resident);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
});
