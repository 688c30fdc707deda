/**
 * Which matmul kernel ops/ use. Three implementations sit behind one
 * interface (types.ts):
 *
 * - `referenceMatmul`: the formula as three loops, the yardstick in tests;
 * - `blockedMatmul`: cache-blocked TypeScript, the default, runs anywhere;
 * - the native addon (native.ts): AVX-512/AVX2 SIMD on all cores, Node only,
 *   switched on by `useFastestKernel()`;
 * - WebAssembly SIMD (wasm/): browsers, and Node when the addon cannot load,
 *   also switched on by `useFastestKernel()`.
 *
 * This file imports no `node:` module, so a browser build can include it.
 */
import { blockedMatmul } from './blocked.js';
import { referenceBf16Matmul } from './bf16.js';
import { referenceInt8Matmul } from './int8.js';
import { createWasmKernel, type WasmMatmulKernel } from './wasm/kernel.js';
import type { Bf16MatmulKernel, Int8MatmulKernel, KernelInfo, MatmulKernel, ThreadedMatmulKernel } from './types.js';

export type { Bf16MatmulKernel, Int8MatmulKernel, KernelInfo, MatmulKernel, ThreadedMatmulKernel } from './types.js';
export { referenceInt8Matmul } from './int8.js';
export { referenceMatmul } from './reference.js';
export { blockedMatmul } from './blocked.js';
export { referenceBf16Matmul } from './bf16.js';
export { createWasmKernel, type WasmMatmulKernel } from './wasm/kernel.js';

let active: MatmulKernel = blockedMatmul;
let activeBf16: Bf16MatmulKernel = referenceBf16Matmul;
let activeInt8: Int8MatmulKernel = referenceInt8Matmul;
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
 * Makes the fastest kernel this platform has active: the native addon when
 * this is Node and it is built, else WebAssembly SIMD (browsers, or Node
 * without the addon, with a one-line notice on stderr), else the blocked
 * TypeScript kernel. `kernelInfo().name` says which runs and
 * `nativeUnavailable` why the addon does not. GLASSFORMER_NATIVE=0 rules out
 * the addon and GLASSFORMER_WASM=0 WebAssembly. A program calls it once at
 * start-up; later calls return the same result.
 */
export function useFastestKernel(): Promise<KernelInfo> {
  fastest ??= loadFastest();
  return fastest;
}

const isNode = typeof globalThis.process?.versions?.node === 'string';

async function loadFastest(): Promise<KernelInfo> {
  nativeUnavailable = isNode ? await loadNative() : 'not running in Node';
  if (nativeUnavailable === undefined) return kernelInfo();
  const wasm = await loadWasm();
  if (isNode && nativeUnavailable !== 'GLASSFORMER_NATIVE=0') {
    const using = typeof wasm === 'string' ? `the TypeScript kernel (WebAssembly: ${wasm})` : `WebAssembly SIMD (${active.name})`;
    console.warn(`glassformer: native kernels unavailable (${nativeUnavailable}); using ${using}`);
  }
  return kernelInfo();
}

/** Activates the native addon's kernels; the reason when it cannot. */
async function loadNative(): Promise<string | undefined> {
  // A computed specifier keeps bundlers from pulling the Node-only loader
  // into a browser build.
  const loader = './native' + '.js';
  let loadNativeKernel: typeof import('./native.js').loadNativeKernel;
  let loadAddon: typeof import('./native.js').loadAddon;
  try {
    ({ loadNativeKernel, loadAddon } = (await import(/* @vite-ignore */ /* webpackIgnore: true */ loader)) as
      typeof import('./native.js'));
  } catch (error) {
    // A bundle that left the loader behind.
    return `native loader not found: ${(error as Error).message}`;
  }
  const loaded = loadNativeKernel();
  if (loaded.kernel === undefined) return loaded.reason;
  active = loaded.kernel;
  activeBf16 = loaded.kernel;
  activeInt8 = loaded.kernel;
  const raw = loadAddon();
  if ('addon' in raw) {
    nativeAddon = raw.addon;
    for (const listener of nativeListeners) listener(raw.addon);
  }
  return undefined;
}

/** Activates the WebAssembly SIMD kernel; the reason when it cannot. */
async function loadWasm(): Promise<WasmMatmulKernel | string> {
  if (isNode && globalThis.process.env.GLASSFORMER_WASM === '0') return 'GLASSFORMER_WASM=0';
  try {
    const kernel = await createWasmKernel();
    active = kernel;
    activeBf16 = kernel;
    activeInt8 = kernel;
    return kernel;
  } catch (error) {
    return (error as Error).message;
  }
}
