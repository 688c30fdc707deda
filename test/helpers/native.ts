/** Running tests on every variant of the native kernel this machine has. */
import { loadAddon, type NativeIsa, type NativeMatmulKernel } from '../../src/kernels/native.js';

/**
 * Runs body with the native kernel switched to `isa` (and to `threads` when
 * given), then switches both back, also when body throws: the kernel is
 * process-wide, and the next test must find it as it was.
 */
export function withVariant<T>(native: NativeMatmulKernel, isa: NativeIsa, threads: number | undefined, body: () => T): T {
  const isaBefore = native.isa();
  const threadsBefore = native.threads();
  native.setIsa(isa);
  if (threads !== undefined) native.setThreads(threads);
  try {
    return body();
  } finally {
    native.setIsa(isaBefore);
    native.setThreads(threadsBefore);
  }
}

/**
 * Shapes for the weight-dtype products C = A · Wᵀ (bf16, int8): decode
 * (m ≤ 4, streamed) and prefill (m > 4, through the packed f32 GEMM), with k
 * and n off every vector width and offsets [a, weight, c] into the arrays.
 */
export const WEIGHT_GEMM_CASES: readonly { m: number; n: number; k: number; offsets: [number, number, number] }[] = [
  { m: 1, n: 3072, k: 768, offsets: [0, 0, 0] },
  { m: 1, n: 37, k: 33, offsets: [3, 5, 7] },
  { m: 3, n: 250, k: 100, offsets: [1, 0, 2] },
  { m: 4, n: 9, k: 47, offsets: [0, 0, 0] },
  { m: 7, n: 130, k: 65, offsets: [2, 3, 1] },
  { m: 64, n: 300, k: 200, offsets: [0, 0, 0] },
  { m: 9, n: 70, k: 800, offsets: [1, 3, 2] }, // two k blocks of the packed GEMM
  { m: 2, n: 5001, k: 1000, offsets: [1, 2, 3] }, // a decode weight over 1 MB: split between threads, n off the 64-column blocks
];

/**
 * Calls fn with each instruction set the addon can run here made active in
 * turn (the fused kernels follow setIsa), then restores the one before; does
 * nothing when the addon is not built.
 */
export function forEachIsa(fn: (isa: string) => void): void {
  const loaded = loadAddon();
  if (!('addon' in loaded)) return;
  const addon = loaded.addon as { isa(): string; supportedIsas(): string[]; setIsa(name: string): void };
  const before = addon.isa();
  try {
    for (const isa of addon.supportedIsas()) {
      addon.setIsa(isa);
      fn(isa);
    }
  } finally {
    addon.setIsa(before);
  }
}
