// AVX-512 dot-product instructions: VNNI's vpdpbusd (64 byte products a
// cycle, summed four at a time into int32 lanes) for int8 weights times
// quantized activations. Compiled for its own target and chosen at run time
// only on CPUs that report avx512vnni (Intel Cascade Lake and later, AMD Zen 4
// and later).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "gemm.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512vnni,avx2,fma"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx512vnni,avx2,fma")
#endif

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

// Weight rows per block when A has more than four rows: the block (48 KB at
// k = 768) stays in L2 while every group of four activation rows passes over it.
constexpr int64_t kRowsPerBlock = 64;

}  // namespace

void glassformer::gemm_int8_q_vnni(const uint8_t* a, const float* a_scales, const int8_t* q, const float* scales,
                                   float* c, int64_t m, int64_t n, int64_t k, int64_t n0, int64_t n1) {
  const int64_t block = m <= 4 ? n1 - n0 : kRowsPerBlock;
  for (int64_t j0 = n0; j0 < n1; j0 += block) {
    const int64_t j1 = std::min(n1, j0 + block);
    for (int64_t i = 0; i < m; i += 4) {
      const uint8_t* ai = a + i * k;
      const float* si = a_scales + i;
      float* ci = c + i * n;
      switch (std::min<int64_t>(4, m - i)) {
        case 1: rows_q<1>(ai, si, q, scales, ci, n, k, j0, j1); break;
        case 2: rows_q<2>(ai, si, q, scales, ci, n, k, j0, j1); break;
        case 3: rows_q<3>(ai, si, q, scales, ci, n, k, j0, j1); break;
        default: rows_q<4>(ai, si, q, scales, ci, n, k, j0, j1); break;
      }
    }
  }
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
