/** Plain id rows ↔ tensors, with errors that name the input. */
import { ShapeError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';

/** [batch][seq] rows of equal length → an i32 tensor [batch, seq]. */
export function idsTensor(name: string, rows: readonly (readonly number[])[]): Tensor {
  const width = rows[0]?.length ?? 0;
  if (rows.length === 0 || width === 0) throw new ShapeError(`${name} is empty: give at least one row of at least one id`);
  if (rows.some((r) => r.length !== width)) throw new ShapeError(`${name}: rows have different lengths (${rows.map((r) => r.length).join(', ')}); pad them`);
  for (const row of rows) {
    for (const v of row) if (!Number.isInteger(v) || v < 0) throw new ShapeError(`${name}: ${v} is not a token id (a non-negative integer)`);
  }
  return Tensor.i32(rows.flat(), [rows.length, width]);
}

/** An all-ones mask shaped like `rows`. */
export function onesLike(rows: readonly (readonly number[])[]): number[][] {
  return rows.map((r) => r.map(() => 1));
}
