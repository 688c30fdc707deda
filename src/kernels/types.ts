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
