import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { FormatError, UnsupportedError } from '../../src/errors.js';
import { interleavedToHalves, parseLlama2cTokenizer, readLlama2cCheckpoint } from '../../src/io/llama2c.js';
import { loadLlama2cCheckpoint, loadLlama2cTokenizer } from '../../src/io/node.js';
import { bytesSource } from '../../src/io/source.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { SHARED } from './shared.js';

const STORIES = join(SHARED, 'models', 'stories260K');
const CHECKPOINT = join(STORIES, 'stories260K.bin');

test('stories260K: header values, Hugging Face names and shapes, and the total size', async () => {
  const { config, llamaConfig, tensors } = await loadLlama2cCheckpoint(CHECKPOINT);
  assert.deepEqual(config, { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512, sharedClassifier: true, version: 0 });
  assert.deepEqual(
    [llamaConfig.hiddenSize, llamaConfig.intermediateSize, llamaConfig.numKeyValueHeads, llamaConfig.headDim, llamaConfig.rmsNormEps],
    [64, 172, 4, 8, 1e-5],
  );
  assert.equal(llamaConfig.tieWordEmbeddings, true);
  assert.equal(tensors.size, 2 + 9 * 5);
  assert.ok(!tensors.has('lm_head.weight'), 'the classifier is tied, as Hugging Face would save it');
  assert.deepEqual(tensors.get('model.embed_tokens.weight')?.shape, [512, 64]);
  assert.deepEqual(tensors.get('model.layers.4.self_attn.q_proj.weight')?.shape, [64, 64]);
  assert.deepEqual(tensors.get('model.layers.0.self_attn.k_proj.weight')?.shape, [32, 64]);
  assert.deepEqual(tensors.get('model.layers.0.mlp.down_proj.weight')?.shape, [64, 172]);
  assert.deepEqual(tensors.get('model.norm.weight')?.shape, [64]);
  // 28 header bytes + every float, including the two unused RoPE tables of [512, 4].
  const floats = [...tensors.values()].reduce((n, t) => n + t.size, 0) + 2 * 512 * 4;
  assert.equal(28 + floats * 4, 1_056_540);
});

function rmsNorm(x: Float32Array, gain: Tensor, eps: number): Float32Array {
  let ms = 0;
  for (const v of x) ms += v * v;
  const r = 1 / Math.sqrt(ms / x.length + eps);
  return x.map((v, i) => v * r * gain.f32()[i]);
}

function matVec(w: Tensor, x: Float32Array): Float32Array {
  const [rows, cols] = w.shape;
  const d = w.f32();
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += d[r * cols + c] * x[c];
    out[r] = s;
  }
  return out;
}

test('stories260K: the logits after BOS match the reference top five', async () => {
  // At position 0 attention sees one key, so each head's output is its KV head's v and RoPE is the identity.
  const { llamaConfig: c, tensors } = await loadLlama2cCheckpoint(CHECKPOINT);
  const w = (name: string): Tensor => tensors.get(name) as Tensor;
  let x = w('model.embed_tokens.weight').at(1).f32().slice();
  const group = c.numAttentionHeads / c.numKeyValueHeads;
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    const v = matVec(w(`${p}.self_attn.v_proj.weight`), rmsNorm(x, w(`${p}.input_layernorm.weight`), c.rmsNormEps));
    const heads = new Float32Array(c.hiddenSize);
    for (let h = 0; h < c.numAttentionHeads; h++) {
      heads.set(v.subarray(Math.floor(h / group) * c.headDim, (Math.floor(h / group) + 1) * c.headDim), h * c.headDim);
    }
    x = x.map((value, j) => value + matVec(w(`${p}.self_attn.o_proj.weight`), heads)[j]);
    const xb = rmsNorm(x, w(`${p}.post_attention_layernorm.weight`), c.rmsNormEps);
    const gate = matVec(w(`${p}.mlp.gate_proj.weight`), xb);
    const up = matVec(w(`${p}.mlp.up_proj.weight`), xb);
    const down = matVec(w(`${p}.mlp.down_proj.weight`), gate.map((g, j) => (g / (1 + Math.exp(-g))) * up[j]));
    x = x.map((value, j) => value + down[j]);
  }
  const logits = matVec(w('model.embed_tokens.weight'), rmsNorm(x, w('model.norm.weight'), c.rmsNormEps));
  const top = [...logits.keys()].sort((a, b) => logits[b] - logits[a]).slice(0, 5);
  assert.deepEqual(top, [403, 385, 410, 317, 407]);
  const reference = [17.0235, 15.4062, 13.1083, 12.7692, 12.4181];
  top.forEach((id, k) => assert.ok(Math.abs(logits[id] - reference[k]) < 1e-3, `logit of ${id}: ${logits[id]} vs ${reference[k]}`));
});

