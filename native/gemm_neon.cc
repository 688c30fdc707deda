// AArch64 Advanced SIMD (NEON) variant: an 8x12 microkernel in the 32 128-bit
// registers (24 accumulators: 8 rows x 3 vectors of 4 floats; 3 vectors of B;
// 8 values of A in 2 vectors, each FMA taking its A value from a lane:
// `fmla v.4s, v.4s, v.s[lane]`, so A is never broadcast). The tile of BLIS's
// armv8a sgemm kernel (bli_sgemm_armv8a_asm_8x12, Cortex-A57 to Neoverse N2):
// 24 FMAs per 5 loads, which covers four FMA pipes of 4-cycle latency (16
// chains) with room to spare. Decode GEMVs read each weight row front to back;
// bf16 and int8 weights are widened in registers; the quantized int8 product
// multiplies bytes into 16-bit lanes (SMULL) and pairs them into 32-bit sums
// (SADALP), or uses SDOT where the CPU has it.
#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/auxv.h>
#elif defined(__APPLE__)
#include <sys/sysctl.h>
#endif

#include "gemm.h"
#include "gemm_neon.h"
#include "driver.h"

namespace {

using glassformer::Gemm;

// In-register transpose of a 4x4 tile: r[i] holds row i on entry, column i on exit.
inline void transpose4(float32x4_t r[4]) {
  const float32x4x2_t t01 = vtrnq_f32(r[0], r[1]);  // (r0[0] r1[0] r0[2] r1[2]), (r0[1] r1[1] r0[3] r1[3])
  const float32x4x2_t t23 = vtrnq_f32(r[2], r[3]);
  r[0] = vcombine_f32(vget_low_f32(t01.val[0]), vget_low_f32(t23.val[0]));
  r[1] = vcombine_f32(vget_low_f32(t01.val[1]), vget_low_f32(t23.val[1]));
  r[2] = vcombine_f32(vget_high_f32(t01.val[0]), vget_high_f32(t23.val[0]));
  r[3] = vcombine_f32(vget_high_f32(t01.val[1]), vget_high_f32(t23.val[1]));
}

// bf16 is the top half of an f32: a widening shift left by 16 (USHLL).
inline float32x4_t widen_bf16(uint16x4_t bits) { return vreinterpretq_f32_u32(vshll_n_u16(bits, 16)); }

inline float widen_bf16(uint16_t bits16) {
  const uint32_t bits = static_cast<uint32_t>(bits16) << 16;
  float wide;
  std::memcpy(&wide, &bits, 4);
  return wide;
}

// The low four int8 lanes of v as f32 (exact).
inline float32x4_t widen_int8_low4(int8x8_t v) { return vcvtq_f32_s32(vmovl_s16(vget_low_s16(vmovl_s8(v)))); }

// Four int8 values from memory, without reading past them.
inline int8x8_t load_int8x4(const int8_t* p) {
  int32_t word;
  std::memcpy(&word, p, 4);
  return vreinterpret_s8_s32(vdup_n_s32(word));
}

// Rows of a matrix as the packs read them, widened to f32: row r, columns
// [p, p + 4) as a vector, or one element. A weight in int8 is times its row's
// scale, as b_element computes it (one f32 rounding of the product).
struct F32Matrix {
  const float* base;
  int64_t ld;
  float32x4_t load4(int64_t r, int64_t p) const { return vld1q_f32(base + r * ld + p); }
  float at(int64_t r, int64_t p) const { return base[r * ld + p]; }
};

struct Bf16Matrix {
  const uint16_t* base;
  int64_t ld;
  float32x4_t load4(int64_t r, int64_t p) const { return widen_bf16(vld1_u16(base + r * ld + p)); }
  float at(int64_t r, int64_t p) const { return widen_bf16(base[r * ld + p]); }
};

struct Int8Matrix {
  const int8_t* base;
  int64_t ld;
  const float* scales;
  float32x4_t load4(int64_t r, int64_t p) const {
    return vmulq_n_f32(widen_int8_low4(load_int8x4(base + r * ld + p)), scales[r]);
  }
  float at(int64_t r, int64_t p) const { return static_cast<float>(base[r * ld + p]) * scales[r]; }
};

// dst[p * stride + i] = src(r0 + i, p0 + p) for i < 4 and p < kc, zero for
// i >= rows: four rows become the lanes, through 4x4 register transposes.
template <class Matrix>
void pack_rows4(const Matrix& src, int64_t r0, int64_t rows, int64_t p0, int64_t kc, float* dst, int64_t stride) {
  int64_t p = 0;
  if (rows == 4) {
    for (; p + 4 <= kc; p += 4) {
      float32x4_t r[4] = {src.load4(r0, p0 + p), src.load4(r0 + 1, p0 + p), src.load4(r0 + 2, p0 + p),
                          src.load4(r0 + 3, p0 + p)};
      transpose4(r);
      for (int q = 0; q < 4; ++q) vst1q_f32(dst + (p + q) * stride, r[q]);
    }
  }
  for (; p < kc; ++p) {
    for (int64_t i = 0; i < 4; ++i) dst[p * stride + i] = i < rows ? src.at(r0 + i, p0 + p) : 0.0f;
  }
}

// Packs `rows` (<= 4 * groups) rows of src from r0 as `groups` groups of four
// lanes side by side, stride 4 * groups: the MR-row panel of A, or the NR
// columns of a weight held as [n, k].
template <class Matrix>
void pack_lanes(const Matrix& src, int64_t groups, int64_t r0, int64_t rows, int64_t p0, int64_t kc, float* dst) {
  for (int64_t v = 0; v < groups; ++v) {
    const int64_t in_group = std::max<int64_t>(0, std::min<int64_t>(4, rows - 4 * v));
    pack_rows4(src, r0 + 4 * v, in_group, p0, kc, dst + 4 * v, 4 * groups);
  }
}

struct Neon {
  static constexpr int64_t MR = 8;
  static constexpr int64_t NV = 3;  // vectors per row of the tile
  static constexpr int64_t NR = 4 * NV;
  // A micro-panel 8 x 512 floats (16 KB) and a B micro-panel 12 x 512 (24 KB)
  // fit a 64 KB L1 (Neoverse N1/V1/N2); an A block of 16 panels (256 KB) the
  // L2 of any of them; B's block KC x NC (6 MB) the shared L3 or SLC.
  static constexpr int64_t KC = 512;
  static constexpr int64_t MC = MR * 16;
  static constexpr int64_t NC = 3072;

