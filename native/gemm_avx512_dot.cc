// AVX-512 dot-product instructions, each compiled for its own target and
// chosen at run time only on CPUs that report it:
// - VNNI's vpdpbusd (64 byte products an instruction, summed four at a time
//   into int32 lanes) for int8 weights times quantized activations
//   (avx512vnni: Intel Cascade Lake and later, AMD Zen 4 and later);
// - AVX512_BF16's vdpbf16ps (32 bf16 products an instruction, summed in pairs
//   into f32 lanes: twice the f32 FMA's work) for bf16 weights times
//   activations rounded to bf16 (avx512bf16: Intel Cooper Lake and Sapphire
//   Rapids, AMD Zen 4 and later).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gemm.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512vnni,avx2,fma"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx512vnni,avx2,fma")
#endif

// Compiled here for the VNNI target, a subset of the bf16 one below, so both
// regions can inline them.
#include "gemm_avx512_util.h"

namespace {

// Lanes [0, count) of 64 bytes set; count in [0, 64].
inline __mmask64 first_bytes(int64_t count) {
  if (count >= 64) return ~__mmask64{0};
  if (count <= 0) return 0;
  return (__mmask64{1} << count) - 1;
}

// dot[i] = Σ_p (a_i[p] − 128) · w[p] for the M activation rows (stride k) and
// one int8 weight row w: Σ a_i[p] · w[p] by vpdpbusd, less 128 · Σ w[p] (the
// same instruction against bytes of 1). The weight row is read once, front to
// back, as the f32 GEMV reads its rows (see gemm_avx512.cc). Exact in int32.
template <int M>
inline void dot_row_q(const uint8_t* a, const int8_t* w, int64_t k, int32_t* dot) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i acc[M][2], wsum[2];
  for (int h = 0; h < 2; ++h) {
    wsum[h] = _mm512_setzero_si512();
    for (int i = 0; i < M; ++i) acc[i][h] = _mm512_setzero_si512();
  }
  int64_t p = 0;
  for (; p + 128 <= k; p += 128) {
    for (int h = 0; h < 2; ++h) {
      const __m512i wv = _mm512_loadu_si512(w + p + 64 * h);
      wsum[h] = _mm512_dpbusd_epi32(wsum[h], ones, wv);
      for (int i = 0; i < M; ++i) acc[i][h] = _mm512_dpbusd_epi32(acc[i][h], _mm512_loadu_si512(a + i * k + p + 64 * h), wv);
    }
  }
  for (; p < k; p += 64) {
    const __mmask64 lanes = first_bytes(k - p);
    const __m512i wv = _mm512_maskz_loadu_epi8(lanes, w + p);
    wsum[0] = _mm512_dpbusd_epi32(wsum[0], ones, wv);
    for (int i = 0; i < M; ++i) acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], _mm512_maskz_loadu_epi8(lanes, a + i * k + p), wv);
  }
  const int32_t total = _mm512_reduce_add_epi32(_mm512_add_epi32(wsum[0], wsum[1]));
  for (int i = 0; i < M; ++i) dot[i] = _mm512_reduce_add_epi32(_mm512_add_epi32(acc[i][0], acc[i][1])) - 128 * total;
}

template <int M>
void rows_q(const uint8_t* a, const float* a_scales, const int8_t* q, const float* scales, float* c, int64_t n,
            int64_t k, int64_t j0, int64_t j1) {
  int32_t dot[M];
  for (int64_t j = j0; j < j1; ++j) {
    dot_row_q<M>(a, q + j * k, k, dot);
    for (int i = 0; i < M; ++i) c[i * n + j] = static_cast<float>(dot[i]) * a_scales[i] * scales[j];
  }
}

// The int8 GEMM for more than four rows, in the Goto/BLIS order over quads
// of k: each 32-bit lane of a packed panel holds four neighbouring k of one
// row of A or of W, and a 6x64 tile of int32 accumulators (24 zmm) takes one
// broadcast quad of A against four vectors of 16 quads of W: 1536
// multiply-adds per 10 loads. k is one block (k <= kInt8MaxK: a 64-column
// panel is 64 k bytes, 48 KB at k = 768), since the exact int32 sums must be
// complete before the one conversion to f32.
constexpr int64_t kQMR = 6;
constexpr int64_t kQNV = 4;
constexpr int64_t kQNR = 16 * kQNV;
// Weight columns packed at once: 512 at k = 768 is 384 KB, beside A's block in L2.
constexpr int64_t kQNC = 512;
constexpr int64_t kQMC = kQMR * 24;

