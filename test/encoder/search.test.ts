import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { FormatError } from '../../src/errors.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { Embedder } from '../../src/tasks/embed.js';
import { cosineSimilarity, pool } from '../../src/tasks/pooling.js';
import { ExactIndex, SemanticSearch, deserializeIndex, serializeIndex } from '../../src/tasks/search.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { recorded } from './fixture.js';
import { BERT_FIXTURE, temporaryFolder } from './shared.js';
import { sentenceEncoderFolder, tinyTokenizer } from './tiny-tokenizer.js';

/** Reference embeddings: every row of every recorded hidden state, mean-pooled over real tokens (6 vectors of 32). */
async function referenceVectors(): Promise<Float32Array[]> {
  const run = await recorded(BERT_FIXTURE);
  const mask = Tensor.i32(run.inputs.attention_mask.flat(), [2, 12]);
  const out: Float32Array[] = [];
  for (const name of ['hidden_states.0', 'hidden_states.1', 'hidden_states.2']) out.push(...pool(run.expected.get(name)!, mask, ['mean']));
  return out;
}

function byCosine(query: Float32Array, vectors: Float32Array[]): number[] {
  return vectors.map((v, i) => ({ i, s: cosineSimilarity(query, v) })).sort((a, b) => b.s - a.s).map((x) => x.i);
}

test('an exact index returns entries in the order of cosine similarity of the reference embeddings, with their scores', async () => {
  const vectors = await referenceVectors();
  const index = new ExactIndex(32);
  await index.add(vectors.map((vector, i) => ({ id: `v${i}`, vector, metadata: { layer: Math.floor(i / 2), row: i % 2 } })));
  for (let q = 0; q < vectors.length; q++) {
    const hits = await index.query(vectors[q], { topK: 6 });
    assert.deepEqual(hits.map((h) => h.id), byCosine(vectors[q], vectors).map((i) => `v${i}`));
    assert.equal(hits[0].id, `v${q}`);
    hits.forEach((h) => assert.ok(Math.abs(h.score - cosineSimilarity(vectors[q], vectors[Number(h.id.slice(1))])) < 1e-5));
  }
});

test('top-k, threshold and metadata filters narrow the hits', async () => {
  const vectors = await referenceVectors();
  const index = new ExactIndex(32);
  await index.add(vectors.map((vector, i) => ({ id: `v${i}`, vector, metadata: { layer: Math.floor(i / 2), row: i % 2 }, text: `doc ${i}` })));
  const order = byCosine(vectors[0], vectors);
  assert.deepEqual((await index.query(vectors[0], { topK: 2 })).map((h) => h.id), order.slice(0, 2).map((i) => `v${i}`));
  const threshold = cosineSimilarity(vectors[0], vectors[order[2]]);
  const above = await index.query(vectors[0], { topK: 6, threshold: threshold - 1e-6 });
  assert.deepEqual(above.map((h) => h.id), order.slice(0, 3).map((i) => `v${i}`));
  const rowOne = await index.query(vectors[0], { topK: 6, filter: { row: 1 } });
  assert.deepEqual(rowOne.map((h) => h.id), order.filter((i) => i % 2 === 1).map((i) => `v${i}`));
  assert.deepEqual(rowOne[0].metadata, { layer: Math.floor(order.find((i) => i % 2 === 1)! / 2), row: 1 });
  const layers = await index.query(vectors[0], { topK: 6, filter: { layer: [0, 2] } });
  assert.deepEqual(layers.map((h) => h.id), order.filter((i) => Math.floor(i / 2) !== 1).map((i) => `v${i}`));
  const custom = await index.query(vectors[0], { topK: 6, filter: (m) => m.layer === 1 });
  assert.equal(custom.length, 2);
  assert.equal((await index.query(vectors[0], { topK: 1 }))[0].text, 'doc 0');
});

test('removing entries takes them out of results; ids are unique unless upserted', async () => {
  const vectors = await referenceVectors();
  const index = new ExactIndex(32);
  await index.add(vectors.map((vector, i) => ({ id: `v${i}`, vector })));
  assert.equal(await index.remove(['v0', 'v3', 'missing']), 2);
  assert.equal(await index.size(), 4);
  const remaining = [1, 2, 4, 5];
  const hits = await index.query(vectors[0], { topK: 10 });
  assert.deepEqual(hits.map((h) => h.id), byCosine(vectors[0], remaining.map((i) => vectors[i])).map((j) => `v${remaining[j]}`));
  await assert.rejects(index.add([{ id: 'v1', vector: vectors[1] }]), /id "v1" is already in the index/);
  await index.upsert([{ id: 'v1', vector: vectors[0] }]);
  assert.equal((await index.query(vectors[0], { topK: 1 }))[0].id, 'v1');
  await assert.rejects(index.add([{ id: 'z', vector: new Float32Array(31) }]), /31 dimensions, the index holds 32/);
  await assert.rejects(index.add([{ id: 'z', vector: new Float32Array(32) }]), /all zeros/);
  await assert.rejects(index.query(vectors[0], { topK: 0 }), /topK must be a positive integer/);
});