  static void pack_a(const float* a, int64_t lda, int64_t rows, int64_t kc, float* dst) {
    pack_lanes(F32Matrix{a, lda}, MR / 4, 0, rows, 0, kc, dst);
  }

  static void pack_b(const Gemm& g, int64_t p0, int64_t kc, int64_t j0, int64_t cols, float* dst) {
    if (g.b16) {
      pack_lanes(Bf16Matrix{g.b16, g.k}, NV, j0, cols, p0, kc, dst);
    } else if (g.b8) {
      pack_lanes(Int8Matrix{g.b8, g.k, g.b8_scales}, NV, j0, cols, p0, kc, dst);
    } else if (g.trans_b) {
      pack_lanes(F32Matrix{g.b, g.k}, NV, j0, cols, p0, kc, dst);
    } else if (cols == NR) {
      // B is [k, n]: each step of k is one contiguous run of NR columns.
      const float* src = g.b + p0 * g.n + j0;
      for (int64_t p = 0; p < kc; ++p, src += g.n) {
        for (int64_t v = 0; v < NV; ++v) vst1q_f32(dst + p * NR + 4 * v, vld1q_f32(src + 4 * v));
      }
    } else {
      pack_b_portable<NR>(g, p0, kc, j0, cols, dst);
    }
  }

  // acc[I][v] += b[v] * a[I], A's value I taken from lane I % 4 of its vector.
  template <int I>
  static void fma_row(float32x4_t acc[MR][NV], const float32x4_t b[NV], float32x4_t a_lo, float32x4_t a_hi) {
    const float32x4_t a = I < 4 ? a_lo : a_hi;
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) acc[I][v] = vfmaq_laneq_f32(acc[I][v], b[v], a, I % 4);
  }