// Rows [j0, j0 + cols) of Q [n, k] (cols <= 64) as (k + 3) / 4 rows of 64
// quads: dst[p * 64 + j] = Q[j][4p .. 4p+3], zero past k and past cols. A quad
// is 32 bits: the f32 pack's 16x16 transpose on the bits. Also each row's sum.
void pack_q_quads(const int8_t* q, int64_t k, int64_t j0, int64_t cols, uint32_t* dst, int32_t* sums) {
  const int64_t quads = (k + 3) / 4;
  const __m512i ones = _mm512_set1_epi8(1);
  for (int64_t v = 0; v < kQNV; ++v) {
    const int64_t rows = std::min<int64_t>(16, cols - 16 * v);
    __m512i sum[16];
    for (int i = 0; i < 16; ++i) sum[i] = _mm512_setzero_si512();
    for (int64_t p = 0; p < quads; p += 16) {
      const __mmask64 bytes = first_bytes(k - 4 * p);
      __m512 r[16];
      for (int i = 0; i < 16; ++i) {
        if (i < rows) {
          const __m512i w = _mm512_maskz_loadu_epi8(bytes, q + (j0 + 16 * v + i) * k + 4 * p);
          sum[i] = _mm512_dpbusd_epi32(sum[i], ones, w);
          r[i] = _mm512_castsi512_ps(w);
        } else {
          r[i] = _mm512_setzero_ps();
        }
      }
      transpose16(r);
      const int64_t width = std::min<int64_t>(16, quads - p);
      for (int64_t t = 0; t < width; ++t) _mm512_storeu_ps(reinterpret_cast<float*>(dst + (p + t) * kQNR + 16 * v), r[t]);
    }
    for (int64_t i = 0; i < 16; ++i) sums[16 * v + i] = i < rows ? _mm512_reduce_add_epi32(sum[i]) : 0;
  }
}

// Rows [i0, i0 + rows) of A8 [m, k] (rows <= 6) as quads: dst[p * 6 + i] =
// A8[i][4p .. 4p+3], zero past k (its weights are zero there too).
void pack_a_quads(const uint8_t* a, int64_t k, int64_t i0, int64_t rows, uint32_t* dst) {
  const int64_t quads = (k + 3) / 4;
  for (int64_t p = 0; p < quads; ++p) {
    for (int64_t i = 0; i < kQMR; ++i) {
      uint32_t quad = 0;
      if (i < rows && 4 * p + 4 <= k) {
        std::memcpy(&quad, a + (i0 + i) * k + 4 * p, 4);
      } else if (i < rows) {
        std::memcpy(&quad, a + (i0 + i) * k + 4 * p, static_cast<size_t>(k - 4 * p));
      }
      dst[p * kQMR + i] = quad;
    }
  }
}

// C[rows x cols] = f32(A8 · Qᵀ − 128 · Σ Q) · a_scales[i] · scales[j] for one tile.
void kernel_q(int64_t quads, const uint32_t* pa, const uint32_t* pb, const int32_t* sums, const float* a_scales,
              const float* scales, float* c, int64_t ldc, int64_t rows, int64_t cols) {
  __m512i acc[kQMR][kQNV];
#pragma GCC unroll 6
  for (int i = 0; i < kQMR; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < kQNV; ++v) acc[i][v] = _mm512_setzero_si512();
  }
  for (int64_t p = 0; p < quads; ++p) {
    __m512i bv[kQNV];
#pragma GCC unroll 4
    for (int v = 0; v < kQNV; ++v) bv[v] = _mm512_loadu_si512(pb + 16 * v);
#pragma GCC unroll 6
    for (int i = 0; i < kQMR; ++i) {
      const __m512i ai = _mm512_set1_epi32(static_cast<int>(pa[i]));
#pragma GCC unroll 4
      for (int v = 0; v < kQNV; ++v) acc[i][v] = _mm512_dpbusd_epi32(acc[i][v], ai, bv[v]);
    }
    pa += kQMR;
    pb += kQNR;
  }
  for (int v = 0; v < kQNV; ++v) {
    const __mmask16 lanes = first_lanes(cols - 16 * v);
    const __m512i offset = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(lanes, sums + 16 * v), 7);  // 128 · Σ Q
    const __m512 col_scales = _mm512_maskz_loadu_ps(lanes, scales + 16 * v);
    for (int i = 0; i < kQMR && i < rows; ++i) {
      const __m512 dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][v], offset));
      const __m512 out = _mm512_mul_ps(_mm512_mul_ps(dot, _mm512_set1_ps(a_scales[i])), col_scales);
      _mm512_mask_storeu_ps(c + i * ldc + 16 * v, lanes, out);
    }
  }
}