test('an index saved to a file loads back with the same entries and answers', async () => {
  const vectors = await referenceVectors();
  const index = new ExactIndex(32, 'cosine', { model: 'hf-tiny/bert', pooling: 'mean', normalize: true });
  await index.add(vectors.map((vector, i) => ({ id: `v${i}`, vector, metadata: { n: i, tag: i % 2 ? 'odd' : null }, text: `τέξτ ${i}` })));
  await index.remove(['v2']);
  const dir = await temporaryFolder('index');
  const file = join(dir, 'docs.gfindex');
  await index.save(nodeFileSystem, file);
  const loaded = await ExactIndex.load(nodeFileSystem, file);
  assert.equal(loaded.count, 5);
  assert.deepEqual(loaded.provenance, { model: 'hf-tiny/bert', pooling: 'mean', normalize: true });
  assert.deepEqual(loaded.entries(), index.entries());
  assert.deepEqual(await loaded.query(vectors[1], { topK: 5 }), await index.query(vectors[1], { topK: 5 }));
});

test('a damaged, truncated or inconsistent index file is refused with a FormatError, never answered from', async () => {
  const vectors = await referenceVectors();
  const index = new ExactIndex(32);
  await index.add(vectors.map((vector, i) => ({ id: `v${i}`, vector })));
  const bytes = await serializeIndex(index);
  const flipped = bytes.slice();
  flipped[200] ^= 1;
  await assert.rejects(deserializeIndex(flipped, 'x.gfindex'), (e: unknown) => e instanceof FormatError && /x.gfindex: .*checksum does not match/.test(e.message));
  await assert.rejects(deserializeIndex(bytes.subarray(0, bytes.length - 100), 'x.gfindex'), /checksum does not match/);
  await assert.rejects(deserializeIndex(bytes.subarray(0, 20), 'x.gfindex'), /only 20 bytes/);
  await assert.rejects(deserializeIndex(new TextEncoder().encode('{"not": "an index"} padding padding padding padding'), 'x.gfindex'), /does not start with "GFINDEX1"/);
  // A header that lies about the count, with a valid checksum: caught by the size check.
  const lying = bytes.slice();
  const headerLength = new DataView(lying.buffer).getUint32(8, true);
  const header = new TextDecoder().decode(lying.subarray(12, 12 + headerLength)).replace('"count":6', '"count":5');
  lying.set(new TextEncoder().encode(header), 12);
  lying.set(new Uint8Array(await crypto.subtle.digest('SHA-256', lying.slice(0, lying.length - 32))), lying.length - 32);
  await assert.rejects(deserializeIndex(lying, 'x.gfindex'), /header says 5 vectors of 32 dimensions/);
  const dir = await temporaryFolder('index');
  await writeFile(join(dir, 'bad.gfindex'), flipped);
  await assert.rejects(ExactIndex.load(nodeFileSystem, join(dir, 'bad.gfindex')), /bad.gfindex: not a usable glassformer index/);
  assert.ok((await readFile(join(dir, 'bad.gfindex'))).length > 0);
});

test('semantic search embeds documents and query with their prompts and returns documents by cosine similarity', async () => {
  const dir = await sentenceEncoderFolder();
  const embedder = await Embedder.fromFolder(nodeFileSystem, dir, tinyTokenizer());
  const search = new SemanticSearch(embedder, new ExactIndex(embedder.dimension));
  const docs = ['the cat sat on the mat', 'a dog runs fast', 'paris is the capital of france', 'the fish swims in the river', 'john works at google'];
  const progress: number[] = [];
  const ids = await search.addDocuments(docs.map((text, i) => ({ text, metadata: { even: i % 2 === 0 } })), (done) => progress.push(done), 2);
  assert.deepEqual(ids, ['0', '1', '2', '3', '4']);
  assert.deepEqual(progress, [2, 4, 5]);
  const hits = await search.search('a cat on a mat', { topK: 5 });
  const docVectors = embedder.embed(docs, { promptName: 'passage' });
  const [queryVector] = embedder.embed(['a cat on a mat'], { promptName: 'query' });
  assert.deepEqual(hits.map((h) => Number(h.id)), byCosine(queryVector, docVectors));
  hits.forEach((h) => assert.ok(Math.abs(h.score - cosineSimilarity(queryVector, docVectors[Number(h.id)])) < 1e-5));
  assert.equal(hits[0].text, docs[Number(hits[0].id)]);
  assert.ok((await search.search('a cat on a mat', { filter: { even: false } })).every((h) => Number(h.id) % 2 === 1));
  await search.removeDocuments(['2']);
  assert.ok(!(await search.search('a cat on a mat')).some((h) => h.id === '2'));
  assert.deepEqual(await search.addDocuments([{ text: 'a bird sings' }, { text: 'the sun', id: 'sun' }]), ['5', 'sun']);
  assert.throws(() => new SemanticSearch(embedder, new ExactIndex(16)), /16-dimensional vectors but the model embeds into 32/);
});