  template <int... I>
  static void fma_rows(std::integer_sequence<int, I...>, float32x4_t acc[MR][NV], const float32x4_t b[NV],
                       float32x4_t a_lo, float32x4_t a_hi) {
    (fma_row<I>(acc, b, a_lo, a_hi), ...);
  }

  static void kernel(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, int64_t rows, int64_t cols,
                     bool accumulate) {
    float32x4_t acc[MR][NV];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) acc[i][v] = vdupq_n_f32(0.0f);
    }
    for (int64_t p = 0; p < kc; ++p) {
      const float32x4_t b[NV] = {vld1q_f32(pb), vld1q_f32(pb + 4), vld1q_f32(pb + 8)};
      fma_rows(std::make_integer_sequence<int, MR>{}, acc, b, vld1q_f32(pa), vld1q_f32(pa + 4));
      pa += MR;
      pb += NR;
    }
    if (rows == MR && cols == NR) {
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        float* row = c + i * ldc;
#pragma GCC unroll 3
        for (int v = 0; v < NV; ++v) {
          const float32x4_t out = accumulate ? vaddq_f32(vld1q_f32(row + 4 * v), acc[i][v]) : acc[i][v];
          vst1q_f32(row + 4 * v, out);
        }
      }
      return;
    }
    // Edge tile: spill, then copy the valid part.
    float tile[MR][NR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) vst1q_f32(tile[i] + 4 * v, acc[i][v]);
    }
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) c[i * ldc + j] = accumulate ? c[i * ldc + j] + tile[i][j] : tile[i][j];
    }
  }
};
static_assert(Neon::NV == 3, "the microkernel loads three vectors of B");

// How dot_row reads one kind of weight row: 16 weights widened to four f32
// vectors, 4 to one, or one.
struct F32Rows {
  using Weight = float;
  static void load16(const float* w, float32x4_t v[4]) {
    for (int i = 0; i < 4; ++i) v[i] = vld1q_f32(w + 4 * i);
  }
  static float32x4_t load4(const float* w) { return vld1q_f32(w); }
  static float at(const float* w) { return *w; }
};

struct Bf16Rows {
  using Weight = uint16_t;
  static void load16(const uint16_t* w, float32x4_t v[4]) {
    const uint16x8_t lo = vld1q_u16(w);
    const uint16x8_t hi = vld1q_u16(w + 8);
    v[0] = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(lo), 16));
    v[1] = vreinterpretq_f32_u32(vshll_high_n_u16(lo, 16));
    v[2] = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(hi), 16));
    v[3] = vreinterpretq_f32_u32(vshll_high_n_u16(hi, 16));
  }
  static float32x4_t load4(const uint16_t* w) { return widen_bf16(vld1_u16(w)); }
  static float at(const uint16_t* w) { return widen_bf16(*w); }
};

struct Int8Rows {
  using Weight = int8_t;
  // 16 bytes to 16-bit lanes (SXTL, SXTL2), to 32-bit lanes, to f32.
  static void load16(const int8_t* w, float32x4_t v[4]) {
    const int8x16_t all = vld1q_s8(w);
    const int16x8_t lo = vmovl_s8(vget_low_s8(all));
    const int16x8_t hi = vmovl_high_s8(all);
    v[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
    v[1] = vcvtq_f32_s32(vmovl_high_s16(lo));
    v[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
    v[3] = vcvtq_f32_s32(vmovl_high_s16(hi));
  }
  static float32x4_t load4(const int8_t* w) { return widen_int8_low4(load_int8x4(w)); }
  static float at(const int8_t* w) { return static_cast<float>(*w); }
};

// out[i] = a_i · w for the M rows of A (row stride k) and one weight row w of
// length k, read once, front to back (one linear stream keeps the hardware
// prefetcher at full rate; see gemm_avx512.cc). Four accumulators per row of
// A over 16 weights a step, then steps of 4, then single weights: each row of
// A is summed in the same order whatever M or the split between threads.
template <class Rows, int M>
inline void dot_row(const float* a, const typename Rows::Weight* w, int64_t k, float* out) {
  // Every index constant once the loops unroll, so the accumulators stay in registers.
  float32x4_t acc[M][4];
#pragma GCC unroll 4
  for (int i = 0; i < M; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) acc[i][v] = vdupq_n_f32(0.0f);
  }
  int64_t p = 0;
  for (; p + 16 <= k; p += 16) {
    float32x4_t wv[4];
    Rows::load16(w + p, wv);
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) {
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) acc[i][v] = vfmaq_f32(acc[i][v], vld1q_f32(a + i * k + p + 4 * v), wv[v]);
    }
  }
  for (; p + 4 <= k; p += 4) {
    const float32x4_t wt = Rows::load4(w + p);
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) acc[i][0] = vfmaq_f32(acc[i][0], vld1q_f32(a + i * k + p), wt);
  }
