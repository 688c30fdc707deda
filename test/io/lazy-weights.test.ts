import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, FormatError, UnsupportedError, WeightError } from '../../src/errors.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { openModelFolder } from '../../src/io/model-folder.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { openSafetensorsBytes, readSafetensors, serializeSafetensors, type GetOptions, type TensorReader } from '../../src/io/safetensors.js';
import { MemoryFileSystem, type FileSystem } from '../../src/io/source.js';
import { loadModel, modelFromConfig } from '../../src/models/registry.js';
import { Int8Matrix } from '../../src/nn/int8.js';
import { Weights, type LinearDtype } from '../../src/nn/weights.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { HF_TINY } from './shared.js';

const FIXTURES = ['bert', 'bert/classification', 'gpt2', 'llama', 't5', 't5/gated-gelu', 'bart', 'marian', 'vanilla'];
const DTYPES: readonly LinearDtype[] = ['f32', 'bf16', 'int8'];

/** A TensorReader that counts the reads of each tensor (a pass of block reads counts once, at its first element). */
function counting(reader: TensorReader): TensorReader & { reads: Map<string, number> } {
  const reads = new Map<string, number>();
  const count = (name: string): void => void reads.set(name, (reads.get(name) ?? 0) + 1);
  return {
    reads,
    name: reader.name,
    canReadSync: reader.canReadSync,
    names: () => reader.names(),
    has: (name) => reader.has(name),
    tensorInfo: (name) => reader.tensorInfo(name),
    getSync: (name: string, options?: GetOptions) => {
      count(name);
      return reader.getSync(name, options);
    },
    readF32Sync: (name, begin, end, into) => {
      if (begin === 0) count(name);
      return reader.readF32Sync(name, begin, end, into);
    },
  };
}

async function gpt2Logits(fs: FileSystem, dir: string, linearDtype: LinearDtype): Promise<Float32Array> {
  const loaded = await loadModel(fs, dir, { linearDtype });
  assert.equal(loaded.family, 'decoder-only');
  const ids = [3, 14, 15, 92, 65, 35];
  return (loaded.model as { forward(t: Tensor): { logits: Tensor } }).forward(Tensor.i32(ids, [1, ids.length])).logits.f32();
}

test('every fixture loaded lazily reads each tensor at most once and leaves the same tensors unused as an eager load', async () => {
  for (const dir of FIXTURES) {
    const folder = await openModelFolder(nodeFileSystem, join(HF_TINY, dir));
    const checkpoint = folder.checkpoint as Checkpoint;
    const eagerWeights = Weights.from(await checkpoint.loadAll(), dir);
    modelFromConfig(folder.config, eagerWeights);
    for (const linearDtype of DTYPES) {
      if (dir === 'vanilla' && linearDtype !== 'f32') continue;
      const reader = counting(checkpoint);
      const lazy = Weights.from(reader, dir, { linearDtype });
      modelFromConfig(folder.config, lazy);
      const twice = [...reader.reads].filter(([, n]) => n > 1);
      assert.deepEqual(twice, [], `${dir} ${linearDtype}: tensors read more than once`);
      assert.ok(reader.reads.size > 0, dir);
      assert.deepEqual(lazy.unused(), eagerWeights.unused(), `${dir} ${linearDtype}`);
      assert.equal(reader.reads.size + lazy.unused().length, checkpoint.names().length, `${dir}: only the unused tensors stay unread`);
    }
  }
});

test('GPT-2 read lazily gives bit-identical logits to the eager map under f32, bf16 and int8', async () => {
  const dir = join(HF_TINY, 'gpt2');
  const folder = await openModelFolder(nodeFileSystem, dir);
  const tensors = await readSafetensors(nodeFileSystem, join(dir, 'model.safetensors'));
  const ids = [3, 14, 15, 92, 65, 35];
  for (const linearDtype of DTYPES) {
    const eager = modelFromConfig(folder.config, Weights.from(tensors, dir, { linearDtype }));
    const lazy = await gpt2Logits(nodeFileSystem, dir, linearDtype);
    const expected = (eager.model as { forward(t: Tensor): { logits: Tensor } }).forward(Tensor.i32(ids, [1, ids.length])).logits.f32();
    assert.equal(lazy.length, expected.length);
    assert.deepEqual(lazy, expected, linearDtype);
  }
});