/** llama2.c run.c: rotate the interleaved pairs (v[2i], v[2i+1]) of each head. */
function ropeInterleaved(v: Float32Array, headDim: number, pos: number): Float32Array {
  const out = v.slice();
  for (let j = 0; j < v.length; j += 2) {
    const angle = pos / 10000 ** ((j % headDim) / headDim);
    out[j] = v[j] * Math.cos(angle) - v[j + 1] * Math.sin(angle);
    out[j + 1] = v[j] * Math.sin(angle) + v[j + 1] * Math.cos(angle);
  }
  return out;
}

/** Hugging Face Llama: q·cos + rotate_half(q)·sin with rotate_half([x1, x2]) = [−x2, x1] per head. */
function ropeRotateHalf(v: Float32Array, headDim: number, pos: number): Float32Array {
  const out = v.slice();
  const half = headDim / 2;
  for (let h = 0; h < v.length; h += headDim) {
    for (let i = 0; i < half; i++) {
      const angle = pos / 10000 ** ((2 * i) / headDim);
      const [x1, x2] = [v[h + i], v[h + half + i]];
      out[h + i] = x1 * Math.cos(angle) - x2 * Math.sin(angle);
      out[h + half + i] = x2 * Math.cos(angle) + x1 * Math.sin(angle);
    }
  }
  return out;
}

test('permuted wq/wk under rotate_half give the attention scores of llama2.c interleaved RoPE', async () => {
  const bytes = new Uint8Array(await readFile(CHECKPOINT));
  const floats = new Float32Array(bytes.buffer.slice(28));
  // File order: token_embedding [512·64], rms_att [5·64], wq [5·64·64], wk [5·32·64].
  const wqFile = new Tensor('f32', [64, 64], floats.slice(512 * 64 + 5 * 64, 512 * 64 + 5 * 64 + 64 * 64));
  const wkStart = 512 * 64 + 5 * 64 + 5 * 64 * 64;
  const wkFile = new Tensor('f32', [32, 64], floats.slice(wkStart, wkStart + 32 * 64));
  const { tensors } = await readLlama2cCheckpoint(bytesSource(CHECKPOINT, bytes));
  const wqHf = tensors.get('model.layers.0.self_attn.q_proj.weight') as Tensor;
  const wkHf = tensors.get('model.layers.0.self_attn.k_proj.weight') as Tensor;
  const x = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 1.7) + 0.1 * i);
  const y = Float32Array.from({ length: 64 }, (_, i) => Math.cos(i * 0.3) - 0.05 * i);
  const headDim = 8;
  for (const [qPos, kPos] of [
    [0, 0],
    [5, 3],
    [17, 2],
  ]) {
    const qA = ropeInterleaved(matVec(wqFile, x), headDim, qPos);
    const kA = ropeInterleaved(matVec(wkFile, y), headDim, kPos);
    const qB = ropeRotateHalf(matVec(wqHf, x), headDim, qPos);
    const kB = ropeRotateHalf(matVec(wkHf, y), headDim, kPos);
    // Query head h reads KV head floor(h / 2) in both layouts.
    for (let h = 0; h < 8; h++) {
      const kv = Math.floor(h / 2);
      let a = 0;
      let b = 0;
      for (let d = 0; d < headDim; d++) {
        a += qA[h * headDim + d] * kA[kv * headDim + d];
        b += qB[h * headDim + d] * kB[kv * headDim + d];
      }
      assert.ok(Math.abs(a - b) < 1e-4 * (1 + Math.abs(a)), `head ${h}, positions ${qPos}/${kPos}: ${a} vs ${b}`);
    }
  }
});

test('interleavedToHalves moves row 2i + h of each head to row h·headDim/2 + i', () => {
  const w = Tensor.from([[0], [1], [2], [3], [4], [5], [6], [7]]); // 2 heads of 4 rows
  assert.deepEqual(interleavedToHalves(w, 2).toArray(), [[0], [2], [1], [3], [4], [6], [5], [7]]);
});

function legacyHeader(dims: number[]): Uint8Array {
  return new Uint8Array(Int32Array.from(dims).buffer);
}