#pragma GCC unroll 4
  for (int i = 0; i < M; ++i) {
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[i][0], acc[i][1]), vaddq_f32(acc[i][2], acc[i][3])));
    for (int64_t q = p; q < k; ++q) sum = std::fma(a[i * k + q], Rows::at(w + q), sum);
    out[i] = sum;
  }
}

// C[:, n0:n1] = A · Bᵀ for weight rows B [n, k] and M rows of A, times
// scales[j] per row when scales is given.
template <class Rows, int M>
void gemv_rows_m(const float* a, const typename Rows::Weight* b, const float* scales, float* c, int64_t n, int64_t k,
                 int64_t n0, int64_t n1) {
  float out[M];
  for (int64_t j = n0; j < n1; ++j) {
    dot_row<Rows, M>(a, b + j * k, k, out);
    for (int i = 0; i < M; ++i) c[i * n + j] = scales ? out[i] * scales[j] : out[i];
  }
}

// The same for any m: groups of up to four rows of A share each weight row.
template <class Rows>
void gemv_rows(const float* a, const typename Rows::Weight* b, const float* scales, float* c, int64_t m, int64_t n,
               int64_t k, int64_t n0, int64_t n1) {
  for (int64_t i = 0; i < m; i += 4) {
    const float* ai = a + i * k;
    float* ci = c + i * n;
    switch (std::min<int64_t>(4, m - i)) {
      case 1: gemv_rows_m<Rows, 1>(ai, b, scales, ci, n, k, n0, n1); break;
      case 2: gemv_rows_m<Rows, 2>(ai, b, scales, ci, n, k, n0, n1); break;
      case 3: gemv_rows_m<Rows, 3>(ai, b, scales, ci, n, k, n0, n1); break;
      default: gemv_rows_m<Rows, 4>(ai, b, scales, ci, n, k, n0, n1); break;
    }
  }
}

// C[:, n0:n1] += A[:, p:p+R] · B[p:p+R, n0:n1] for B [k, n]: R rows of B per
// pass over C, so C is loaded and stored once per R FMAs and stays in L1.
// Every element of C is one chain of fused multiply-adds over p in order
// (vector or scalar), so the split into column ranges never changes a bit.
template <int R>
inline void axpy_pass(const Gemm& g, int64_t p, int64_t n0, int64_t n1) {
  const float* w = g.b + p * g.n;
  for (int64_t i = 0; i < g.m; ++i) {
    const float* a = g.a + i * g.k + p;
    float* c = g.c + i * g.n;
    int64_t j = n0;
    for (; j + 4 <= n1; j += 4) {
      float32x4_t acc = vld1q_f32(c + j);
      for (int r = 0; r < R; ++r) acc = vfmaq_n_f32(acc, vld1q_f32(w + r * g.n + j), a[r]);
      vst1q_f32(c + j, acc);
    }
    for (; j < n1; ++j) {
      float acc = c[j];
      for (int r = 0; r < R; ++r) acc = std::fma(a[r], w[r * g.n + j], acc);
      c[j] = acc;
    }
  }
}