test('a bf16 checkpoint read lazily: matrices stay bf16 as stored, others widen to f32, int8 quantizes the bf16 values', async () => {
  const w = new Float32Array([0.5, -1.25, 3, 0.0078125, 2, -4]);
  const bytes = serializeSafetensors({ 'lin.weight': new Tensor('f32', [2, 3], w).to('bf16'), 'norm.weight': new Tensor('f32', [3], w.slice(0, 3)).to('bf16') });
  const file = await openSafetensorsBytes(bytes, 'mem.safetensors');
  const bf16 = Weights.from(file, 'mem', { linearDtype: 'bf16' });
  const m = bf16.matrix('lin.weight', [2, 3]) as Tensor;
  assert.equal(m.dtype, 'bf16');
  assert.deepEqual([...m.f32()], [...w]);
  const norm = bf16.get('norm.weight', [3]);
  assert.equal(norm.dtype, 'f32');
  assert.deepEqual([...norm.f32()], [0.5, -1.25, 3]);
  const int8 = Weights.from(file, 'mem', { linearDtype: 'int8' }).matrix('lin.weight', [2, 3]) as Int8Matrix;
  assert.ok(int8 instanceof Int8Matrix);
  assert.deepEqual([...int8.scales], [Math.fround(3 / 127), Math.fround(4 / 127)]);
  assert.deepEqual([...int8.q], [21, -53, 127, 0, 64, -127]);
});

test('a missing tensor and a wrong shape are the same WeightErrors lazily as eagerly, and a wrong shape reads nothing', async () => {
  const file = await openSafetensorsBytes(serializeSafetensors({ 'h.0.weight': Tensor.zeros([4, 2]), 'h.0.bias': Tensor.zeros([4]) }), 'ckpt.safetensors');
  const eager = Weights.from(await file.loadAll(), 'ckpt.safetensors');
  const reader = counting(file);
  const lazy = Weights.from(reader, 'ckpt.safetensors');
  for (const w of [eager, lazy]) {
    assert.throws(
      () => w.scope('h.0').get('weight', [2, 4]),
      (e: unknown) => e instanceof WeightError && e.message === 'ckpt.safetensors: tensor "h.0.weight" has shape [4, 2], expected [2, 4]',
    );
    assert.throws(
      () => w.scope('h.0').matrix('proj', [4, 2]),
      (e: unknown) => e instanceof WeightError && e.message === 'ckpt.safetensors: tensor "h.0.proj" is missing (tensors under "h.0.": h.0.bias, h.0.weight, …)',
    );
    assert.equal(w.has('h.0.bias'), true);
    assert.equal(w.has('h.1.bias'), false);
  }
  assert.equal(reader.reads.size, 0);
  assert.deepEqual(lazy.scope('h.0').get('bias', [4]).shape, [4]);
  assert.deepEqual(lazy.unused(), ['h.0.weight']);
});

test('a checkpoint truncated after its header was read fails at the tensor with a FormatError naming the file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-lazy-'));
  for (const f of ['config.json', 'model.safetensors']) await copyFile(join(HF_TINY, 'gpt2', f), join(dir, f));
  const folder = await openModelFolder(nodeFileSystem, dir);
  const path = join(dir, 'model.safetensors');
  await truncate(path, (await readFile(path)).length - 100);
  assert.throws(
    () => modelFromConfig(folder.config, Weights.from(folder.checkpoint as Checkpoint, path)),
    (e: unknown) => e instanceof FormatError && e.message.includes(path) && /truncated/.test(e.message),
  );
  await assert.rejects(loadModel(nodeFileSystem, dir), (e: unknown) => e instanceof FormatError && /truncated|past the end/.test(e.message));
});

