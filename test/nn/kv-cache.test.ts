import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ShapeError } from '../../src/errors.js';
import { CachedKV, KVCache } from '../../src/nn/kv-cache.js';
import { concat, gather, Tensor } from '../../src/tensor/tensor.js';

/** Distinct values per call (seed·1000 + index), so a misplaced row shows. */
function steps(shape: number[], seed: number): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return new Tensor('f32', shape, Float32Array.from({ length: size }, (_, i) => seed * 1000 + i));
}

/** A one-layer cache fed `prompt` positions then `more` single steps, beside the concatenated tensors. */
function filled(batch: number, heads: number, dHead: number, prompt: number, more: number): { cache: KVCache; key: Tensor; value: Tensor } {
  const cache = new KVCache(1);
  let key = steps([batch, heads, prompt, dHead], 1);
  let value = steps([batch, heads, prompt, dHead], 2);
  cache.append(0, key, value);
  for (let s = 0; s < more; s++) {
    const k = steps([batch, heads, 1, dHead], 10 + s);
    const v = steps([batch, heads, 1, dHead], 500 + s);
    cache.append(0, k, v);
    key = concat([key, k], 2);
    value = concat([value, v], 2);
  }
  return { cache, key, value };
}

test('appending writes in place, grows past the first capacity by doubling, and reads back as the concatenation', () => {
  const { cache, key, value } = filled(2, 3, 5, 7, 130);
  const layer = cache.layers[0];
  assert.ok(layer instanceof CachedKV);
  assert.equal(cache.length, 137);
  assert.ok(layer.capacity >= 137 && layer.capacity <= 2 * 137, `capacity ${layer.capacity}`);
  assert.deepEqual(layer.key.shape, [2, 3, 137, 5]);
  assert.deepEqual([...layer.key.f32()], [...key.f32()]);
  assert.deepEqual([...layer.value.f32()], [...value.f32()]);
});

test('reorder gathers batch rows in place (twice, through the swapped spare) as select does into a new cache', () => {
  const { cache, key } = filled(3, 2, 4, 3, 5);
  const selected = cache.select([2, 0, 0]);
  assert.deepEqual([...(selected.layers[0]?.key.f32() ?? [])], [...gather(key, 0, [2, 0, 0]).f32()]);
  cache.reorder([2, 0, 0]);
  assert.deepEqual([...(cache.layers[0]?.key.f32() ?? [])], [...gather(key, 0, [2, 0, 0]).f32()]);
  cache.reorder([1, 2, 0]);
  assert.deepEqual([...(cache.layers[0]?.key.f32() ?? [])], [...gather(key, 0, [0, 0, 2]).f32()]);
  cache.append(0, steps([3, 2, 1, 4], 90), steps([3, 2, 1, 4], 91));
  assert.equal(cache.length, 9);
  cache.reorder([0]);
  assert.deepEqual(cache.layers[0]?.key.shape, [1, 2, 9, 4]);
  assert.throws(() => cache.select([3]), ShapeError);
});

test('truncate forgets the later positions and the next append writes after the kept ones', () => {
  const { cache, key } = filled(1, 2, 3, 4, 6);
  cache.truncate(5);
  assert.deepEqual([...(cache.layers[0]?.key.f32() ?? [])], [...key.slice(2, 0, 5).f32()]);
  const k = steps([1, 2, 1, 3], 77);
  cache.append(0, k, k);
  assert.deepEqual([...(cache.layers[0]?.key.f32() ?? [])], [...concat([key.slice(2, 0, 5), k], 2).f32()]);
  assert.throws(() => cache.truncate(7), ShapeError);
});

test('keys that require gradients are joined as tensors, so the gradient flows back through the cache', () => {
  const cache = new KVCache(1);
  const k0 = steps([1, 1, 2, 2], 1).requireGrad();
  cache.append(0, k0, k0);
  const kv = cache.append(0, steps([1, 1, 1, 2], 2), steps([1, 1, 1, 2], 3));
  assert.ok(!(kv instanceof CachedKV));
  assert.ok(kv.key.requiresGrad);
  assert.deepEqual(kv.key.shape, [1, 1, 3, 2]);
});

test('appending keys of another shape is refused with both shapes named', () => {
  const cache = new KVCache(1);
  cache.append(0, steps([1, 2, 1, 4], 1), steps([1, 2, 1, 4], 2));
  assert.throws(() => cache.append(0, steps([1, 3, 1, 4], 1), steps([1, 3, 1, 4], 2)), /KVCache.append: keys .* do not match the cache's \[1, 2, ·, 4\]/);
});

test('appendRows refuses strided keys that reach past their array, naming the sizes', () => {
  const cache = new KVCache(1);
  const rows = (length: number) => ({ data: new Float32Array(length), strides: [24, 4, 8] as const }); // [1, 2 heads, 3 positions, dHead 4] interleaved
  assert.doesNotThrow(() => cache.appendRows(0, rows(24), rows(24), [1, 2, 3, 4]));
  assert.throws(() => cache.appendRows(0, rows(24), rows(23), [1, 2, 3, 4]), /3 positions of values need 24 floats through strides \[24, 4, 8\], the array holds 23/);
  assert.equal(cache.length, 3);
});