test('a checkpoint shorter than its header dimensions need is reported with both sizes', async () => {
  const bytes = new Uint8Array(await readFile(CHECKPOINT)).slice(0, 100_000);
  await assert.rejects(readLlama2cCheckpoint(bytesSource('cut.bin', bytes)), (e: unknown) => {
    assert.ok(e instanceof FormatError);
    assert.match(e.message, /cut\.bin: file is truncated: the header \(dim 64, hidden_dim 172.*needs 1056540 bytes but the file has 100000/);
    return true;
  });
  await assert.rejects(readLlama2cCheckpoint(bytesSource('tiny.bin', new Uint8Array(10))), /shorter than the 28-byte llama2\.c header/);
  await assert.rejects(readLlama2cCheckpoint(bytesSource('zero.bin', legacyHeader([0, 1, 1, 1, 1, 1, 1]))), /header field dim is 0/);
  await assert.rejects(readLlama2cCheckpoint(bytesSource('odd.bin', legacyHeader([6, 1, 1, 2, 2, 1, 1]))), /not n_heads 2 × an even head size/);
  const long = new Uint8Array(await readFile(CHECKPOINT));
  const padded = new Uint8Array(long.length + 4);
  padded.set(long);
  await assert.rejects(readLlama2cCheckpoint(bytesSource('long.bin', padded)), /4 bytes after the last weight/);
});

test('a negative vocab_size means an untied classifier follows the RoPE tables', async () => {
  // dim 4, hidden 2, 1 layer, 2 heads of size 2, 1 kv head, vocab 3 (untied), seq_len 2.
  const dims = [4, 2, 1, 2, 1, -3, 2];
  const counts = [3 * 4, 4, 16, 8, 8, 16, 4, 8, 8, 8, 4, 2, 2, 3 * 4];
  const total = counts.reduce((a, b) => a + b, 0);
  const body = Float32Array.from({ length: total }, (_, i) => i);
  const bytes = new Uint8Array(28 + total * 4);
  bytes.set(legacyHeader(dims));
  bytes.set(new Uint8Array(body.buffer), 28);
  const { config, tensors } = await readLlama2cCheckpoint(bytesSource('untied.bin', bytes));
  assert.equal(config.sharedClassifier, false);
  assert.equal(config.vocabSize, 3);
  assert.deepEqual(Array.from((tensors.get('lm_head.weight') as Tensor).data), Array.from(body.slice(total - 12)));
  assert.deepEqual(Array.from((tensors.get('model.norm.weight') as Tensor).data), Array.from(body.slice(total - 16 - 4, total - 16)));
});

test('version 1 ("ak42") checkpoints are read; quantised version 2 is refused', async () => {
  const dims = [4, 2, 1, 2, 1, 3, 2];
  const counts = [4, 4, 4, 3 * 4, 16, 8, 8, 16, 8, 8, 8];
  const total = counts.reduce((a, b) => a + b, 0);
  const bytes = new Uint8Array(256 + total * 4);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, 0x616b3432, true);
  view.setInt32(4, 1, true);
  dims.forEach((d, i) => view.setInt32(8 + 4 * i, d, true));
  view.setUint8(36, 1);
  bytes.set(new Uint8Array(Float32Array.from({ length: total }, (_, i) => i).buffer), 256);
  const { config, tensors } = await readLlama2cCheckpoint(bytesSource('v1.bin', bytes));
  assert.equal(config.version, 1);
  assert.equal(config.sharedClassifier, true);
  assert.deepEqual(Array.from((tensors.get('model.layers.0.input_layernorm.weight') as Tensor).data), [0, 1, 2, 3]);
  assert.deepEqual(Array.from((tensors.get('model.norm.weight') as Tensor).data), [8, 9, 10, 11]);
  assert.deepEqual(Array.from((tensors.get('model.embed_tokens.weight') as Tensor).data).slice(0, 2), [12, 13]);
  view.setInt32(4, 2, true);
  await assert.rejects(readLlama2cCheckpoint(bytesSource('v2.bin', bytes)), UnsupportedError);
});

test('tok512.bin: 512 pieces with their scores', async () => {
  const tokenizer = await loadLlama2cTokenizer(join(STORIES, 'tok512.bin'), 512);
  assert.equal(tokenizer.maxTokenLength, 7);
  assert.equal(tokenizer.vocab.length, 512);
  assert.deepEqual(tokenizer.vocab.slice(0, 4), ['<unk>', '\n<s>\n', '\n</s>\n', '<0x00>']);
  assert.equal(tokenizer.vocab[258], '<0xFF>');
  assert.deepEqual([tokenizer.vocab[403], tokenizer.vocab[407]], [' Once', ' upon']);
  assert.deepEqual([tokenizer.scores[260], tokenizer.scores[403]], [-1, -144]);
  assert.deepEqual(Array.from(tokenizer.pieces[511]), [0xe2, 0x80, 0x8a]);
});

test('a damaged tokenizer.bin is reported', async () => {
  const bytes = new Uint8Array(await readFile(join(STORIES, 'tok512.bin')));
  assert.throws(() => parseLlama2cTokenizer(bytes.slice(0, 1000), 't.bin'), /t\.bin: file is truncated inside/);
  assert.throws(() => parseLlama2cTokenizer(bytes, 't.bin', 600), /holds 512 tokens but the model's vocab_size is 600/);
  assert.throws(() => parseLlama2cTokenizer(bytes, 't.bin', 500), /bytes follow the last of 500 tokens/);
  const bad = bytes.slice();
  new DataView(bad.buffer).setInt32(8, 99, true);
  assert.throws(() => parseLlama2cTokenizer(bad, 't.bin'), /token 0 has length 99, outside 0\.\.max_token_length \(7\)/);
});
