/**
 * Weights packed ahead of their products, by the array they were packed from:
 * f32 weights through `PrepackingMatmulKernel.prepack`, bf16 and int8 ones
 * through their kernels' `prepackBf16` / `prepackInt8` where they have them.
 * Only weights that do not require gradients are packed, and every optimizer
 * step forgets them all, so a weight trained in place is never multiplied
 * from a stale copy.
 */
import type { PackedMatrix } from '../kernels/types.js';

let prepacking: boolean | undefined;
let packs = new WeakMap<Float32Array | Uint16Array | Int8Array, PackedMatrix>();

/**
 * Whether weights are kept packed for `kernel`: as `setWeightPrepacking` set,
 * else only for kernels whose packs serve every row count (`packedMinRows` 1:
 * the WebAssembly kernel keeps them resident in its memory, under a budget).
 */
export function prepackingFor(kernel: object): boolean {
  return prepacking ?? (kernel as { packedMinRows?: number }).packedMinRows === 1;
}

/**
 * Keep the weights of inference-only linear layers packed between calls:
 * prompts and encoder batches then skip packing each weight on every product
 * (11-16% faster on GPT-2's projections with the native kernel, one thread),
 * and on the WebAssembly kernel decode skips copying it in, at the price of a
 * packed copy of every such weight. Off by default except on kernels whose
 * packs serve every row count (see `prepackingFor`). Returns the previous
 * setting for the active kernel; turning it off drops the packs.
 */
export function setWeightPrepacking(on: boolean, kernel: object): boolean {
  const previous = prepackingFor(kernel);
  prepacking = on;
  if (!on) forgetPackedWeights();
  return previous;
}

/**
 * Drop every packed weight. The optimizers call it after each step; code that
 * writes the data of a weight that does not require gradients in place must
 * call it too.
 */
export function forgetPackedWeights(): void {
  packs = new WeakMap();
}

/** `data`'s pack for `kernel` (made by `make` on first use, or again when `fits` refuses the one held), or undefined when packing is off for it. */
export function packedWeight(kernel: { readonly name: string }, data: Float32Array | Uint16Array | Int8Array,
  fits: (packed: PackedMatrix) => boolean, make: () => PackedMatrix): PackedMatrix | undefined {
  if (!prepackingFor(kernel)) return undefined;
  let packed = packs.get(data);
  if (packed === undefined || packed.kernel !== kernel.name || !fits(packed)) {
    packed = make();
    packs.set(data, packed);
  }
  return packed;
}