// C[:, n0:n1] = A · B[:, n0:n1] for B [k, n], walking B row by row, each
// row's slice one contiguous run (see gemm_avx512.cc's axpy_rows).
void axpy_rows(const Gemm& g, int64_t n0, int64_t n1) {
  for (int64_t i = 0; i < g.m; ++i) std::fill(g.c + i * g.n + n0, g.c + i * g.n + n1, 0.0f);
  int64_t p = 0;
  for (; p + 8 <= g.k; p += 8) axpy_pass<8>(g, p, n0, n1);
  for (; p < g.k; ++p) axpy_pass<1>(g, p, n0, n1);
}

void gemv(const Gemm& g, int64_t n0, int64_t n1) {
  if (g.trans_b) {
    gemv_rows<F32Rows>(g.a, g.b, nullptr, g.c, g.m, g.n, g.k, n0, n1);
    return;
  }
  axpy_rows(g, n0, n1);
}

void gemv_bf16(const float* a, const uint16_t* b, float* c, int64_t m, int64_t n, int64_t k, int64_t n0,
               int64_t n1) {
  gemv_rows<Bf16Rows>(a, b, nullptr, c, m, n, k, n0, n1);
}

void gemv_int8(const float* a, const int8_t* q, const float* scales, float* c, int64_t m, int64_t n, int64_t k,
               int64_t n0, int64_t n1) {
  gemv_rows<Int8Rows>(a, q, scales, c, m, n, k, n0, n1);
}

// bf16 weights times bf16-rounded activations: each product of two bf16
// values is exact in f32, so widening A once into f32 rows and running the
// f32 GEMM (whose packs widen B block by block) gives f32 sums of the exact
// products at the microkernel's rate. The widened A is m x k floats, small
// beside the m x (n1 - n0) x k product. n0 need not be a multiple of NR:
// nothing is shared between threads, each packs its own panels.
void gemm_bf16_rounded(const uint16_t* a, const uint16_t* b, float* c, int64_t m, int64_t n, int64_t k, int64_t n0,
                       int64_t n1) {
  const int64_t kp = k + (k & 1);
  static thread_local std::vector<float> wide;
  wide.resize(static_cast<size_t>(m * k));
  for (int64_t i = 0; i < m; ++i) {
    const uint16_t* row = a + i * kp;
    float* out = wide.data() + i * k;
    int64_t p = 0;
    for (; p + 4 <= k; p += 4) vst1q_f32(out + p, widen_bf16(vld1_u16(row + p)));
    for (; p < k; ++p) out[p] = widen_bf16(row[p]);
  }
  Gemm g{wide.data(), nullptr, c, m, n, k, true};
  g.b16 = b;
  gemm_block_impl<Neon>(g, 0, m, n0, n1, nullptr, nullptr);
}

// dot[i] = Σ_p (a_i[p] − 128) · w[p] for the M activation rows (stride k, each
// byte the int8 value plus 128) and one int8 weight row w, read once, front to
// back. Flipping the top bit of a byte takes 128 off it (exact in [-127, 127]);
// SMULL multiplies 8 pairs of bytes into 16-bit lanes (|product| <= 16256,
// exact) and SADALP adds neighbouring pairs into the 32-bit sums.
template <int M>
inline void dot_row_q(const uint8_t* a, const int8_t* w, int64_t k, int32_t* dot) {
  const uint8x16_t bias = vdupq_n_u8(0x80);
  int32x4_t acc[M];
  for (int i = 0; i < M; ++i) acc[i] = vdupq_n_s32(0);
  int64_t p = 0;
  for (; p + 16 <= k; p += 16) {
    const int8x16_t wv = vld1q_s8(w + p);
    for (int i = 0; i < M; ++i) {
      const int8x16_t x = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(a + i * k + p), bias));
      acc[i] = vpadalq_s16(acc[i], vmull_s8(vget_low_s8(x), vget_low_s8(wv)));
      acc[i] = vpadalq_s16(acc[i], vmull_high_s8(x, wv));
    }
  }
  for (int i = 0; i < M; ++i) {
    int32_t sum = vaddvq_s32(acc[i]);
    for (int64_t q = p; q < k; ++q) sum += (static_cast<int32_t>(a[i * k + q]) - 128) * w[q];
    dot[i] = sum;
  }
}

