import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { probeLoad } from '../../bench/load-probe.js';
import { modelInfo } from '../../src/hub/info.js';
import type { Checkpoint } from '../../src/io/checkpoint.js';
import { BLOCK_ELEMENTS, predictLoadMemory } from '../../src/io/load-memory.js';
import { openModelFolder } from '../../src/io/model-folder.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { WIDEN_CHUNK, writeSafetensors, type SafetensorsDType, type TensorInfo } from '../../src/io/safetensors.js';
import { modelFromConfig } from '../../src/models/registry.js';
import { Int8Matrix } from '../../src/nn/int8.js';
import { Weights } from '../../src/nn/weights.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { HF_TINY } from './shared.js';

function info(name: string, dtype: SafetensorsDType, shape: number[]): TensorInfo {
  return { name, dtype, shape, dataOffsets: [0, 0] };
}

test('a bf16 Llama in two shards: embeddings and norms widen to f32, matrices follow linearDtype, one widening buffer per shard', () => {
  const [V, d, f] = [1000, 64, 256];
  const shard1 = [info('model.embed_tokens.weight', 'BF16', [V, d]), info('model.layers.0.self_attn.q_proj.weight', 'BF16', [d, d])];
  const shard2 = [info('model.layers.0.mlp.up_proj.weight', 'BF16', [f, d]), info('model.norm.weight', 'BF16', [d]), info('lm_head.weight', 'BF16', [V, d])];
  const load = predictLoadMemory([shard1, shard2], 'llama');
  const f32Held = 4 * (V * d + d + V * d); // embed_tokens, norm and lm_head are read with get(): f32 in every mode
  const matrices = d * d + f * d;
  assert.deepEqual(load.f32, { resident: f32Held + 4 * matrices, transient: 2 * 2 * WIDEN_CHUNK, transientTensor: 'model.embed_tokens.weight', peak: f32Held + 4 * matrices + 4 * WIDEN_CHUNK });
  // bf16 matrices are read as stored; the f32 tables still widen in both shards.
  assert.equal(load.bf16.resident, f32Held + 2 * matrices);
  assert.equal(load.bf16.transient, 4 * WIDEN_CHUNK);
  // int8: one byte a weight plus a scale per row; whole rows per block, up_proj's 256 rows of 64 fit one block.
  assert.equal(load.int8.resident, f32Held + matrices + 4 * (d + f));
  assert.equal(load.int8.transient, 4 * f * d + 4 * WIDEN_CHUNK);
});

test('an f32 checkpoint loaded as f32 needs no buffer; unread buffers cost nothing; other file dtypes are read whole', () => {
  const tensors = [
    info('transformer.wte.weight', 'F32', [500, 16]),
    info('transformer.h.0.attn.bias', 'F32', [1, 1, 1024, 1024]),
    info('transformer.h.0.attn.c_attn.weight', 'F32', [16, 48]),
    info('bert.embeddings.position_ids', 'I64', [1, 512]),
  ];
  const gpt2 = predictLoadMemory([tensors], 'gpt2');
  assert.deepEqual(gpt2.f32, { resident: 4 * (500 * 16 + 16 * 48), transient: 0, transientTensor: null, peak: 4 * (500 * 16 + 16 * 48) });
  // bf16: wte is a matrix (GPT-2's head), converted in one block; c_attn goes through the transposing buffer.
  assert.equal(gpt2.bf16.resident, 2 * (500 * 16 + 16 * 48));
  assert.equal(gpt2.bf16.transient, 4 * 500 * 16 + 4 * 16 * 48);
  assert.equal(gpt2.bf16.transientTensor, 'transformer.h.0.attn.c_attn.weight');
  // A stored copy of a tied head is left unread; an untied head is a matrix like wte.
  const head = info('lm_head.weight', 'F32', [500, 16]);
  assert.equal(predictLoadMemory([[...tensors, head]], 'gpt2').bf16.resident, gpt2.bf16.resident);
  assert.equal(predictLoadMemory([[...tensors, head]], 'gpt2', { tieWordEmbeddings: false }).bf16.resident, gpt2.bf16.resident + 2 * 500 * 16);
  const f64 = predictLoadMemory([[info('x.bias', 'F64', [1000])]], 'bert');
  assert.deepEqual(f64.f32, { resident: 4000, transient: 8000 + 4000, transientTensor: 'x.bias', peak: 16000 });
});

test('a tensor larger than a block is converted through one block, not a copy of itself', () => {
  const big = [info('model.layers.0.mlp.down_proj.weight', 'F32', [4096, 4096])];
  const load = predictLoadMemory([big], 'llama');
  assert.equal(load.bf16.transient, 4 * BLOCK_ELEMENTS);
  assert.equal(load.int8.transient, 4 * BLOCK_ELEMENTS);
  assert.equal(load.int8.resident, 4096 * 4096 + 4 * 4096);
});

