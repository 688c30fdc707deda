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
#include "gemm_avx512_util.h"

namespace {

using glassformer::Gemm;

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

inline __m512 widen_bf16(__m256i bits);
inline __m512 widen_int8(__m128i bytes);

// pack_transposed for a bf16 or int8 weight: rows [r0, r0 + rows) of B [n, k]
// (rows <= 16), columns [p0, p0 + kc), widened to f32 (int8 times its row's
// scale) as they are loaded, into kc rows of 16 floats, stride NR.
template <int64_t NR>
inline void pack_narrow_transposed(const Gemm& g, int64_t r0, int64_t rows, int64_t p0, int64_t kc, float* dst) {
  for (int64_t p = 0; p < kc; p += 16) {
    const int64_t width = std::min<int64_t>(16, kc - p);
    const __mmask16 cols = first_lanes(width);
    __m512 r[16];
    for (int i = 0; i < 16; ++i) {
      const int64_t at = (r0 + i) * g.k + p0 + p;
      if (i >= rows) {
        r[i] = _mm512_setzero_ps();
      } else if (g.b16) {
        r[i] = widen_bf16(_mm256_maskz_loadu_epi16(cols, g.b16 + at));
      } else {
        r[i] = _mm512_mul_ps(widen_int8(_mm_maskz_loadu_epi8(cols, g.b8 + at)), _mm512_set1_ps(g.b8_scales[r0 + i]));
      }
    }
    transpose16(r);
    for (int64_t q = 0; q < width; ++q) _mm512_store_ps(dst + (p + q) * NR, r[q]);
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
        } else if (g.b16 || g.b8) {
          pack_narrow_transposed<NR>(g, j0 + 16 * v, rows, p0, kc, dst + 16 * v);
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

// How dot_row reads one kind of weight row: 64 weights widened to four f32
// vectors, and a masked tail of up to 16.
struct F32Rows {
  using Weight = float;
  static void load64(const float* w, __m512 v[4]) {
    for (int i = 0; i < 4; ++i) v[i] = _mm512_loadu_ps(w + 16 * i);
  }
  static __m512 load_tail(__mmask16 m, const float* w) { return _mm512_maskz_loadu_ps(m, w); }
};

// 16 bf16 values widened to f32: bf16 is the top half of an f32, so a shift.
inline __m512 widen_bf16(__m256i bits) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

// bf16 rows: half the bytes of f32.
struct Bf16Rows {
  using Weight = uint16_t;
  static void load64(const uint16_t* w, __m512 v[4]) {
    const __m512i lo = _mm512_loadu_si512(w);
    const __m512i hi = _mm512_loadu_si512(w + 32);
    v[0] = widen_bf16(_mm512_castsi512_si256(lo));
    v[1] = widen_bf16(_mm512_extracti64x4_epi64(lo, 1));
    v[2] = widen_bf16(_mm512_castsi512_si256(hi));
    v[3] = widen_bf16(_mm512_extracti64x4_epi64(hi, 1));
  }
  static __m512 load_tail(__mmask16 m, const uint16_t* w) { return widen_bf16(_mm256_maskz_loadu_epi16(m, w)); }
};

// 16 int8 values widened to f32 (exact).
inline __m512 widen_int8(__m128i bytes) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes)); }

// int8 rows: a quarter of the f32 bytes.
struct Int8Rows {
  using Weight = int8_t;
  static void load64(const int8_t* w, __m512 v[4]) {
    const __m512i all = _mm512_loadu_si512(w);
    v[0] = widen_int8(_mm512_extracti32x4_epi32(all, 0));
    v[1] = widen_int8(_mm512_extracti32x4_epi32(all, 1));
    v[2] = widen_int8(_mm512_extracti32x4_epi32(all, 2));
    v[3] = widen_int8(_mm512_extracti32x4_epi32(all, 3));
  }
  static __m512 load_tail(__mmask16 m, const int8_t* w) { return widen_int8(_mm_maskz_loadu_epi8(m, w)); }
};

