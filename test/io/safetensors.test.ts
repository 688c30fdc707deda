import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FormatError, UnsupportedError, WeightError } from '../../src/errors.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { loadSafetensors, openCheckpoint, openSafetensors, saveSafetensors } from '../../src/io/node.js';
import { MemoryFileSystem } from '../../src/io/source.js';
import { openSafetensorsBytes, serializeSafetensors, type RawTensor } from '../../src/io/safetensors.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { HF_FAMILIES, HF_TINY } from './shared.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glassformer-io-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A safetensors file from a header object and a buffer length, for crafting damaged files. */
function craft(header: unknown, bufferBytes: number, headerText?: string): Uint8Array {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + bufferBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

async function writeTemp(name: string, bytes: Uint8Array): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return path;
}

async function rejectsFormat(bytes: Uint8Array, pattern: RegExp): Promise<void> {
  const path = await writeTemp(`damaged-${Math.random().toString(36).slice(2)}.safetensors`, bytes);
  await assert.rejects(openSafetensors(path), (error: unknown) => {
    assert.ok(error instanceof FormatError, `expected FormatError, got ${String(error)}`);
    assert.equal(error.file, path);
    assert.match(error.message, pattern);
    return true;
  });
}

test('bert fixture: every tensor has its recorded name, shape and F32 dtype', async () => {
  const file = await openSafetensors(join(HF_TINY, 'bert', 'model.safetensors'));
  assert.deepEqual(file.metadata, { format: 'pt' });
  const names = file.names();
  assert.ok(names.includes('bert.embeddings.word_embeddings.weight'));
  assert.ok(!names.includes('cls.predictions.decoder.weight'), 'the tied decoder weight is not saved');
  assert.deepEqual(file.tensorInfo('bert.embeddings.word_embeddings.weight').shape, [128, 32]);
  assert.deepEqual(file.tensorInfo('bert.embeddings.position_embeddings.weight').shape, [64, 32]);
  assert.deepEqual(file.tensorInfo('bert.encoder.layer.1.intermediate.dense.weight').shape, [64, 32]);
  assert.deepEqual(file.tensorInfo('cls.predictions.bias').shape, [128]);
  const t = await file.get('bert.embeddings.word_embeddings.weight', { expectShape: [128, 32] });
  assert.equal(t.dtype, 'f32');
  // The same bytes, decoded independently of the typed-array path.
  const raw = await file.readRaw('bert.embeddings.word_embeddings.weight');
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (const i of [0, 1, 31, 32, 4095]) assert.equal(t.data[i], view.getFloat32(i * 4, true));
});

test('expected.safetensors of every family matches the shape index in expected.json', async () => {
  for (const family of [...HF_FAMILIES, 'vanilla']) {
    const expected = JSON.parse(await readFile(join(HF_TINY, family, 'expected.json'), 'utf8')) as { tensors: Record<string, number[]> };
    const tensors = await loadSafetensors(join(HF_TINY, family, 'expected.safetensors'));
    assert.deepEqual([...tensors.keys()].sort(), Object.keys(expected.tensors).sort(), family);
    for (const [name, shape] of Object.entries(expected.tensors)) {
      assert.deepEqual(tensors.get(name)?.shape, shape, `${family}: ${name}`);
      assert.ok(tensors.get(name)?.f32().every((v) => !Number.isNaN(v)), `${family}: ${name} has no NaN`);
    }
  }
});

test('attention probabilities read from expected.safetensors sum to one over the keys', async () => {
  const attentions = (await loadSafetensors(join(HF_TINY, 'bert', 'expected.safetensors'))).get('attentions.0') as Tensor;
  const keys = attentions.shape[3];
  const data = attentions.f32();
  for (let row = 0; row < data.length / keys; row++) {
    let sum = 0;
    for (let k = 0; k < keys; k++) sum += data[row * keys + k];
    assert.ok(Math.abs(sum - 1) < 1e-5, `row ${row} sums to ${sum}`);
  }
});

