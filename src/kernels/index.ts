import { referenceMatmul } from './reference.js';
import type { MatmulKernel } from './types.js';

export type { MatmulKernel } from './types.js';
export { referenceMatmul } from './reference.js';

let active: MatmulKernel = referenceMatmul;

/** The kernel ops/matmul uses. */
export function matmulKernel(): MatmulKernel {
  return active;
}

/** Swap the kernel (e.g. back to the reference to compare); returns the previous one. */
export function setMatmulKernel(kernel: MatmulKernel): MatmulKernel {
  const previous = active;
  active = kernel;
  return previous;
}
