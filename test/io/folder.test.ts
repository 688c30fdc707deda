import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FileNotFoundError, FormatError, PickleWeightsError, UnsupportedError, WeightError } from '../../src/errors.js';
import { openModelFolder } from '../../src/io/model-folder.js';
import { loadModelFolder } from '../../src/io/node.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { serializeSafetensors, SafetensorsFile } from '../../src/io/safetensors.js';
import { bytesSource, joinPosix, MemoryFileSystem, type ByteSource } from '../../src/io/source.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { HF_FAMILIES, HF_TINY, SHARED } from './shared.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glassformer-folder-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('every hf-tiny folder opens with its config, generation config and weights', async () => {
  for (const family of [...HF_FAMILIES, 'vanilla']) {
    const folder = await loadModelFolder(join(HF_TINY, family));
    assert.equal(folder.weightsPath, join(HF_TINY, family, 'model.safetensors'));
    assert.ok((folder.checkpoint?.names().length ?? 0) > 0, family);
    assert.equal(folder.config.raw.model_type, folder.config.modelType);
    assert.deepEqual(folder.tokenizerFiles, {}, 'the fixtures carry no tokenizer');
  }
  const vanilla = await loadModelFolder(join(HF_TINY, 'vanilla'));
  assert.equal(vanilla.generationConfigPath, null, 'derived from config.json');
  assert.deepEqual([vanilla.generationConfig.bosTokenId, vanilla.generationConfig.eosTokenId], [1, 2]);
  const marian = await loadModelFolder(join(HF_TINY, 'marian'));
  assert.deepEqual(marian.generationConfig.badWordsIds, [[127]]);
});