test('re-serializing a Hugging Face file reproduces it byte for byte', async () => {
  for (const family of HF_FAMILIES) {
    const path = join(HF_TINY, family, 'model.safetensors');
    const original = new Uint8Array(await readFile(path));
    const file = await openSafetensors(path);
    assert.deepEqual(serializeSafetensors(await file.loadAll(), file.metadata), original, family);
  }
});

test('every glassformer dtype round-trips through a file on disk', async () => {
  const tensors = {
    'weights.f32': Tensor.f32([1.5, -2.25, 3e-8, 65504, -0, Infinity], [2, 3]),
    'weights.f16': Tensor.f32([1, -0.5, 65504, 6e-8]).to('f16'),
    'weights.bf16': Tensor.f32([1, -3.140625, 1e30, -1e-30], [2, 2]).to('bf16'),
    'ids.i32': Tensor.i32([0, -1, 2147483647, -2147483648]),
    scalar: Tensor.f32([7], []),
    empty: Tensor.f32([], [0, 4]),
  };
  const path = join(dir, 'roundtrip.safetensors');
  await saveSafetensors(path, tensors, { format: 'pt', note: 'round trip' });
  const file = await openSafetensors(path);
  assert.deepEqual(file.metadata, { format: 'pt', note: 'round trip' });
  assert.equal(file.header.dataStart % 8, 0, 'the header is padded to 8 bytes');
  for (const [name, t] of Object.entries(tensors)) {
    const back = await file.get(name);
    assert.equal(back.dtype, t.dtype, name);
    assert.deepEqual(back.shape, t.shape, name);
    assert.deepEqual(Array.from(back.data), Array.from(t.data), name);
  }
  // Wider dtypes first, then names, as the reference writer lays them out.
  assert.deepEqual(file.names(), ['empty', 'scalar', 'weights.f32', 'ids.i32', 'weights.bf16', 'weights.f16']);
});

function raw(dtype: RawTensor['dtype'], shape: number[], fill: (view: DataView) => void, bytes: number): RawTensor {
  const out = new Uint8Array(bytes);
  fill(new DataView(out.buffer));
  return { dtype, shape, bytes: out };
}

test('file dtypes outside glassformer widen or narrow to f32 and i32', async () => {
  const bytes = serializeSafetensors({
    f64: raw('F64', [2], (v) => (v.setFloat64(0, 0.1, true), v.setFloat64(8, -1e300, true)), 16),
    i64: raw('I64', [2], (v) => (v.setBigInt64(0, -5n, true), v.setBigInt64(8, 2147483647n, true)), 16),
    u64: raw('U64', [1], (v) => v.setBigUint64(0, 42n, true), 8),
    u32: raw('U32', [1], (v) => v.setUint32(0, 7, true), 4),
    i16: raw('I16', [2], (v) => (v.setInt16(0, -300, true), v.setInt16(2, 300, true)), 4),
    u16: raw('U16', [1], (v) => v.setUint16(0, 65535, true), 2),
    i8: raw('I8', [2], (v) => (v.setInt8(0, -128), v.setInt8(1, 127)), 2),
    u8: raw('U8', [2], (v) => (v.setUint8(0, 255), v.setUint8(1, 1)), 2),
    bool: raw('BOOL', [3], (v) => (v.setUint8(0, 1), v.setUint8(2, 1)), 3),
    // 0x38 = 1.0 and 0x7f = NaN in e4m3fn; 0x3c = 1.0 and 0xc0 = -2 in e5m2.
    e4m3: raw('F8_E4M3', [4], (v) => [0x38, 0x7f, 0x01, 0xb8].forEach((b, i) => v.setUint8(i, b)), 4),
    e5m2: raw('F8_E5M2', [2], (v) => [0x3c, 0xc0].forEach((b, i) => v.setUint8(i, b)), 2),
  });
  const file = await openSafetensorsBytes(bytes);
  const values = async (name: string): Promise<number[]> => Array.from((await file.get(name)).data);
  assert.deepEqual(await values('f64'), [Math.fround(0.1), -Infinity]);
  assert.equal((await file.get('f64')).dtype, 'f32');
  assert.deepEqual(await values('i64'), [-5, 2147483647]);
  assert.equal((await file.get('i64')).dtype, 'i32');
  assert.deepEqual(await values('u64'), [42]);
  assert.deepEqual(await values('u32'), [7]);
  assert.deepEqual(await values('i16'), [-300, 300]);
  assert.deepEqual(await values('u16'), [65535]);
  assert.deepEqual(await values('i8'), [-128, 127]);
  assert.deepEqual(await values('u8'), [255, 1]);
  assert.deepEqual(await values('bool'), [1, 0, 1]);
  const e4m3 = await values('e4m3');
  assert.equal(e4m3[0], 1);
  assert.ok(Number.isNaN(e4m3[1]));
  assert.equal(e4m3[2], 2 ** -9);
  assert.equal(e4m3[3], -1);
  assert.deepEqual(await values('e5m2'), [1, -2]);
  assert.deepEqual(Array.from(await file.readRaw('u8')), [255, 1]);
});

