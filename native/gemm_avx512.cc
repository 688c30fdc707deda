// AVX-512 variant: a 6x64 register-blocked microkernel (24 zmm accumulators,
// four B vectors, one broadcast of A), packs that transpose through 16x16
// register tiles, and a streaming GEMV for decode.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "gemm.h"

// Everything below is compiled for this instruction set (GCC and Clang spell it differently).
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#endif

#include "driver.h"

namespace {

using glassformer::Gemm;

// Lanes [0, count) set; count in [0, 16].
inline __mmask16 first_lanes(int64_t count) {
  if (count >= 16) return 0xFFFF;
  if (count <= 0) return 0;
  return static_cast<__mmask16>((1u << count) - 1);
}

// In-register transpose of a 16x16 tile: r[i] holds row i on entry, column i on exit.
// Three shuffle stages: 32-bit pairs, 64-bit pairs within 128-bit lanes, then the
// 4x4 transpose of 128-bit lanes.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4g + c], 128-bit lane L: column 4L + c of rows 4g .. 4g+3.
  __m512 u[16];
  for (int g = 0; g < 4; ++g) {
    u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g + 0], t[4 * g + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g + 0], t[4 * g + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int c = 0; c < 4; ++c) {
    __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], _MM_SHUFFLE(1, 0, 1, 0));
    __m512 v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], _MM_SHUFFLE(3, 2, 3, 2));
    __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(1, 0, 1, 0));
    __m512 v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(3, 2, 3, 2));
    r[c] = _mm512_shuffle_f32x4(v0, v2, _MM_SHUFFLE(2, 0, 2, 0));
    r[4 + c] = _mm512_shuffle_f32x4(v0, v2, _MM_SHUFFLE(3, 1, 3, 1));
    r[8 + c] = _mm512_shuffle_f32x4(v1, v3, _MM_SHUFFLE(2, 0, 2, 0));
    r[12 + c] = _mm512_shuffle_f32x4(v1, v3, _MM_SHUFFLE(3, 1, 3, 1));
  }
}

// Copies a [rows x kc] strip (rows <= 16, row stride ld) into dst as kc rows of
// `lanes` floats each (dst[p*stride + i] = src[i*ld + p] for i < lanes), zero
// beyond `rows`.
inline void pack_transposed(const float* src, int64_t ld, int64_t rows, int64_t kc, float* dst, int64_t stride,
                            __mmask16 lanes) {
  for (int64_t p = 0; p < kc; p += 16) {
    const int64_t width = std::min<int64_t>(16, kc - p);
    const __mmask16 cols = first_lanes(width);
    __m512 r[16];
    for (int i = 0; i < 16; ++i) {
      r[i] = i < rows ? _mm512_maskz_loadu_ps(cols, src + i * ld + p) : _mm512_setzero_ps();
    }
    transpose16(r);
    for (int64_t q = 0; q < width; ++q) _mm512_mask_storeu_ps(dst + (p + q) * stride, lanes, r[q]);
  }
}

struct Avx512 {
  // Measured on Zen 5 against 14x32, 12x32 and 8x48: 6x64 was fastest on the
  // GPT-2 shapes, and 64 divides every GPT-2 width but the vocabulary.
  static constexpr int64_t MR = 6;
  static constexpr int64_t NV = 4;  // zmm vectors per row of the tile
  static constexpr int64_t NR = 16 * NV;
  // A deep KC cuts the trips through C: 768 (GPT-2's and BERT-base's width
  // in one block, so C is written once) measured 1-4% above 384 on the
  // transformer shapes and 1024^2, one thread; 128 -> 256 -> 384 had gained 10%.
  static constexpr int64_t KC = 768;
  static constexpr int64_t MC = MR * 48;  // A block MC*KC*4 = 864 KB: L2 (1 MB)
  static constexpr int64_t NC = 4096;  // B block KC*NC*4 = 12 MB: L3
  static_assert(MR <= 16, "pack_a transposes through one 16x16 tile");

  static void pack_a(const float* a, int64_t lda, int64_t rows, int64_t kc, float* dst) {
    pack_transposed(a, lda, rows, kc, dst, MR, first_lanes(MR));
  }

  static void pack_b(const Gemm& g, int64_t p0, int64_t kc, int64_t j0, int64_t cols, float* dst) {
    if (g.trans_b) {
      // B is [n, k]: each group of 16 output columns is 16 contiguous rows of B.
      for (int64_t v = 0; v < NV; ++v) {
        const int64_t rows = std::min<int64_t>(16, cols - 16 * v);
        if (rows <= 0) {
          for (int64_t p = 0; p < kc; ++p) _mm512_store_ps(dst + p * NR + 16 * v, _mm512_setzero_ps());
        } else {
          pack_transposed(g.b + (j0 + 16 * v) * g.k + p0, g.k, rows, kc, dst + 16 * v, NR, 0xFFFF);
        }
      }
      return;
    }
    const float* src = g.b + p0 * g.n + j0;
    for (int64_t p = 0; p < kc; ++p) {
      for (int64_t v = 0; v < NV; ++v) {
        _mm512_store_ps(dst + p * NR + 16 * v, _mm512_maskz_loadu_ps(first_lanes(cols - 16 * v), src + 16 * v));
      }
      src += g.n;
    }
  }

