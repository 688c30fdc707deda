/**
 * The seam where fast kernels slot in. Model code calls ops/, ops/ call the
 * active kernel; a new backend (WebAssembly SIMD, native, GPU) implements this
 * interface and is checked against the reference kernel in tests.
 */
export interface MatmulKernel {
  readonly name: string;
  /**
   * C = A · op(B), all row-major and contiguous; C is overwritten.
   * A is [m, k]; B is [k, n], or [n, k] when `transB` (an nn.Linear weight).
   * Offsets are element offsets into the arrays, so batched callers pass slices
   * without allocating views.
   */
  gemm(
    a: Float32Array,
    aOffset: number,
    b: Float32Array,
    bOffset: number,
    c: Float32Array,
    cOffset: number,
    m: number,
    n: number,
    k: number,
    transB: boolean,
  ): void;
}

/** A kernel that splits one matmul across several threads. */
export interface ThreadedMatmulKernel extends MatmulKernel {
  /** Threads one matmul may use, counting the caller. */
  threads(): number;
  /** Sets the thread count (at least 1) and returns the count now in use. */
  setThreads(threads: number): number;
}

/**
 * A weight packed ahead of its products by `PrepackingMatmulKernel.prepack`:
 * op(B) [k, n] laid out in the panels the kernel's inner loop reads, so each
 * product skips packing (and transposing) it. It is a copy: it does not follow
 * later writes to the array it was packed from.
 */
export interface PackedMatrix {
  readonly n: number;
  readonly k: number;
  /** The kernel (and instruction-set variant) that packed it; only that kernel can use it. */
  readonly kernel: string;
}

/**
 * A kernel that can keep a weight packed between products: for inference
 * with weights that do not change (onnxruntime packs its initializers the
 * same way when a session is created).
 */
export interface PrepackingMatmulKernel extends MatmulKernel {
  /** op(B) [k, n] packed once; B is [k, n], or [n, k] when `transB`. */
  prepack(b: Float32Array, bOffset: number, n: number, k: number, transB: boolean): PackedMatrix;
  /**
   * C = A · op(B) for A [m, k] and B packed by this kernel: the same bits as
   * `gemm` for more than 4 rows (with fewer, `gemm` streams B unpacked and sums
   * in another order).
   */
  gemmPacked(a: Float32Array, aOffset: number, packed: PackedMatrix, c: Float32Array, cOffset: number, m: number): void;
  /** Fewest rows for which `gemmPacked` beats `gemm` (5 when absent; 1 where packs are resident copies, as in the WebAssembly kernel). */
  readonly packedMinRows?: number;
}

/** Which kernel ops/matmul is using, for logs, benchmarks and bug reports. */
export interface KernelInfo {
  /** The active kernel's name, e.g. `native-avx512`, `blocked`, `reference`. */
  readonly name: string;
  /** Threads one matmul may use (1 for the JavaScript kernels). */
  readonly threads: number;
  /** Why the native kernel is not in use, when `useFastestKernel` looked for it and found none. */
  readonly nativeUnavailable?: string;
}

/**
 * C = A · Bᵀ with the weight B [n, k] held as bf16 bits (the top half of each
 * f32), so a model's linear layers keep 2 bytes a weight in memory and decode
 * streams half the bytes. A and C are f32, as in `MatmulKernel`.
 */
export interface Bf16MatmulKernel {
  readonly name: string;
  gemmBf16: Bf16Gemm;
  /**
   * The same product with A rounded to bf16 first (nearest even, as
   * `f32ToBf16`): every product of two bf16 values is exact in f32, the sums
   * are f32. On CPUs with AVX512_BF16 this is `vdpbf16ps`, twice the f32 FMA's
   * work an instruction; the activations' rounding is the price (measured in
   * docs/performance.md), so models use it only when asked (`setBf16Activations`).
   */
  gemmBf16Rounded: Bf16Gemm;
}

/** A bf16 kernel that keeps weights resident between products (the WebAssembly kernel: in its memory). */
export interface PrepackingBf16MatmulKernel extends Bf16MatmulKernel {
  /** B [n, k] as bf16 bits, kept for `gemmBf16Packed`; B must not change while the pack is in use. */
  prepackBf16(b: Uint16Array, bOffset: number, n: number, k: number): PackedMatrix;
  /** `gemmBf16` from a pack: the same bits. */
  gemmBf16Packed(a: Float32Array, aOffset: number, packed: PackedMatrix, c: Float32Array, cOffset: number, m: number): void;
}

/** C [m, n] (from cOffset) = A [m, k] (from aOffset) · Bᵀ with B [n, k] bf16 bits (from bOffset). */
export type Bf16Gemm = (
  a: Float32Array,
  aOffset: number,
  b: Uint16Array,
  bOffset: number,
  c: Float32Array,
  cOffset: number,
  m: number,
  n: number,
  k: number,
) => void;

/**
 * C = A · (s ⊙ Q)ᵀ with int8 weights Q [n, k] and one f32 scale per row of Q
 * (per output channel): a quarter of the f32 bytes. A and C are f32.
 */
export interface Int8MatmulKernel {
  readonly name: string;
  gemmInt8: Int8Gemm;
  /**
   * The same product with A quantized too, per row and at run time
   * (dynamic, symmetric): sa_i = max|a_i| / 127 (f32), a8 = a / sa_i rounded
   * to the nearest integer, ties to even. Then C[i, j] = f32(Σ a8·q) · sa_i ·
   * s_j with the dot product an exact integer, so every kernel gives the same
   * bits (k ≤ 65536). Integer dot products are what VNNI (vpdpbusd) runs at
   * four times the f32 FMA rate; rounding the activations is the price.
   */
  gemmInt8Quantized: Int8Gemm;
}

/** An int8 kernel that keeps weights resident between products (the WebAssembly kernel: in its memory). */
export interface PrepackingInt8MatmulKernel extends Int8MatmulKernel {
  /** Q [n, k] and its scales, kept for `gemmInt8Packed`; neither may change while the pack is in use. */
  prepackInt8(q: Int8Array, qOffset: number, scales: Float32Array, n: number, k: number): PackedMatrix;
  /** `gemmInt8` from a pack: the same bits. */
  gemmInt8Packed(a: Float32Array, aOffset: number, packed: PackedMatrix, c: Float32Array, cOffset: number, m: number): void;
}

/** C [m, n] (from cOffset) = A [m, k] (from aOffset) · (scales ⊙ Q)ᵀ with Q [n, k] int8 (from qOffset), scales [n]. */
export type Int8Gemm = (
  a: Float32Array,
  aOffset: number,
  q: Int8Array,
  qOffset: number,
  scales: Float32Array,
  c: Float32Array,
  cOffset: number,
  m: number,
  n: number,
  k: number,
) => void;