test('an I64 value outside the i32 range is refused, naming the tensor', async () => {
  const bytes = serializeSafetensors({ big: raw('I64', [1], (v) => v.setBigInt64(0, 1n << 40n, true), 8) });
  const file = await openSafetensorsBytes(bytes, 'ids.safetensors');
  await assert.rejects(file.get('big'), (e: unknown) => e instanceof UnsupportedError && /ids\.safetensors.*"big".*1099511627776/.test(e.message));
});

test('a file shorter than 8 bytes is reported as truncated', async () => {
  await rejectsFormat(new Uint8Array(5), /truncated: 5 bytes/);
});

test('a header length past the end of the file is reported', async () => {
  const bytes = craft({}, 0);
  new DataView(bytes.buffer).setBigUint64(0, 1000n, true);
  await rejectsFormat(bytes, /header length 1000 runs past the end of the file/);
});

test('a file cut inside the byte buffer is reported as truncated', async () => {
  const whole = serializeSafetensors({ a: Tensor.f32([1, 2, 3, 4]) });
  await rejectsFormat(whole.slice(0, whole.length - 4), /run past the end of the byte buffer/);
});

test('a header that is not JSON, or not an object, is reported', async () => {
  await rejectsFormat(craft(null, 0, '{"a": '), /not valid JSON/);
  await rejectsFormat(craft(null, 0, '[1, 2]'), /must be a JSON object starting with "\{"/);
  await rejectsFormat(craft(null, 0, '{"a": 3}'), /tensor "a": header entry must be an object/);
});

test('a header padded with trailing spaces is accepted', async () => {
  const file = await openSafetensorsBytes(craft(null, 4, `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}      `));
  assert.deepEqual(file.names(), ['a']);
});

test('a tensor entry without dtype, shape or data_offsets is reported', async () => {
  for (const key of ['dtype', 'shape', 'data_offsets']) {
    const entry: Record<string, unknown> = { dtype: 'F32', shape: [1], data_offsets: [0, 4] };
    delete entry[key];
    await rejectsFormat(craft({ w: entry }, 4), new RegExp(`tensor "w": header entry has no "${key}"`));
  }
});

test('an unknown dtype is reported with the list of known ones', async () => {
  await rejectsFormat(craft({ w: { dtype: 'F4', shape: [2], data_offsets: [0, 1] } }, 1), /tensor "w": unknown dtype "F4"; glassformer reads F64, F32/);
});

test('a shape whose size disagrees with its byte range is reported', async () => {
  await rejectsFormat(craft({ w: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 20] } }, 20), /shape \[2, 3\] of F32 needs 24 bytes but data_offsets \[0, 20\] hold 20/);
});