/** A GPT-2 layout small enough to write and load in about a second: ≈ 84 MB of f32 (measured peaks land 2–4 MB above the prediction). */
async function writeSmallGpt2(dir: string): Promise<void> {
  const [V, d, L, P] = [16384, 512, 4, 256];
  const tensors = new Map<string, Tensor>();
  let state = 7;
  const add = (name: string, shape: number[]): void => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      data[i] = (state / 2 ** 32 - 0.5) * 0.1;
    }
    tensors.set(`transformer.${name}`, new Tensor('f32', shape, data));
  };
  add('wte.weight', [V, d]);
  add('wpe.weight', [P, d]);
  for (let l = 0; l < L; l++) {
    for (const n of ['ln_1', 'ln_2']) for (const p of ['weight', 'bias']) add(`h.${l}.${n}.${p}`, [d]);
    for (const [n, i, o] of [['attn.c_attn', d, 3 * d], ['attn.c_proj', d, d], ['mlp.c_fc', d, 4 * d], ['mlp.c_proj', 4 * d, d]] as const) {
      add(`h.${l}.${n}.weight`, [i, o]);
      add(`h.${l}.${n}.bias`, [o]);
    }
  }
  add('ln_f.weight', [d]);
  add('ln_f.bias', [d]);
  await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'gpt2', vocab_size: V, n_embd: d, n_layer: L, n_head: 8, n_positions: P }));
  await writeSafetensors(nodeFileSystem, join(dir, 'model.safetensors'), tensors);
}

test('the peak info predicts is the peak a fresh process measures loading the checkpoint, within 10% + 8 MB', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-load-memory-'));
  try {
    await mkdir(dir, { recursive: true });
    await writeSmallGpt2(dir);
    const predicted = (await modelInfo(dir)).memory?.load;
    assert.ok(predicted);
    for (const linearDtype of ['f32', 'bf16', 'int8'] as const) {
      const { peak } = probeLoad(dir, linearDtype, 'lazy');
      const expected = predicted[linearDtype].peak;
      // Below: the loader holds less than the model keeps (impossible unless the prediction is wrong). Above: the JS heap and small garbage, a few MB.
      assert.ok(peak >= 0.95 * expected, `${linearDtype}: measured ${(peak / 1e6).toFixed(1)} MB, predicted ${(expected / 1e6).toFixed(1)} MB`);
      assert.ok(peak <= 1.1 * expected + 8e6, `${linearDtype}: measured ${(peak / 1e6).toFixed(1)} MB, predicted ${(expected / 1e6).toFixed(1)} MB`);
    }
    // int8 keeps about a quarter of the f32 bytes: the prediction is not one number for every mode.
    assert.ok(predicted.int8.peak < 0.35 * predicted.f32.peak);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('for every fixture family and linearDtype, the predicted resident bytes are the bytes Weights hands the model', async () => {
  const bytesOf = (w: unknown): number =>
    w instanceof Int8Matrix ? w.q.byteLength + w.scales.byteLength : (w as Tensor).data.byteLength;
  const proto = Weights.prototype as unknown as Record<'get' | 'matrix' | 'transposedMatrix', (...args: unknown[]) => unknown>;
  const originals = { get: proto.get, matrix: proto.matrix, transposedMatrix: proto.transposedMatrix };
  let handed = 0;
  for (const method of ['get', 'matrix', 'transposedMatrix'] as const) {
    proto[method] = function (this: Weights, ...args: unknown[]) {
      const out = originals[method].apply(this, args);
      handed += bytesOf(out);
      return out;
    };
  }
  try {
    for (const dir of ['bert', 'bert/classification', 'gpt2', 'llama', 't5', 't5/gated-gelu', 'bart', 'marian', 'vanilla']) {
      const folder = await openModelFolder(nodeFileSystem, join(HF_TINY, dir));
      const checkpoint = folder.checkpoint as Checkpoint;
      const predicted = predictLoadMemory([checkpoint.names().map((n) => checkpoint.tensorInfo(n))], folder.config.modelType);
      for (const linearDtype of ['f32', 'bf16', 'int8'] as const) {
        if (dir === 'vanilla' && linearDtype !== 'f32') continue;
        handed = 0;
        modelFromConfig(folder.config, Weights.from(checkpoint, dir, { linearDtype }));
        assert.equal(handed, predicted[linearDtype].resident, `${dir} ${linearDtype}`);
      }
    }
  } finally {
    Object.assign(proto, originals);
  }
});
