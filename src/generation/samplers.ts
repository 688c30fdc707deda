/**
 * Choosing the next token from processed scores: greedy argmax, or a draw from
 * softmax(scores) with a seeded generator so that sampling runs are reproducible.
 */
import { softmaxRow } from './processors.js';

/** A source of uniform numbers in [0, 1). */
export type Random = () => number;

/**
 * xoshiro128** (Blackman & Vigna 2018), seeded through splitmix32: small,
 * fast, and the same sequence for the same seed on every platform.
 */
export function seededRandom(seed: number): Random {
  let x = seed >>> 0;
  const splitmix = (): number => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  const s = [splitmix(), splitmix(), splitmix(), splitmix()];
  return () => {
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result / 4294967296;
  };
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** The index of the highest score; the first one on ties, as torch.argmax. */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** Draw a token from softmax(scores) (torch.multinomial on the probabilities). −∞ scores are never drawn. */
export function sample(row: Float32Array, random: Random): number {
  const probs = softmaxRow(row);
  const u = random();
  let cumulative = 0;
  let last = -1;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) continue;
    cumulative += probs[i];
    last = i;
    if (u < cumulative) return i;
  }
  // Rounding can leave the cumulative sum just under u; the last possible token is then the draw.
  return last === -1 ? argmax(row) : last;
}
