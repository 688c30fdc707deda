/**
 * A translation task whose data a script makes: cardinal numbers written in
 * English words ("three hundred forty-two thousand one hundred five") to
 * digits ("342105"), for 0 ≤ n < 1,000,000 in American usage (no "and",
 * hyphenated tens).
 */
import { ShapeError } from '../../errors.js';
import { Random } from '../random.js';

const ONES = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve', 'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen', 'nineteen'];
const TENS = ['', '', 'twenty', 'thirty', 'forty', 'fifty', 'sixty', 'seventy', 'eighty', 'ninety'];

/** 1 ≤ n < 1000 in words. */
function belowThousand(n: number): string {
  const parts: string[] = [];
  if (n >= 100) parts.push(`${ONES[Math.floor(n / 100)]} hundred`);
  const rest = n % 100;
  if (rest > 0 && rest < 20) parts.push(ONES[rest]);
  else if (rest >= 20) parts.push(TENS[Math.floor(rest / 10)] + (rest % 10 ? `-${ONES[rest % 10]}` : ''));
  return parts.join(' ');
}

/** n in English words, 0 ≤ n < 1,000,000. */
export function numberToWords(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n >= 1_000_000) throw new ShapeError(`numberToWords: ${n} is not an integer in [0, 1000000)`);
  if (n === 0) return 'zero';
  const thousands = Math.floor(n / 1000);
  const rest = n % 1000;
  return [thousands ? `${belowThousand(thousands)} thousand` : '', rest ? belowThousand(rest) : ''].filter(Boolean).join(' ');
}

/**
 * `count` distinct numbers spread evenly over the digit counts `minDigits`–6
 * (so short numbers are not drowned by six-digit ones; a digit count with
 * fewer numbers than its share gives all it has), excluding `exclude`.
 */
export function sampleNumbers(count: number, random: Random, exclude: ReadonlySet<number> = new Set(), minDigits = 1): number[] {
  const out = new Set<number>();
  const ranges: [number, number][] = [];
  for (let digits = minDigits; digits <= 6; digits++) ranges.push([digits === 1 ? 0 : 10 ** (digits - 1), 10 ** digits]);
  for (let attempt = 0; out.size < count && attempt < count * 50; attempt++) {
    const [lo, hi] = ranges[attempt % ranges.length];
    const n = lo + random.int(hi - lo);
    if (!exclude.has(n)) out.add(n);
  }
  return [...out];
}