test('a tokenizer-only folder lists its tokenizer files and has no weights', async () => {
  const path = join(SHARED, 'models', 'tokenizer-only', 'all-MiniLM-L6-v2');
  await assert.rejects(loadModelFolder(path), (e: unknown) => e instanceof WeightError && /no weights found: expected model\.safetensors/.test(e.message));
  const folder = await loadModelFolder(path, { requireWeights: false });
  assert.equal(folder.checkpoint, null);
  assert.equal(folder.config.modelType, 'bert');
  assert.deepEqual(Object.keys(folder.tokenizerFiles), ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt']);
  assert.equal(folder.tokenizerFiles['vocab.txt'], join(path, 'vocab.txt'));
});

test('a folder with only pytorch_model.bin is refused with a way to convert it', async () => {
  const folder = join(dir, 'pickled');
  await mkdir(folder);
  await writeFile(join(folder, 'config.json'), await readFile(join(HF_TINY, 'gpt2', 'config.json')));
  await writeFile(join(folder, 'pytorch_model.bin'), new Uint8Array([0x80, 0x02]));
  await assert.rejects(loadModelFolder(folder), (e: unknown) => {
    assert.ok(e instanceof PickleWeightsError, 'an UnsupportedError subclass');
    assert.match(e.message, /pytorch_model\.bin: the weights are a PyTorch pickle/);
    assert.match(e.message, /safe_serialization=True/);
    return true;
  });
});

test('a folder without config.json, or a missing folder, is reported', async () => {
  await assert.rejects(loadModelFolder(join(SHARED, 'models', 'stories260K')), (e: unknown) => e instanceof FormatError && /has no config\.json/.test(e.message));
  await assert.rejects(loadModelFolder(join(dir, 'nowhere')), /no such model folder/);
});

test('a sharded folder is found through its index, in memory as on disk', async () => {
  const fs = new MemoryFileSystem({
    'm/config.json': await readFile(join(HF_TINY, 'llama', 'config.json'), 'utf8'),
    'm/model-00001-of-00001.safetensors': serializeSafetensors({ 'model.norm.weight': Tensor.f32([1, 2]) }),
    'm/model.safetensors.index.json': JSON.stringify({ weight_map: { 'model.norm.weight': 'model-00001-of-00001.safetensors' } }),
    'm/tokenizer.json': '{}',
  });
  const folder = await openModelFolder(fs, 'm');
  assert.equal(folder.weightsPath, 'm/model.safetensors.index.json');
  assert.deepEqual(Array.from((await folder.checkpoint?.get('model.norm.weight'))?.data ?? []), [1, 2]);
  assert.deepEqual(folder.tokenizerFiles, { 'tokenizer.json': 'm/tokenizer.json' });
});

/** A ByteSource that records every read, to see how the reader touches the file. */
function spy(inner: ByteSource): { source: ByteSource; reads: { offset: number; length: number; into?: Uint8Array }[] } {
  const reads: { offset: number; length: number; into?: Uint8Array }[] = [];
  return {
    reads,
    source: {
      name: inner.name,
      size: () => inner.size(),
      read: (offset, length, into) => {
        reads.push({ offset, length, into });
        return inner.read(offset, length, into);
      },
    },
  };
}

test('a tensor is read once, by its own byte range, straight into its storage', async () => {
  const path = join(HF_TINY, 'bert', 'model.safetensors');
  const { source, reads } = spy(nodeFileSystem.source(path));
  const file = await SafetensorsFile.open(source);
  assert.deepEqual(
    reads.map((r) => [r.offset, r.length]),
    [
      [0, 8],
      [8, file.header.headerLength],
    ],
    'opening reads the length and the header only',
  );
  reads.length = 0;
  const name = 'bert.encoder.layer.0.attention.self.query.weight';
  const t = await file.get(name);
  const [begin, end] = file.tensorInfo(name).dataOffsets;
  assert.equal(reads.length, 1);
  assert.deepEqual([reads[0].offset, reads[0].length], [file.header.dataStart + begin, end - begin]);
  assert.equal(reads[0].into?.buffer, t.data.buffer, 'the bytes land in the tensor\'s own array');
  assert.equal(t.data.byteLength, end - begin);
});

test('node file system: positional reads, atomic writes, listing and missing files', async () => {
  const path = join(dir, 'bytes.bin');
  await nodeFileSystem.writeAtomic(path, [new Uint8Array([1, 2, 3]), new Uint8Array([4, 5])]);
  const source = nodeFileSystem.source(path);
  assert.equal(await source.size(), 5);
  assert.deepEqual(Array.from(await source.read(1, 3)), [2, 3, 4]);
  const into = new Uint8Array(4);
  assert.equal(await source.read(3, 2, into), into);
  assert.deepEqual(Array.from(into), [4, 5, 0, 0]);
  await assert.rejects(source.read(4, 2), (e: unknown) => e instanceof FormatError && /truncated: needed bytes 4\.\.6 but the file has 5/.test(e.message));
  // A failing write leaves the old file and no temporary file behind.
  async function* failing(): AsyncGenerator<Uint8Array> {
    yield new Uint8Array([9]);
    throw new Error('disk full');
  }
  await assert.rejects(nodeFileSystem.writeAtomic(path, failing()), /disk full/);
  assert.deepEqual(Array.from(await nodeFileSystem.readBytes(path)), [1, 2, 3, 4, 5]);
  assert.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.tmp')), []);
  assert.ok((await nodeFileSystem.list(dir)).includes('bytes.bin'));
  assert.equal(await nodeFileSystem.exists(join(dir, 'nope')), false);
  await assert.rejects(nodeFileSystem.readText(join(dir, 'nope')), FileNotFoundError);
  await assert.rejects(nodeFileSystem.source(join(dir, 'nope')).size(), FileNotFoundError);
});

test('memory file system and path helpers', async () => {
  const fs = new MemoryFileSystem({ '/a/b.txt': 'hello', '/a/c/d.bin': new Uint8Array([7]) });
  assert.equal(await fs.readText('/a/./b.txt'), 'hello');
  assert.deepEqual(await fs.list('/a'), ['b.txt', 'c']);
  assert.equal(await fs.exists('/a/c'), true);
  assert.equal(await fs.exists('/a/x'), false);
  const relative = new MemoryFileSystem({ 'config.json': '{}' });
  assert.equal(await relative.exists('.'), true);
  assert.deepEqual(await relative.list('.'), ['config.json']);
  await fs.writeAtomic('/a/e.bin', [new Uint8Array([1]), new Uint8Array([2, 3])]);
  assert.deepEqual(Array.from(await fs.source('/a/e.bin').read(1, 2)), [2, 3]);
  await assert.rejects(fs.readBytes('/a/missing'), FileNotFoundError);
  assert.equal(joinPosix('a', '../b', './c'), 'b/c');
  assert.equal(joinPosix('/x/', 'y'), '/x/y');
  assert.equal(fs.dirname('/a/b.txt'), '/a');
  assert.equal(fs.dirname('b.txt'), '.');
  await assert.rejects(bytesSource('mem', new Uint8Array(2)).read(1, 5), /mem: file is truncated/);
});

test('modelTypes refuses another family first, before its config is parsed or weights are looked for', async () => {
  // A T5 config relabelled gpt2 would fail GPT-2's config parsing, and the folder has no weights: the family is named first.
  const t5 = JSON.parse(await readFile(join(HF_TINY, 't5', 'config.json'), 'utf8')) as Record<string, unknown>;
  const fs = new MemoryFileSystem({ 'm/config.json': JSON.stringify({ ...t5, model_type: 'gpt2' }) });
  const modelTypes = { names: ['t5', 'bart'], kind: 'an encoder-decoder' };
  await assert.rejects(
    openModelFolder(fs, 'm', { modelTypes }),
    (e: unknown) => e instanceof UnsupportedError && e.message === 'm/config.json: model_type "gpt2" is not an encoder-decoder glassformer runs; supported: t5, bart',
  );
  fs.set('m/config.json', JSON.stringify(t5));
  await assert.rejects(openModelFolder(fs, 'm', { modelTypes }), (e: unknown) => e instanceof WeightError && /no weights found/.test(e.message));
  fs.set('m/model.safetensors', serializeSafetensors({ 'shared.weight': Tensor.zeros([2, 2]) }));
  assert.equal((await openModelFolder(fs, 'm', { modelTypes })).config.modelType, 't5');
});
