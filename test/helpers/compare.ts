import assert from 'node:assert/strict';

/** The largest |a − b| over finite expected values; a non-finite expected value (−∞ of a masked score) must be matched exactly. */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(b[i])) assert.equal(a[i], b[i], `index ${i}`);
    else m = Math.max(m, Math.abs(a[i] - b[i]));
  }
  return m;
}
