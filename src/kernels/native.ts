/**
 * Loads the native matmul addon (native/, built by scripts/build-native.mjs on
 * install). Node-only: kernels/index.ts reaches this file through a dynamic
 * import that browser builds never execute, so nothing else in the core
 * depends on `node:` modules.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UnsupportedError } from '../errors.js';
import type {
  Bf16Gemm,
  Bf16MatmulKernel,
  Int8Gemm,
  Int8MatmulKernel,
  PackedMatrix,
  PrepackingMatmulKernel,
  ThreadedMatmulKernel,
} from './types.js';

/**
 * The instruction-set variants the addon carries; it picks the widest the CPU
 * has. `avx512vnni` is `avx512` plus VNNI's int8 dot products, `avx512bf16`
 * that plus AVX512_BF16's bf16 dot products; on arm64, `neon-dotprod` is
 * `neon` plus SDOT for the quantized int8 product.
 */
export type NativeIsa = 'avx512bf16' | 'avx512vnni' | 'avx512' | 'avx2' | 'neon-dotprod' | 'neon' | 'scalar';

/** What build/Release/glassformer_native.node exports (see native/addon.cc). */
interface NativeAddon {
  gemm(
    a: Float32Array, aOffset: number, b: Float32Array, bOffset: number, c: Float32Array, cOffset: number,
    m: number, n: number, k: number, transB: boolean,
  ): void;
  gemmBf16: Bf16Gemm;
  gemmInt8: Int8Gemm;
  gemmBf16Rounded: Bf16Gemm;
  gemmInt8Quantized: Int8Gemm;
  prepack(b: Float32Array, bOffset: number, n: number, k: number, transB: boolean): ArrayBuffer;
  gemmPacked(a: Float32Array, aOffset: number, packed: ArrayBuffer, c: Float32Array, cOffset: number, m: number, n: number, k: number): void;
  setThreads(threads: number): number;
  threads(): number;
  isa(): NativeIsa;
  supportedIsas(): NativeIsa[];
  setIsa(isa: NativeIsa): NativeIsa;
  fmaPeak(seconds: number): number;
  streamRead(buffer: Float32Array, threads: number, prefetch: boolean): number;
  /** Bytes of the next decode product's weight the idle worker prefetches between products (0 = off; default 1 MB, at most 32 MB); returns the previous value. */
  setDecodePrefetch(bytes: number): number;
}

/** A weight the addon packed: its panels live in an ArrayBuffer the addon allocated (64-byte aligned). */
interface NativePacked extends PackedMatrix {
  readonly buffer: ArrayBuffer;
}

export interface NativeMatmulKernel
  extends ThreadedMatmulKernel, PrepackingMatmulKernel, Bf16MatmulKernel, Int8MatmulKernel {
  /** The instruction-set variant in use. */
  isa(): NativeIsa;
  /** Every variant this CPU can run, widest first. */
  supportedIsas(): NativeIsa[];
  /** Forces a variant (tests check each one against the reference); returns it. */
  setIsa(isa: NativeIsa): NativeIsa;
  /** GFLOP/s of one core running independent FMAs in registers, the ceiling for any matmul. */
  fmaPeak(seconds?: number): number;
  /**
   * GB/s of one timed pass reading `buffer` front to back the way a GEMV
   * reads its weights (AVX-512 loads, four accumulators), on up to `threads`
   * threads of the pool, optionally with software prefetch 4 KB ahead. Pass a
   * buffer well above the last-level cache (e.g. 512 MB) to measure memory:
   * the limit for decoding, whose products stream every weight once a token.
   * Raw export: `streamRead(buffer, threads, prefetch)`.
   */
  streamRead(buffer: Float32Array, threads?: number, prefetch?: boolean): number;
}

export type NativeLoadResult = { kernel: NativeMatmulKernel } | { kernel: undefined; reason: string };

const ADDON_PATH = join('build', 'Release', 'glassformer_native.node');

/**
 * The package root: the nearest folder above this file holding the addon's
 * binding.gyp. Compiled, this file is dist/src/kernels/native.js (three
 * levels down); run from source it is src/kernels/native.ts (two).
 */
function packageRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let level = 0; level < 4; level++) {
    dir = dirname(dir);
    if (existsSync(join(dir, 'binding.gyp'))) return dir;
  }
  return undefined;
}

/**
 * The native kernel, or the reason it cannot be used. Setting the environment
 * variable GLASSFORMER_NATIVE=0 turns it off (to compare against the
 * JavaScript kernels, or to rule it out when chasing a bug).
 */
export function loadNativeKernel(): NativeLoadResult {
  const loaded = loadAddon();
  return 'addon' in loaded ? { kernel: wrap(loaded.addon as unknown as NativeAddon) } : { kernel: undefined, reason: loaded.reason };
}

let addonLoad: { addon: Record<string, unknown> } | { reason: string } | undefined;

/**
 * The addon's exports untyped, loaded once: the files that wrap the fused
 * ops (native/ops.cc, native/elementwise.cc) type their own functions.
 */
export function loadAddon(): { addon: Record<string, unknown> } | { reason: string } {
  if (process.env.GLASSFORMER_NATIVE === '0') return { reason: 'GLASSFORMER_NATIVE=0' };
  addonLoad ??= requireAddon();
  return addonLoad;
}

function requireAddon(): { addon: Record<string, unknown> } | { reason: string } {
  const root = packageRoot();
  if (root === undefined) return { reason: 'package root with binding.gyp not found' };
  const file = join(root, ADDON_PATH);
  if (!existsSync(file)) return { reason: `${file} not built (run: node scripts/build-native.mjs)` };
  try {
    return { addon: createRequire(import.meta.url)(file) as Record<string, unknown> };
  } catch (error) {
    return { reason: `${file} failed to load: ${(error as Error).message}` };
  }
}

function wrap(addon: NativeAddon): NativeMatmulKernel {
  return {
    get name() {
      return `native-${addon.isa()}`;
    },
    // Arguments are checked in the addon: Float32Arrays, integer sizes, and
    // every matrix inside its array from its offset (a RangeError otherwise).
    gemm: addon.gemm,
    gemmBf16: addon.gemmBf16,
    gemmBf16Rounded: addon.gemmBf16Rounded,
    prepack(b, bOffset, n, k, transB): NativePacked {
      return { n, k, kernel: this.name, buffer: addon.prepack(b, bOffset, n, k, transB) };
    },
    gemmPacked(a, aOffset, packed, c, cOffset, m) {
      if (!('buffer' in packed) || !((packed as NativePacked).buffer instanceof ArrayBuffer)) {
        throw new UnsupportedError(`gemmPacked: the weight was packed by ${packed.kernel}, not by the native kernel`);
      }
      addon.gemmPacked(a, aOffset, (packed as NativePacked).buffer, c, cOffset, m, packed.n, packed.k);
    },
    gemmInt8: addon.gemmInt8,
    gemmInt8Quantized: addon.gemmInt8Quantized,
    threads: () => addon.threads(),
    setThreads: (threads) => addon.setThreads(threads),
    isa: () => addon.isa(),
    supportedIsas: () => addon.supportedIsas(),
    setIsa: (isa) => addon.setIsa(isa),
    fmaPeak: (seconds = 0.2) => addon.fmaPeak(seconds),
    streamRead: (buffer, threads = 1, prefetch = false) => addon.streamRead(buffer, threads, prefetch),
  };
}