// C[:, n0:n1] for the quantized int8 product, rows of A in groups of up to
// four sharing each weight row, every dot product DotRow<M> computes scaled
// once as the interface requires: f32(dot) · a_scales[i] · scales[j].
template <template <int> class DotRow>
void gemm_int8_q_rows(const uint8_t* a, const float* a_scales, const int8_t* q, const float* scales, float* c,
                      int64_t m, int64_t n, int64_t k, int64_t n0, int64_t n1) {
  for (int64_t i0 = 0; i0 < m; i0 += 4) {
    const int64_t rows = std::min<int64_t>(4, m - i0);
    const uint8_t* ai = a + i0 * k;
    for (int64_t j = n0; j < n1; ++j) {
      int32_t dot[4];
      switch (rows) {
        case 1: DotRow<1>::run(ai, q + j * k, k, dot); break;
        case 2: DotRow<2>::run(ai, q + j * k, k, dot); break;
        case 3: DotRow<3>::run(ai, q + j * k, k, dot); break;
        default: DotRow<4>::run(ai, q + j * k, k, dot); break;
      }
      for (int64_t i = 0; i < rows; ++i) {
        c[(i0 + i) * n + j] = static_cast<float>(dot[i]) * a_scales[i0 + i] * scales[j];
      }
    }
  }
}

template <int M>
struct WideningDot {
  static void run(const uint8_t* a, const int8_t* w, int64_t k, int32_t* dot) { dot_row_q<M>(a, w, k, dot); }
};

void gemm_int8_q(const uint8_t* a, const float* a_scales, const int8_t* q, const float* scales, float* c, int64_t m,
                 int64_t n, int64_t k, int64_t n0, int64_t n1) {
  gemm_int8_q_rows<WideningDot>(a, a_scales, q, scales, c, m, n, k, n0, n1);
}

// Sums `count` floats the way a GEMV reads its weights (one linear stream,
// four accumulators over 16 floats); with `prefetch`, also asks for the line
// 4 KB ahead (PRFM PLDL1KEEP). The sum keeps the loads from being optimised away.
double stream_read(const float* data, int64_t count, bool prefetch) {
  float32x4_t acc[4];
  for (int v = 0; v < 4; ++v) acc[v] = vdupq_n_f32(0.0f);
  int64_t p = 0;
  for (; p + 16 <= count; p += 16) {
    if (prefetch) __builtin_prefetch(data + p + 1024);
    for (int v = 0; v < 4; ++v) acc[v] = vaddq_f32(acc[v], vld1q_f32(data + p + 4 * v));
  }
  double sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
  for (; p < count; ++p) sum += data[p];
  return sum;
}

double fma_peak(double seconds) {
  // 24 independent chains cover four FMA pipes of 4-cycle latency (Neoverse
  // V1/V2; N1 and Cortex-A76 have two). acc = acc * 0.999 + 0.001 converges
  // to 1, so no overflow or denormals.
  constexpr int kChains = 24;
  float32x4_t acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = vdupq_n_f32(1.0f + static_cast<float>(i) * 0.01f);
  const float32x4_t x = vdupq_n_f32(0.999f);
  const float32x4_t y = vdupq_n_f32(0.001f);
  const double gflops = time_fma_steps(seconds, kChains * 4 * 2, [&] {
#pragma GCC unroll 24
    for (int i = 0; i < kChains; ++i) acc[i] = vfmaq_f32(y, acc[i], x);
  });
  float32x4_t sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = vaddq_f32(sum, acc[i]);
  volatile float sink = vaddvq_f32(sum);
  (void)sink;
  return gflops;
}

}  // namespace