  static void kernel(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, int64_t rows, int64_t cols,
                     bool accumulate) {
    __m512 acc[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
    }
    for (int64_t p = 0; p < kc; ++p) {
      __m512 b[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) b[v] = _mm512_load_ps(pb + 16 * v);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const __m512 ai = _mm512_set1_ps(pa[i]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, b[v], acc[i][v]);
      }
      pa += MR;
      pb += NR;
    }
    __mmask16 mask[NV];
    for (int v = 0; v < NV; ++v) mask[v] = first_lanes(cols - 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      if (i >= rows) break;
      float* row = c + i * ldc;
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        __m512 out = acc[i][v];
        if (accumulate) out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(mask[v], row + 16 * v));
        _mm512_mask_storeu_ps(row + 16 * v, mask[v], out);
      }
    }
  }
};

// How dot_rows reads one kind of weight row: 32 weights widened to two f32
// vectors, a masked tail of up to 16, and whether to prefetch the next rows.
struct F32Rows {
  using Weight = float;
  static constexpr bool kPrefetch = false;
  static void load32(const float* w, __m512& lo, __m512& hi) {
    lo = _mm512_loadu_ps(w);
    hi = _mm512_loadu_ps(w + 16);
  }
  static __m512 load_tail(__mmask16 m, const float* w) { return _mm512_maskz_loadu_ps(m, w); }
};

// 16 bf16 values widened to f32: bf16 is the top half of an f32, so a shift.
inline __m512 widen_bf16(__m256i bits) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

// bf16 rows: the same eight streams as f32, half the bytes.
struct Bf16Rows {
  using Weight = uint16_t;
  static constexpr bool kPrefetch = true;
  static void load32(const uint16_t* w, __m512& lo, __m512& hi) {
    const __m512i both = _mm512_loadu_si512(w);
    lo = widen_bf16(_mm512_castsi512_si256(both));
    hi = widen_bf16(_mm512_extracti64x4_epi64(both, 1));
  }
  static __m512 load_tail(__mmask16 m, const uint16_t* w) { return widen_bf16(_mm256_maskz_loadu_epi16(m, w)); }
};

// 16 int8 values widened to f32 (exact).
inline __m512 widen_int8(__m128i bytes) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes)); }

// int8 rows: eight streams, a quarter of the f32 bytes.
struct Int8Rows {
  using Weight = int8_t;
  static constexpr bool kPrefetch = true;
  static void load32(const int8_t* w, __m512& lo, __m512& hi) {
    const __m256i both = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
    lo = widen_int8(_mm256_castsi256_si128(both));
    hi = widen_int8(_mm256_extracti128_si256(both, 1));
  }
  static __m512 load_tail(__mmask16 m, const int8_t* w) { return widen_int8(_mm_maskz_loadu_epi8(m, w)); }
};

// out[r] = a · rows[r] for R rows of B, each of length k. Every row is summed in
// the same order whatever R is, so splitting rows between threads never changes
// a result.
template <class Rows, int R>
inline void dot_rows(const float* a, const typename Rows::Weight* b, int64_t k, float* out) {
  __m512 even[R], odd[R];
  for (int r = 0; r < R; ++r) even[r] = odd[r] = _mm512_setzero_ps();
  int64_t p = 0;
  for (; p + 32 <= k; p += 32) {
    const __m512 a0 = _mm512_loadu_ps(a + p);
    const __m512 a1 = _mm512_loadu_ps(a + p + 16);
    for (int r = 0; r < R; ++r) {
      // The next R rows follow these in memory: fetch them a group ahead, line
      // by line, so the narrow streams never wait on a cold start.
      if constexpr (Rows::kPrefetch) _mm_prefetch(reinterpret_cast<const char*>(b + (R + r) * k + p), _MM_HINT_T0);
      __m512 lo, hi;
      Rows::load32(b + r * k + p, lo, hi);
      even[r] = _mm512_fmadd_ps(a0, lo, even[r]);
      odd[r] = _mm512_fmadd_ps(a1, hi, odd[r]);
    }
  }
  for (; p < k; p += 16) {
    const __mmask16 m = first_lanes(k - p);
    const __m512 av = _mm512_maskz_loadu_ps(m, a + p);
    for (int r = 0; r < R; ++r) even[r] = _mm512_fmadd_ps(av, Rows::load_tail(m, b + r * k + p), even[r]);
  }
  for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(_mm512_add_ps(even[r], odd[r]));
}