// out[i] = a_i · w for the M rows of A (row stride k) and one weight row w of
// length k. The weight row is read once, front to back: a GEMV that walks the
// weights in one linear stream keeps the hardware prefetcher at full rate
// (measured on the cold GPT-2 logits weight: 24-26 GB/s, against 11-13 GB/s
// for eight rows read side by side, with or without software prefetch). Each
// row of A is summed in the same order whatever M or the split between threads.
template <class Rows, int M>
inline void dot_row(const float* a, const typename Rows::Weight* w, int64_t k, float* out) {
  __m512 acc[M][4];
  for (int i = 0; i < M; ++i) {
    for (int v = 0; v < 4; ++v) acc[i][v] = _mm512_setzero_ps();
  }
  int64_t p = 0;
  for (; p + 64 <= k; p += 64) {
    __m512 wv[4];
    Rows::load64(w + p, wv);
    for (int i = 0; i < M; ++i) {
      for (int v = 0; v < 4; ++v) acc[i][v] = _mm512_fmadd_ps(_mm512_loadu_ps(a + i * k + p + 16 * v), wv[v], acc[i][v]);
    }
  }
  for (int v = 0; p < k; p += 16, ++v) {
    const __mmask16 m = first_lanes(k - p);
    const __m512 wt = Rows::load_tail(m, w + p);
    for (int i = 0; i < M; ++i) acc[i][v] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i * k + p), wt, acc[i][v]);
  }
  for (int i = 0; i < M; ++i) {
    out[i] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[i][0], acc[i][1]), _mm512_add_ps(acc[i][2], acc[i][3])));
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
template <int R>
inline void axpy_pass(const Gemm& g, int64_t p, int64_t n0, int64_t n1) {
  const float* w = g.b + p * g.n;
  for (int64_t i = 0; i < g.m; ++i) {
    __m512 a[R];
    for (int r = 0; r < R; ++r) a[r] = _mm512_set1_ps(g.a[i * g.k + p + r]);
    float* c = g.c + i * g.n;
    for (int64_t j = n0; j < n1; j += 16) {
      const __mmask16 lanes = first_lanes(n1 - j);
      __m512 acc = _mm512_maskz_loadu_ps(lanes, c + j);
      for (int r = 0; r < R; ++r) acc = _mm512_fmadd_ps(a[r], _mm512_maskz_loadu_ps(lanes, w + r * g.n + j), acc);
      _mm512_mask_storeu_ps(c + j, lanes, acc);
    }
  }
}

// C[:, n0:n1] = A · B[:, n0:n1] for B [k, n], walking B row by row: each row's
// slice is one contiguous run, so the weights stream from memory at the
// prefetcher's pace (a sweep down 256-column strips jumps a row at every step
// and measured half the bandwidth). Eight rows of B a pass measured 21-22 GB/s
// on cold 768x3072 weights against 14-19 for four. Each element of C is summed
// over p in order, whatever the split into column ranges.
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

// Sums `count` floats the way a GEMV reads its weights (one linear stream,
// four accumulators over 64 floats); with `prefetch`, also asks for the line
// 4 KB ahead. The sum keeps the loads from being optimised away.
double stream_read(const float* data, int64_t count, bool prefetch) {
  __m512 acc[4];
  for (int v = 0; v < 4; ++v) acc[v] = _mm512_setzero_ps();
  int64_t p = 0;
  for (; p + 64 <= count; p += 64) {
    if (prefetch) {
      for (int line = 0; line < 4; ++line) {
        _mm_prefetch(reinterpret_cast<const char*>(data + p + 16 * line) + 4096, _MM_HINT_T0);
      }
    }
    for (int v = 0; v < 4; ++v) acc[v] = _mm512_add_ps(acc[v], _mm512_loadu_ps(data + p + 16 * v));
  }
  for (; p < count; p += 16) acc[0] = _mm512_add_ps(acc[0], _mm512_maskz_loadu_ps(first_lanes(count - p), data + p));
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
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
    isa_kernels<Avx512>("avx512", gemv, gemv_bf16, gemv_int8, glassformer::gemm_int8_q_portable,
                        glassformer::gemm_bf16_rounded_portable, fma_peak,
                        stream_read);

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
