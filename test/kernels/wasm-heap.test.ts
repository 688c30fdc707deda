import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GlassformerError } from '../../src/errors.js';
import { Heap } from '../../src/kernels/wasm/heap.js';
import { ResidentStore, ResidentWeight } from '../../src/kernels/wasm/resident.js';

/** A heap from 1024 whose memory may reach `limit` bytes; `ends` records every end asked for. */
function heapUpTo(limit: number): { heap: Heap; ends: number[] } {
  const ends: number[] = [];
  const heap = new Heap(1024, (end) => {
    ends.push(end);
    return end <= limit;
  });
  return { heap, ends };
}

describe('the WebAssembly memory heap', () => {
  test('hands out 64-byte aligned blocks from the start, growing the memory as the top rises', () => {
    const { heap, ends } = heapUpTo(1 << 20);
    assert.equal(heap.alloc(1), 1024);
    assert.equal(heap.alloc(100), 1088);
    assert.equal(heap.alloc(64), 1216);
    assert.equal(heap.top, 1280);
    assert.deepEqual(ends, [1088, 1216, 1280]);
    assert.equal(heap.used, 256);
  });

  test('reuses the first hole that fits, splits it, and merges neighbours when they are freed', () => {
    const { heap } = heapUpTo(1 << 20);
    const [a, b, c, d] = [128, 64, 192, 64].map((bytes) => heap.alloc(bytes) as number);
    heap.release(a);
    heap.release(c);
    assert.deepEqual(heap.holes(), [[1024, 128], [1216, 192]]);
    // 150 bytes (192 after alignment) do not fit the first hole: the second, exactly.
    assert.equal(heap.alloc(150), 1216);
    assert.equal(heap.alloc(64), 1024);
    assert.deepEqual(heap.holes(), [[1088, 64]]);
    heap.release(1024);
    heap.release(b);
    assert.deepEqual(heap.holes(), [[1024, 192]], 'a freed block joins the holes on both sides');
    heap.release(1216);
    assert.deepEqual(heap.holes(), [[1024, 384]]);
    assert.equal(heap.top, d + 64);
  });

  test('a block freed at the top lowers it, together with a hole just below', () => {
    const { heap } = heapUpTo(1 << 20);
    const a = heap.alloc(64) as number;
    const b = heap.alloc(64) as number;
    const c = heap.alloc(64) as number;
    heap.release(b);
    heap.release(c);
    assert.equal(heap.top, a + 64);
    assert.deepEqual(heap.holes(), []);
  });

  test('says undefined when the memory cannot grow, and refuses to free what it did not hand out', () => {
    const { heap } = heapUpTo(1024 + 4096);
    assert.equal(heap.alloc(4096), 1024);
    assert.equal(heap.alloc(64), undefined);
    assert.equal(heap.top, 1024 + 4096, 'a failed growth changes nothing');
    assert.throws(() => heap.release(1088), GlassformerError);
    heap.release(1024);
    assert.throws(() => heap.release(1024), GlassformerError);
    assert.equal(heap.alloc(64), 1024);
  });
});

describe('resident weights', () => {
  test('stay within the budget by evicting the least recently used form, and a form larger than the budget is refused', () => {
    const { heap } = heapUpTo(1 << 20);
    const store = new ResidentStore(heap, 1000);
    const [w1, w2, w3] = [new ResidentWeight(), new ResidentWeight(), new ResidentWeight()];
    const filled: number[] = [];
    const fill = (at: number): void => void filled.push(at);
    const first = store.acquire(w1, 'rows', 400, fill);
    store.acquire(w2, 'rows', 400, fill);
    assert.equal(store.acquire(w1, 'rows', 400, fill), first, 'already resident: not filled again');
    assert.equal(filled.length, 2);
    // w2 is now the least recently used.
    store.acquire(w3, 'panels', 400, fill);
    assert.deepEqual([store.has(w1, 'rows'), store.has(w2, 'rows'), store.has(w3, 'panels')], [true, false, true]);
    assert.equal(store.used, 800);
    assert.equal(store.evicted, 1);
    assert.equal(store.acquire(w2, 'rows', 1001, fill), undefined);
    assert.equal(store.setBudget(500), 1000);
    assert.deepEqual([store.has(w1, 'rows'), store.has(w3, 'panels')], [false, true]);
    store.drop(w3);
    assert.equal(store.used, 0);
    assert.equal(heap.top, 1024, 'every block went back');
  });

  test('evict older forms when the memory, not the budget, is what runs out', () => {
    const { heap } = heapUpTo(1024 + 1024);
    const store = new ResidentStore(heap, 1 << 20);
    const [w1, w2] = [new ResidentWeight(), new ResidentWeight()];
    store.acquire(w1, 'rows', 640, () => undefined);
    assert.equal(store.acquire(w2, 'rows', 640, () => undefined), 1024, 'w1 made room');
    assert.equal(store.has(w1, 'rows'), false);
    assert.equal(store.acquire(w1, 'panels', 2048, () => undefined), undefined, 'nothing can make room for more than the memory');
  });
});