// C[:, n0:n1] = A · Bᵀ for weight rows B [n, k], times scales[j] per row when
// scales is given. Eight dot products at a time share each load of a row of A
// (eight streams: 14.4 GB/s on the GPT-2 logits, four gave 11), and every row
// of A reuses the eight weight rows from L1.
template <class Rows>
void gemv_rows(const float* a, const typename Rows::Weight* b, const float* scales, float* c, int64_t m, int64_t n,
               int64_t k, int64_t n0, int64_t n1) {
  float out[8];
  int64_t j = n0;
  for (; j + 8 <= n1; j += 8) {
    for (int64_t i = 0; i < m; ++i) {
      dot_rows<Rows, 8>(a + i * k, b + j * k, k, out);
      for (int r = 0; r < 8; ++r) c[i * n + j + r] = scales ? out[r] * scales[j + r] : out[r];
    }
  }
  for (; j < n1; ++j) {
    for (int64_t i = 0; i < m; ++i) {
      dot_rows<Rows, 1>(a + i * k, b + j * k, k, out);
      c[i * n + j] = scales ? out[0] * scales[j] : out[0];
    }
  }
}

// C[:, n0:n1] = A · B[:, n0:n1] for B [k, n], walking B row by row: each row's
// slice is one contiguous run, so the weights stream from memory at the
// prefetcher's pace (a sweep down 256-column strips jumps a row at every step
// and measured half the bandwidth). Four rows of B per pass over C keep C's
// loads and stores to one per four FMAs; C stays in L1. Each element of C is
// summed over p in order, whatever the split into column ranges.
void axpy_rows(const Gemm& g, int64_t n0, int64_t n1) {
  for (int64_t i = 0; i < g.m; ++i) std::fill(g.c + i * g.n + n0, g.c + i * g.n + n1, 0.0f);
  int64_t p = 0;
  for (; p + 4 <= g.k; p += 4) {
    const float* w = g.b + p * g.n;
    for (int64_t i = 0; i < g.m; ++i) {
      const float* a = g.a + i * g.k + p;
      const __m512 a0 = _mm512_set1_ps(a[0]), a1 = _mm512_set1_ps(a[1]), a2 = _mm512_set1_ps(a[2]),
                   a3 = _mm512_set1_ps(a[3]);
      float* c = g.c + i * g.n;
      for (int64_t j = n0; j < n1; j += 16) {
        const __mmask16 lanes = first_lanes(n1 - j);
        __m512 acc = _mm512_maskz_loadu_ps(lanes, c + j);
        acc = _mm512_fmadd_ps(a0, _mm512_maskz_loadu_ps(lanes, w + j), acc);
        acc = _mm512_fmadd_ps(a1, _mm512_maskz_loadu_ps(lanes, w + g.n + j), acc);
        acc = _mm512_fmadd_ps(a2, _mm512_maskz_loadu_ps(lanes, w + 2 * g.n + j), acc);
        acc = _mm512_fmadd_ps(a3, _mm512_maskz_loadu_ps(lanes, w + 3 * g.n + j), acc);
        _mm512_mask_storeu_ps(c + j, lanes, acc);
      }
    }
  }
  for (; p < g.k; ++p) {
    const float* w = g.b + p * g.n;
    for (int64_t i = 0; i < g.m; ++i) {
      const __m512 a0 = _mm512_set1_ps(g.a[i * g.k + p]);
      float* c = g.c + i * g.n;
      for (int64_t j = n0; j < n1; j += 16) {
        const __mmask16 lanes = first_lanes(n1 - j);
        const __m512 acc = _mm512_fmadd_ps(a0, _mm512_maskz_loadu_ps(lanes, w + j), _mm512_maskz_loadu_ps(lanes, c + j));
        _mm512_mask_storeu_ps(c + j, lanes, acc);
      }
    }
  }
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

double fma_peak(double seconds) {
  // 16 independent chains cover FMA latency (4 cycles) times two FMA pipes.
  // acc = acc * 0.999 + 0.001 converges to 1, so no overflow or denormals.
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(1.0f + static_cast<float>(i) * 0.01f);
  const __m512 x = _mm512_set1_ps(0.999f);
  const __m512 y = _mm512_set1_ps(0.001f);
  const double gflops = time_fma_steps(seconds, 16 * 16 * 2, [&] {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
  });
  __m512 sum = acc[0];
  for (int i = 1; i < 16; ++i) sum = _mm512_add_ps(sum, acc[i]);
  volatile float sink = _mm512_reduce_add_ps(sum);
  (void)sink;
  return gflops;
}

}  // namespace

const glassformer::IsaKernels glassformer::kAvx512Kernels =
    isa_kernels<Avx512>("avx512", gemv, gemv_bf16, gemv_int8, fma_peak);

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