void gemm_int8_q_packed(const uint8_t* a, const float* a_scales, const int8_t* q, const float* scales, float* c,
                        int64_t m, int64_t n, int64_t k, int64_t n0, int64_t n1) {
  const int64_t quads = (k + 3) / 4;
  static thread_local std::vector<uint32_t> packed_b;
  static thread_local std::vector<uint32_t> packed_a;
  static thread_local std::vector<int32_t> sums;
  packed_b.resize(static_cast<size_t>(kQNC * quads));
  packed_a.resize(static_cast<size_t>(std::min(kQMC, (m + kQMR - 1) / kQMR * kQMR) * quads));
  sums.resize(static_cast<size_t>(kQNC));
  for (int64_t jc = n0; jc < n1; jc += kQNC) {
    const int64_t nc = std::min(kQNC, n1 - jc);
    for (int64_t jr = 0; jr < nc; jr += kQNR) {
      pack_q_quads(q, k, jc + jr, std::min(kQNR, nc - jr), packed_b.data() + jr * quads, sums.data() + jr);
    }
    for (int64_t ic = 0; ic < m; ic += kQMC) {
      const int64_t mc = std::min(kQMC, m - ic);
      for (int64_t ir = 0; ir < mc; ir += kQMR) {
        pack_a_quads(a, k, ic + ir, std::min(kQMR, mc - ir), packed_a.data() + ir * quads);
      }
      for (int64_t jr = 0; jr < nc; jr += kQNR) {
        for (int64_t ir = 0; ir < mc; ir += kQMR) {
          kernel_q(quads, packed_a.data() + ir * quads, packed_b.data() + jr * quads, sums.data() + jr,
                   a_scales + ic + ir, scales + jc + jr, c + (ic + ir) * n + jc + jr, n, std::min(kQMR, mc - ir),
                   std::min(kQNR, nc - jr));
        }
      }
    }
  }
}

}  // namespace

void glassformer::gemm_int8_q_vnni(const uint8_t* a, const float* a_scales, const int8_t* q, const float* scales,
                                   float* c, int64_t m, int64_t n, int64_t k, int64_t n0, int64_t n1) {
  if (m > 4) {
    gemm_int8_q_packed(a, a_scales, q, scales, c, m, n, k, n0, n1);
    return;
  }
  // Decode: stream each weight row once, front to back.
  switch (m) {
    case 1: rows_q<1>(a, a_scales, q, scales, c, n, k, n0, n1); break;
    case 2: rows_q<2>(a, a_scales, q, scales, c, n, k, n0, n1); break;
    case 3: rows_q<3>(a, a_scales, q, scales, c, n, k, n0, n1); break;
    default: rows_q<4>(a, a_scales, q, scales, c, n, k, n0, n1); break;
  }
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,avx2,fma"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,avx2,fma")
#endif

namespace {

// The bf16 GEMM's blocking, in the Goto/BLIS loop order of driver.h, over
// pairs of k: vdpbf16ps multiplies 16 lanes of bf16 pairs, so each 32-bit
// lane of a packed panel holds two neighbouring k of one row or column. A 6x64
// register tile (24 zmm accumulators, as the f32 kernel) broadcasts one pair
// of A against four vectors of 16 pairs of B: 768 multiply-adds per 10 loads.
constexpr int64_t kMR = 6;
constexpr int64_t kNV = 4;
constexpr int64_t kNR = 16 * kNV;
constexpr int64_t kKC = 768;  // even: a pair never straddles two k blocks
constexpr int64_t kMC = kMR * 48;
constexpr int64_t kNC = 4096;

// Lanes [0, count) of 32 16-bit lanes set; count in [0, 32].
inline __mmask32 first_halves(int64_t count) {
  if (count >= 32) return ~__mmask32{0};
  if (count <= 0) return 0;
  return (__mmask32{1} << count) - 1;
}

// Rows [j0, j0 + cols) of B [n, k] bf16 (cols <= 64), k from p0 for kc (p0
// even), as (kc + 1) / 2 rows of 64 pairs: dst[q * 64 + j] = (B[j][p0 + 2q],
// B[j][p0 + 2q + 1]), zero past k and past cols. A pair is 32 bits, so this is
// the f32 pack's 16x16 transpose on the bits.
void pack_b_pairs(const uint16_t* b, int64_t k, int64_t j0, int64_t cols, int64_t p0, int64_t kc, uint32_t* dst) {
  const int64_t pairs = (kc + 1) / 2;
  for (int64_t v = 0; v < kNV; ++v) {
    const int64_t rows = std::min<int64_t>(16, cols - 16 * v);
    for (int64_t q = 0; q < pairs; q += 16) {
      const __mmask32 halves = first_halves(kc - 2 * q);
      __m512 r[16];
      for (int i = 0; i < 16; ++i) {
        r[i] = i < rows ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(halves, b + (j0 + 16 * v + i) * k + p0 + 2 * q))
                        : _mm512_setzero_ps();
      }
      transpose16(r);
      const int64_t width = std::min<int64_t>(16, pairs - q);
      for (int64_t t = 0; t < width; ++t) {
        _mm512_storeu_ps(reinterpret_cast<float*>(dst + (q + t) * kNR + 16 * v), r[t]);
      }
    }
  }
}