test('a bad header fails loadModel with a FormatError before any model is built', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-lazy-'));
  await copyFile(join(HF_TINY, 'gpt2', 'config.json'), join(dir, 'config.json'));
  const header = new TextEncoder().encode('[1, 2]  ');
  const bytes = new Uint8Array(8 + header.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
  bytes.set(header, 8);
  await writeFile(join(dir, 'model.safetensors'), bytes);
  await assert.rejects(loadModel(nodeFileSystem, dir), (e: unknown) => e instanceof FormatError && /must be a JSON object/.test(e.message));
});

test('a sharded checkpoint loads lazily to the same logits as the single file', async () => {
  const source = join(HF_TINY, 'gpt2');
  const tensors = await readSafetensors(nodeFileSystem, join(source, 'model.safetensors'));
  const names = [...tensors.keys()];
  const half = Math.ceil(names.length / 2);
  const shards: Record<string, string[]> = { 'model-00001-of-00002.safetensors': names.slice(0, half), 'model-00002-of-00002.safetensors': names.slice(half) };
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-lazy-shards-'));
  await mkdir(dir, { recursive: true });
  await copyFile(join(source, 'config.json'), join(dir, 'config.json'));
  const weightMap: Record<string, string> = {};
  for (const [file, members] of Object.entries(shards)) {
    await writeFile(join(dir, file), serializeSafetensors(new Map(members.map((n) => [n, tensors.get(n) as Tensor]))));
    for (const n of members) weightMap[n] = file;
  }
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  for (const linearDtype of ['f32', 'int8'] as const) {
    assert.deepEqual(await gpt2Logits(nodeFileSystem, dir, linearDtype), await gpt2Logits(nodeFileSystem, source, linearDtype), linearDtype);
  }
});

test('weights that can only be read asynchronously are refused lazily and loaded whole by loadModel', async () => {
  const dir = join(HF_TINY, 'gpt2');
  const memory = new MemoryFileSystem();
  for (const f of ['config.json', 'model.safetensors']) memory.set(`/m/${f}`, await readFile(join(dir, f)));
  const asyncOnly: FileSystem = Object.assign(Object.create(memory) as FileSystem, {
    source: (path: string) => {
      const { name, size, read } = memory.source(path);
      return { name, size, read };
    },
  });
  const checkpoint = await Checkpoint.open(asyncOnly, '/m/model.safetensors');
  assert.equal(checkpoint.canReadSync, false);
  assert.throws(() => Weights.from(checkpoint, '/m/model.safetensors'), (e: unknown) => e instanceof ConfigError && /not local/.test(e.message));
  // fromCheckpoint reads it whole instead; over a local file it stays lazy (nothing read yet).
  const whole = await Weights.fromCheckpoint(checkpoint);
  assert.deepEqual(whole.get('transformer.wpe.weight').shape, checkpoint.tensorInfo('transformer.wpe.weight').shape);
  const local = counting(await Checkpoint.open(nodeFileSystem, join(dir, 'model.safetensors')));
  const lazy = await Weights.fromCheckpoint({ ...local, loadAll: () => assert.fail('a local checkpoint is not read whole') });
  assert.equal(local.reads.size, 0);
  lazy.get('transformer.wpe.weight');
  assert.deepEqual([...local.reads.keys()], ['transformer.wpe.weight']);
  assert.deepEqual(await gpt2Logits(asyncOnly, '/m', 'bf16'), await gpt2Logits(nodeFileSystem, dir, 'bf16'));
});

/** A [rows, cols] matrix of ordinary values with a few exact ties and large magnitudes, stored as `dtype`. */
function matrixOf(rows: number, cols: number, dtype: 'f32' | 'bf16' | 'f16'): Tensor {
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37) * (1 + (i % 7)) + (i % 97 === 0 ? 0.5 : 0);
  return new Tensor('f32', [rows, cols], data).to(dtype);
}

