/**
 * Which matmul kernel ops/ use. Three implementations sit behind one
 * interface (types.ts):
 *
 * - `referenceMatmul`: the formula as three loops, the yardstick in tests;
 * - `blockedMatmul`: cache-blocked TypeScript, the default, runs anywhere;
 * - the native addon (native.ts): AVX-512/AVX2 SIMD on all cores, Node only,
 *   switched on by `useFastestKernel()`.
 *
 * This file imports no `node:` module, so a browser build can include it.
 */
import { blockedMatmul } from './blocked.js';
import { referenceBf16Matmul } from './bf16.js';
import { referenceInt8Matmul } from './int8.js';
import type { AttentionKernel, Bf16MatmulKernel, Int8MatmulKernel, KernelInfo, MatmulKernel, ThreadedMatmulKernel } from './types.js';

export type { AttentionKernel, Bf16MatmulKernel, Int8MatmulKernel, KernelInfo, MatmulKernel, ThreadedMatmulKernel } from './types.js';
export { referenceInt8Matmul } from './int8.js';
export { referenceMatmul } from './reference.js';
export { blockedMatmul } from './blocked.js';
export { referenceBf16Matmul } from './bf16.js';

let active: MatmulKernel = blockedMatmul;
let activeBf16: Bf16MatmulKernel = referenceBf16Matmul;
let activeInt8: Int8MatmulKernel = referenceInt8Matmul;
let fusedAttention: AttentionKernel | undefined;
let nativeUnavailable: string | undefined;
let fastest: Promise<KernelInfo> | undefined;
let nativeAddon: Record<string, unknown> | undefined;
const nativeListeners: ((addon: Record<string, unknown>) => void)[] = [];

/**
 * Calls `listener` with the native addon's raw exports once `useFastestKernel()`
 * has loaded it (at once if it already has; never without the addon). The
 * seams for fused ops outside the matmul (kernels/elementwise.ts and the like)
 * type and wrap their own functions this way, so this file names none of them.
 */
export function onNativeAddon(listener: (addon: Record<string, unknown>) => void): void {
  nativeListeners.push(listener);
  if (nativeAddon !== undefined) listener(nativeAddon);
}

/** The kernel ops/matmul uses. */
export function matmulKernel(): MatmulKernel {
  return active;
}

/** The kernel for linear layers whose weights are kept as bf16 (native when loaded, else the reference). */
export function bf16MatmulKernel(): Bf16MatmulKernel {
  return activeBf16;
}

/** Swap the bf16 kernel; returns the previous one. */
export function setBf16MatmulKernel(kernel: Bf16MatmulKernel): Bf16MatmulKernel {
  const previous = activeBf16;
  activeBf16 = kernel;
  return previous;
}

/** The kernel for linear layers whose weights are int8 with per-channel scales (native when loaded, else the reference). */
export function int8MatmulKernel(): Int8MatmulKernel {
  return activeInt8;
}

/** Swap the int8 kernel; returns the previous one. */
export function setInt8MatmulKernel(kernel: Int8MatmulKernel): Int8MatmulKernel {
  const previous = activeInt8;
  activeInt8 = kernel;
  return previous;
}

/**
 * The fused attention kernel for a few query rows, when the native addon is
 * loaded; without it `attend` runs its unfused ops, which are the reference.
 */
export function attentionKernel(): AttentionKernel | undefined {
  return fusedAttention;
}

/** Swap the fused attention kernel (undefined turns the fused path off); returns the previous one. */
export function setAttentionKernel(kernel: AttentionKernel | undefined): AttentionKernel | undefined {
  const previous = fusedAttention;
  fusedAttention = kernel;
  return previous;
}

/** Swap the kernel (e.g. back to the reference to compare); returns the previous one. */
export function setMatmulKernel(kernel: MatmulKernel): MatmulKernel {
  const previous = active;
  active = kernel;
  return previous;
}

function isThreaded(kernel: MatmulKernel): kernel is ThreadedMatmulKernel {
  return typeof (kernel as Partial<ThreadedMatmulKernel>).threads === 'function';
}

/** The active kernel's name and thread count, and why native is off if it was looked for and is. */
export function kernelInfo(): KernelInfo {
  return {
    name: active.name,
    threads: isThreaded(active) ? active.threads() : 1,
    ...(nativeUnavailable === undefined ? {} : { nativeUnavailable }),
  };
}

/**
 * Makes the native kernel active when this is Node and the addon is built;
 * otherwise keeps the blocked TypeScript kernel and records why in
 * `kernelInfo().nativeUnavailable`. A Node program calls it once at start-up;
 * later calls return the same result.
 */
export function useFastestKernel(): Promise<KernelInfo> {
  fastest ??= loadFastest();
  return fastest;
}

async function loadFastest(): Promise<KernelInfo> {
  const isNode = typeof globalThis.process?.versions?.node === 'string';
  if (!isNode) {
    nativeUnavailable = 'not running in Node';
    return kernelInfo();
  }
  // A computed specifier keeps bundlers from pulling the Node-only loader
  // into a browser build.
  const loader = './native' + '.js';
  let loadNativeKernel: typeof import('./native.js').loadNativeKernel;
  let loadAddon: typeof import('./native.js').loadAddon;
  try {
    ({ loadNativeKernel, loadAddon } = (await import(/* @vite-ignore */ /* webpackIgnore: true */ loader)) as
      typeof import('./native.js'));
  } catch (error) {
    // A bundle that left the loader behind: keep the TypeScript kernel.
    nativeUnavailable = `native loader not found: ${(error as Error).message}`;
    return kernelInfo();
  }
  const loaded = loadNativeKernel();
  if (loaded.kernel === undefined) {
    nativeUnavailable = loaded.reason;
  } else {
    active = loaded.kernel;
    activeBf16 = loaded.kernel;
    activeInt8 = loaded.kernel;
    fusedAttention = loaded.kernel;
    const raw = loadAddon();
    if ('addon' in raw) {
      nativeAddon = raw.addon;
      for (const listener of nativeListeners) listener(raw.addon);
    }
  }
  return kernelInfo();
}