// Rows [i0, i0 + rows) of A16 (rows <= 6, row stride kp even, zero-padded),
// k from p0 for kc, as pairs: dst[q * 6 + i] = (A[i][p0 + 2q], A[i][p0 + 2q + 1]).
void pack_a_pairs(const uint16_t* a, int64_t kp, int64_t i0, int64_t rows, int64_t p0, int64_t kc, uint32_t* dst) {
  const int64_t pairs = (kc + 1) / 2;
  for (int64_t q = 0; q < pairs; ++q) {
    for (int64_t i = 0; i < kMR; ++i) {
      uint32_t pair = 0;
      if (i < rows) std::memcpy(&pair, a + (i0 + i) * kp + p0 + 2 * q, 4);
      dst[q * kMR + i] = pair;
    }
  }
}

inline __m512bh as_bf16(__m512i v) { return reinterpret_cast<__m512bh>(v); }

// C[rows x cols] (+)= A panel · B panel over `pairs` pairs of k.
void kernel_bf16(int64_t pairs, const uint32_t* pa, const uint32_t* pb, float* c, int64_t ldc, int64_t rows,
                 int64_t cols, bool accumulate) {
  __m512 acc[kMR][kNV];
#pragma GCC unroll 6
  for (int i = 0; i < kMR; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) acc[i][v] = _mm512_setzero_ps();
  }
  for (int64_t q = 0; q < pairs; ++q) {
    __m512i bv[kNV];
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) bv[v] = _mm512_loadu_si512(pb + 16 * v);
#pragma GCC unroll 6
    for (int i = 0; i < kMR; ++i) {
      const __m512i ai = _mm512_set1_epi32(static_cast<int>(pa[i]));
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], as_bf16(ai), as_bf16(bv[v]));
    }
    pa += kMR;
    pb += kNR;
  }
  for (int i = 0; i < kMR && i < rows; ++i) {
    float* row = c + i * ldc;
    for (int v = 0; v < kNV; ++v) {
      const __mmask16 lanes = first_lanes(cols - 16 * v);
      __m512 out = acc[i][v];
      if (accumulate) out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(lanes, row + 16 * v));
      _mm512_mask_storeu_ps(row + 16 * v, lanes, out);
    }
  }
}

}  // namespace

void glassformer::gemm_bf16_rounded_dpbf16(const uint16_t* a, const uint16_t* b, float* c, int64_t m, int64_t n,
                                           int64_t k, int64_t n0, int64_t n1) {
  const int64_t kp = k + (k & 1);
  static thread_local std::vector<uint32_t> packed_b;
  static thread_local std::vector<uint32_t> packed_a;
  const int64_t kq = (std::min(kKC, k) + 1) / 2;
  packed_b.resize(static_cast<size_t>(std::min(kNC, (n1 - n0 + kNR - 1) / kNR * kNR) * kq));
  packed_a.resize(static_cast<size_t>(std::min(kMC, (m + kMR - 1) / kMR * kMR) * kq));
  for (int64_t jc = n0; jc < n1; jc += kNC) {
    const int64_t nc = std::min(kNC, n1 - jc);
    for (int64_t pc = 0; pc < k; pc += kKC) {
      const int64_t kc = std::min(kKC, k - pc);
      const int64_t pairs = (kc + 1) / 2;
      for (int64_t jr = 0; jr < nc; jr += kNR) {
        pack_b_pairs(b, k, jc + jr, std::min(kNR, nc - jr), pc, kc, packed_b.data() + jr * pairs);
      }
      for (int64_t ic = 0; ic < m; ic += kMC) {
        const int64_t mc = std::min(kMC, m - ic);
        for (int64_t ir = 0; ir < mc; ir += kMR) {
          pack_a_pairs(a, kp, ic + ir, std::min(kMR, mc - ir), pc, kc, packed_a.data() + ir * pairs);
        }
        for (int64_t jr = 0; jr < nc; jr += kNR) {
          for (int64_t ir = 0; ir < mc; ir += kMR) {
            kernel_bf16(pairs, packed_a.data() + ir * pairs, packed_b.data() + jr * pairs, c + (ic + ir) * n + jc + jr,
                        n, std::min(kMR, mc - ir), std::min(kNR, nc - jr), pc > 0);
          }
        }
      }
    }
  }
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