test('block-by-block conversions equal whole-tensor conversions bit for bit, across block boundaries, for f32, f16 and bf16 files', async () => {
  // 300 × 1000 = 300,000 elements: more than one 262,144-element block, with a partial last block of rows.
  for (const stored of ['f32', 'bf16', 'f16'] as const) {
    const tensors = new Map([
      ['lin.weight', matrixOf(300, 1000, stored)],
      ['conv.weight', matrixOf(1000, 300, stored)],
      ['row.weight', matrixOf(2, 300_000, stored)],
    ]);
    const file = await openSafetensorsBytes(serializeSafetensors(tensors), `${stored}.safetensors`);
    for (const linearDtype of DTYPES) {
      const eager = Weights.from(tensors, 'mem', { linearDtype });
      const lazy = Weights.from(file, 'mem', { linearDtype });
      const same = (a: unknown, b: unknown, what: string): void => {
        if (a instanceof Int8Matrix && b instanceof Int8Matrix) {
          assert.deepEqual(a.shape, b.shape, what);
          assert.deepEqual(a.q, b.q, what);
          assert.deepEqual(a.scales, b.scales, what);
        } else {
          assert.ok(a instanceof Tensor && b instanceof Tensor, what);
          assert.equal(a.dtype, b.dtype, what);
          assert.deepEqual(a.shape, b.shape, what);
          assert.deepEqual(a.data, b.data, what);
        }
      };
      const what = `${stored} file, ${linearDtype}`;
      same(lazy.matrix('lin.weight', [300, 1000]), eager.matrix('lin.weight', [300, 1000]), `${what}: matrix`);
      same(lazy.matrix('row.weight', [2, 300_000]), eager.matrix('row.weight', [2, 300_000]), `${what}: rows longer than a block`);
      same(lazy.get('lin.weight'), eager.get('lin.weight'), `${what}: get`);
      same(lazy.transposedMatrix('conv.weight', [1000, 300]), eager.transposedMatrix('conv.weight', [1000, 300]), `${what}: transposed`);
      // The transposing buffer is reused: a second, smaller matrix must not see the first one's values.
      same(lazy.transposedMatrix('lin.weight', [300, 1000]), eager.transposedMatrix('lin.weight', [300, 1000]), `${what}: transposed again`);
    }
  }
});

test('readF32Sync reads any element range of F32, F16 and BF16, and refuses other dtypes and ranges past the end', async () => {
  const bytes = serializeSafetensors({ a: matrixOf(3, 5, 'f32'), b: matrixOf(3, 5, 'f16'), c: matrixOf(3, 5, 'bf16'), i: Tensor.i32([1, 2], [2]) });
  const file = await openSafetensorsBytes(bytes, 'r.safetensors');
  for (const name of ['a', 'b', 'c']) {
    const whole = file.getSync(name).f32();
    const part = new Float32Array(7);
    assert.deepEqual(file.readF32Sync(name, 4, 11, part), whole.slice(4, 11), name);
  }
  assert.throws(() => file.readF32Sync('i', 0, 2, new Float32Array(2)), (e: unknown) => e instanceof UnsupportedError && /"i" is I32/.test(e.message));
  assert.throws(() => file.readF32Sync('a', 10, 16, new Float32Array(6)), (e: unknown) => e instanceof WeightError && /r\.safetensors.*"a" has 15 elements/.test(e.message));
  assert.throws(() => file.readF32Sync('a', 0, 4, new Float32Array(3)), (e: unknown) => e instanceof WeightError);
});

test('a tied Llama checkpoint that also stores lm_head.weight reads it once and leaves nothing unused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'glassformer-lazy-tied-'));
  const config = JSON.parse(await readFile(join(HF_TINY, 'llama', 'config.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, tie_word_embeddings: true }));
  await copyFile(join(HF_TINY, 'llama', 'model.safetensors'), join(dir, 'model.safetensors'));
  const folder = await openModelFolder(nodeFileSystem, dir);
  const reader = counting(folder.checkpoint as Checkpoint);
  const weights = Weights.from(reader, dir);
  modelFromConfig(folder.config, weights);
  assert.equal(reader.reads.get('lm_head.weight'), 1);
  assert.deepEqual(weights.unused(), []);
});