test('overlapping tensors, gaps and uncovered bytes are reported', async () => {
  const f32 = (begin: number, end: number) => ({ dtype: 'F32', shape: [(end - begin) / 4], data_offsets: [begin, end] });
  await rejectsFormat(craft({ a: f32(0, 8), b: f32(4, 12) }, 12), /tensor "b" \(bytes 4\.\.12\) overlaps tensor "a"/);
  await rejectsFormat(craft({ a: f32(0, 4), b: f32(8, 12) }, 12), /gap in the byte buffer: tensor "a" ends at 4 but tensor "b" begins at 8/);
  await rejectsFormat(craft({ a: f32(4, 8) }, 8), /gap in the byte buffer: the byte buffer starts at 0/);
  await rejectsFormat(craft({ a: f32(0, 4) }, 12), /the tensors cover 4 bytes but the byte buffer after the header holds 12/);
  await rejectsFormat(craft({ a: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, 8), /end before they begin/);
});

test('asking for a missing tensor names the closest ones', async () => {
  const file = await openSafetensors(join(HF_TINY, 'llama', 'model.safetensors'));
  await assert.rejects(file.get('model.layers.0.self_attn.q_proj.bias'), (e: unknown) => {
    assert.ok(e instanceof WeightError);
    assert.match(e.message, /model\.safetensors: no tensor "model\.layers\.0\.self_attn\.q_proj\.bias"/);
    assert.match(e.message, /closest names: "model\.layers\.0\.self_attn\.q_proj\.weight"/);
    return true;
  });
});

test('a tensor of the wrong shape is refused with both shapes', async () => {
  const checkpoint = await openCheckpoint(join(HF_TINY, 'gpt2', 'model.safetensors'));
  await assert.rejects(
    checkpoint.get('transformer.h.0.attn.c_attn.weight', { expectShape: [96, 32] }),
    (e: unknown) => e instanceof WeightError && /"transformer\.h\.0\.attn\.c_attn\.weight" has shape \[32, 96\] but the model expects \[96, 32\]/.test(e.message),
  );
  assert.deepEqual((await checkpoint.get('transformer.h.0.attn.c_attn.weight', { expectShape: [32, 96] })).shape, [32, 96]);
});

test('a sharded checkpoint reads each tensor from the shard its index names', async () => {
  const full = await openSafetensors(join(HF_TINY, 'bart', 'model.safetensors'));
  const names = full.names();
  const tensors = await full.loadAll();
  const half = Math.ceil(names.length / 2);
  const shards = [names.slice(0, half), names.slice(half)];
  const fs = new MemoryFileSystem();
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    fs.set(`/m/${file}`, serializeSafetensors(Object.fromEntries(shard.map((n) => [n, tensors.get(n) as Tensor])), { format: 'pt' }));
    for (const n of shard) weightMap[n] = file;
  });
  fs.set('/m/model.safetensors.index.json', JSON.stringify({ metadata: { total_size: 1 }, weight_map: weightMap }));
  const checkpoint = await Checkpoint.open(fs, '/m/model.safetensors.index.json');
  assert.deepEqual(checkpoint.names().sort(), [...names].sort());
  assert.deepEqual(checkpoint.metadata, { format: 'pt' });
  assert.deepEqual(checkpoint.indexMetadata, { total_size: 1 });
  for (const name of [names[0], names[names.length - 1]]) {
    assert.deepEqual(Array.from((await checkpoint.get(name)).data), Array.from((tensors.get(name) as Tensor).data));
  }
  fs.set('/m/model.safetensors.index.json', JSON.stringify({ weight_map: { ...weightMap, extra: 'model-00003-of-00003.safetensors' } }));
  await assert.rejects(Checkpoint.open(fs, '/m/model.safetensors.index.json'), /shard "model-00003-of-00003\.safetensors" listed in weight_map is missing/);
  fs.set('/m/model.safetensors.index.json', JSON.stringify({ weight_map: { ...weightMap, extra: 'model-00001-of-00002.safetensors' } }));
  await assert.rejects(Checkpoint.open(fs, '/m/model.safetensors.index.json'), /puts tensor "extra" in model-00001-of-00002\.safetensors, but that shard does not contain it/);
});
