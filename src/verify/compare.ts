import { shapeString, sizeOf, stridesOf, type Tensor } from '../tensor/tensor.js';
import type { ValidPositions } from './types.js';

/** The fixture README's float32 tolerance: |got − expected| ≤ atol + rtol·|expected|. */
export const ATOL = 1e-4;
export const RTOL = 1e-4;

export interface TensorComparison {
  name: string;
  pass: boolean;
  /** Largest |got − expected| over the compared elements. */
  maxAbsDiff: number;
  compared: number;
  detail?: string;
}

/** Compare element-wise within the tolerance; ±∞ must match exactly (processed scores hold −∞). */
export function compareTensors(name: string, got: Tensor, expected: Tensor, valid?: ValidPositions): TensorComparison {
  if (got.rank !== expected.rank || got.shape.some((d, i) => d !== expected.shape[i])) {
    return {
      name,
      pass: false,
      maxAbsDiff: Infinity,
      compared: 0,
      detail: `shape ${shapeString(got.shape)}, expected ${shapeString(expected.shape)}`,
    };
  }
  const g = got.f32();
  const e = expected.f32();
  const strides = stridesOf(expected.shape);
  let maxAbsDiff = 0;
  let compared = 0;
  let pass = true;
  let worst = -1;
  for (let i = 0; i < e.length; i++) {
    if (valid) {
      const b = Math.floor(i / strides[0]) % expected.shape[0];
      const p = Math.floor(i / strides[valid.axis]) % expected.shape[valid.axis];
      if (!valid.mask[b][p]) continue;
    }
    compared++;
    const x = g[i];
    const y = e[i];
    if (!Number.isFinite(y) || !Number.isFinite(x)) {
      if (x !== y && !(Number.isNaN(x) && Number.isNaN(y))) {
        pass = false;
        maxAbsDiff = Infinity;
        worst = i;
      }
      continue;
    }
    const diff = Math.abs(x - y);
    if (diff > maxAbsDiff) maxAbsDiff = diff;
    if (diff > ATOL + RTOL * Math.abs(y)) {
      if (pass || diff >= maxAbsDiff) worst = i;
      pass = false;
    }
  }
  const detail = worst >= 0 ? `worst at flat index ${worst} of ${sizeOf(expected.shape)}: got ${g[worst]}, expected ${e[worst]}` : undefined;
  return { name, pass, maxAbsDiff, compared, detail };
}

export interface SequenceComparison {
  name: string;
  pass: boolean;
  detail?: string;
}

/** Token ids must match exactly, row by row. */
export function compareSequences(name: string, got: number[][] | undefined, expected: number[][]): SequenceComparison {
  if (!got) return { name, pass: false, detail: 'not produced' };
  if (got.length !== expected.length) return { name, pass: false, detail: `${got.length} rows, expected ${expected.length}` };
  for (let r = 0; r < expected.length; r++) {
    const a = got[r];
    const b = expected[r];
    if (a.length !== b.length || a.some((v, i) => v !== b[i])) {
      return { name, pass: false, detail: `row ${r}: got [${a.join(',')}], expected [${b.join(',')}]` };
    }
  }
  return { name, pass: true };
}

/** Beam `sequences_scores` within 1e-4 absolute. */
export function compareScores(name: string, got: number[] | undefined, expected: number[]): TensorComparison {
  if (!got || got.length !== expected.length) {
    return { name, pass: false, maxAbsDiff: Infinity, compared: 0, detail: got ? `${got.length} scores, expected ${expected.length}` : 'not produced' };
  }
  const maxAbsDiff = Math.max(0, ...expected.map((e, i) => Math.abs(got[i] - e)));
  return { name, pass: maxAbsDiff <= ATOL, maxAbsDiff, compared: expected.length };
}