// SDOT (FEAT_DotProd, optional from ARMv8.2-A: Cortex-A55/A75 and later, every
// Neoverse, Apple M1 and later): four byte products summed into each 32-bit
// lane, 16 an instruction, exact. This file is built for baseline ARMv8-A, so
// the SDOT functions are compiled for the extension on their own, and chosen
// at run time only where neon_dotprod_supported() says the CPU has it. GCC
// declares vdotq_s32 for such functions; Clang before 16 only when the whole
// file targets the extension (Apple's arm64 default, apple-m1, does). With
// neither, `neon-dotprod` keeps the widening product and is never chosen.
#if defined(__ARM_FEATURE_DOTPROD)
#define GLASSFORMER_SDOT 1
#define GLASSFORMER_SDOT_TARGET
#elif !defined(__clang__)
#define GLASSFORMER_SDOT 1
#define GLASSFORMER_SDOT_TARGET __attribute__((target("arch=armv8.2-a+dotprod")))
#else
#define GLASSFORMER_SDOT 0
#endif

#if GLASSFORMER_SDOT
namespace {

// dot_row_q by SDOT: the same integers, so the same bits.
template <int M>
GLASSFORMER_SDOT_TARGET inline void dot_row_q_sdot(const uint8_t* a, const int8_t* w, int64_t k, int32_t* dot) {
  const uint8x16_t bias = vdupq_n_u8(0x80);
  int32x4_t acc[M][2];
#pragma GCC unroll 4
  for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = vdupq_n_s32(0);
  int64_t p = 0;
  for (; p + 32 <= k; p += 32) {
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const int8x16_t wv = vld1q_s8(w + p + 16 * h);
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) {
        const int8x16_t x = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(a + i * k + p + 16 * h), bias));
        acc[i][h] = vdotq_s32(acc[i][h], x, wv);
      }
    }
  }
  for (; p + 16 <= k; p += 16) {
    const int8x16_t wv = vld1q_s8(w + p);
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) {
      acc[i][0] = vdotq_s32(acc[i][0], vreinterpretq_s8_u8(veorq_u8(vld1q_u8(a + i * k + p), bias)), wv);
    }
  }
  for (int i = 0; i < M; ++i) {
    int32_t sum = vaddvq_s32(vaddq_s32(acc[i][0], acc[i][1]));
    for (int64_t q = p; q < k; ++q) sum += (static_cast<int32_t>(a[i * k + q]) - 128) * w[q];
    dot[i] = sum;
  }
}

template <int M>
struct SdotDot {
  GLASSFORMER_SDOT_TARGET static void run(const uint8_t* a, const int8_t* w, int64_t k, int32_t* dot) {
    dot_row_q_sdot<M>(a, w, k, dot);
  }
};

void gemm_int8_q_sdot(const uint8_t* a, const float* a_scales, const int8_t* q, const float* scales, float* c,
                      int64_t m, int64_t n, int64_t k, int64_t n0, int64_t n1) {
  gemm_int8_q_rows<SdotDot>(a, a_scales, q, scales, c, m, n, k, n0, n1);
}

}  // namespace
#endif

bool glassformer::neon_dotprod_supported() {
#if !GLASSFORMER_SDOT
  return false;
#elif defined(__linux__) && defined(HWCAP_ASIMDDP)
  return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__APPLE__)
  int has = 0;
  size_t size = sizeof has;
  return sysctlbyname("hw.optional.arm.FEAT_DotProd", &has, &size, nullptr, 0) == 0 && has != 0;
#else
  return false;
#endif
}

const glassformer::IsaKernels glassformer::kNeonKernels =
    isa_kernels<Neon>("neon", gemv, gemv_bf16, gemv_int8, gemm_int8_q, gemm_bf16_rounded, fma_peak, stream_read);

#if GLASSFORMER_SDOT
const glassformer::IsaKernels glassformer::kNeonDotprodKernels =
    isa_kernels<Neon>("neon-dotprod", gemv, gemv_bf16, gemv_int8, gemm_int8_q_sdot, gemm_bf16_rounded, fma_peak,
                      stream_read);
#else
const glassformer::IsaKernels glassformer::kNeonDotprodKernels =
    isa_kernels<Neon>("neon-dotprod", gemv, gemv_bf16, gemv_int8, gemm_int8_q, gemm_bf16_rounded, fma_peak,
                      stream_read);
#endif
