// AVX2 + FMA variant, for x86-64 CPUs without AVX-512: the classic 6x16
// microkernel (12 ymm accumulators, two B vectors, one broadcast of A).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "gemm.h"

// Everything below is compiled for this instruction set (GCC and Clang spell it differently).
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

#include "driver.h"

namespace {

using glassformer::Gemm;

struct Avx2 : PortablePacking<6, 16> {
  static constexpr int64_t KC = 256;
  static constexpr int64_t MC = MR * 40;
  static constexpr int64_t NC = 4096;

  // Hides PortablePacking::pack_b: whole panels of an untransposed B are two vector copies a row.
  static void pack_b(const Gemm& g, int64_t p0, int64_t kc, int64_t j0, int64_t cols, float* dst) {
    if (!g.trans_b && !g.b16 && !g.b8 && cols == NR) {
      const float* src = g.b + p0 * g.n + j0;
      for (int64_t p = 0; p < kc; ++p, src += g.n) {
        _mm256_store_ps(dst + p * NR, _mm256_loadu_ps(src));
        _mm256_store_ps(dst + p * NR + 8, _mm256_loadu_ps(src + 8));
      }
      return;
    }
    pack_b_portable<NR>(g, p0, kc, j0, cols, dst);
  }

  static void kernel(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, int64_t rows, int64_t cols,
                     bool accumulate) {
    __m256 acc[MR][2];
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int64_t p = 0; p < kc; ++p) {
      const __m256 b0 = _mm256_load_ps(pb);
      const __m256 b1 = _mm256_load_ps(pb + 8);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m256 ai = _mm256_broadcast_ss(pa + i);
        acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
      }
      pa += MR;
      pb += NR;
    }
    if (rows == MR && cols == NR) {
      for (int i = 0; i < MR; ++i) {
        float* row = c + i * ldc;
        __m256 lo = acc[i][0], hi = acc[i][1];
        if (accumulate) {
          lo = _mm256_add_ps(lo, _mm256_loadu_ps(row));
          hi = _mm256_add_ps(hi, _mm256_loadu_ps(row + 8));
        }
        _mm256_storeu_ps(row, lo);
        _mm256_storeu_ps(row + 8, hi);
      }
      return;
    }
    // Edge tile: spill, then copy the valid part.
    alignas(32) float tile[MR][NR];
    for (int i = 0; i < MR; ++i) {
      _mm256_store_ps(tile[i], acc[i][0]);
      _mm256_store_ps(tile[i] + 8, acc[i][1]);
    }
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) c[i * ldc + j] = accumulate ? c[i * ldc + j] + tile[i][j] : tile[i][j];
    }
  }
};

inline float horizontal_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

void gemv(const Gemm& g, int64_t n0, int64_t n1) {
  if (g.trans_b) {
    // One weight row at a time, dotted with every row of A while it is in L1;
    // two accumulators and a scalar tail, the same order for every element.
    for (int64_t j = n0; j < n1; ++j) {
      const float* row = g.b + j * g.k;
      for (int64_t i = 0; i < g.m; ++i) {
        const float* a = g.a + i * g.k;
        __m256 even = _mm256_setzero_ps(), odd = _mm256_setzero_ps();
        int64_t p = 0;
        for (; p + 16 <= g.k; p += 16) {
          even = _mm256_fmadd_ps(_mm256_loadu_ps(a + p), _mm256_loadu_ps(row + p), even);
          odd = _mm256_fmadd_ps(_mm256_loadu_ps(a + p + 8), _mm256_loadu_ps(row + p + 8), odd);
        }
        float sum = horizontal_sum(_mm256_add_ps(even, odd));
        for (; p < g.k; ++p) sum += a[p] * row[p];
        g.c[i * g.n + j] = sum;
      }
    }
    return;
  }
  for (int64_t i = 0; i < g.m; ++i) {
    const float* a = g.a + i * g.k;
    float* c = g.c + i * g.n;
    int64_t j = n0;
    for (; j + 64 <= n1; j += 64) {
      __m256 acc[8];
      for (int v = 0; v < 8; ++v) acc[v] = _mm256_setzero_ps();
      const float* row = g.b + j;
      for (int64_t p = 0; p < g.k; ++p, row += g.n) {
        const __m256 ap = _mm256_broadcast_ss(a + p);
        for (int v = 0; v < 8; ++v) acc[v] = _mm256_fmadd_ps(ap, _mm256_loadu_ps(row + 8 * v), acc[v]);
      }
      for (int v = 0; v < 8; ++v) _mm256_storeu_ps(c + j + 8 * v, acc[v]);
    }
    for (; j < n1; ++j) {
      float sum = 0.0f;
      for (int64_t p = 0; p < g.k; ++p) sum = std::fma(a[p], g.b[p * g.n + j], sum);
      c[j] = sum;
    }
  }
}

double fma_peak(double seconds) {
  __m256 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm256_set1_ps(1.0f + static_cast<float>(i) * 0.01f);
  const __m256 x = _mm256_set1_ps(0.999f);
  const __m256 y = _mm256_set1_ps(0.001f);
  const double gflops = time_fma_steps(seconds, 16 * 8 * 2, [&] {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
  });
  __m256 sum = acc[0];
  for (int i = 1; i < 16; ++i) sum = _mm256_add_ps(sum, acc[i]);
  volatile float sink = horizontal_sum(sum);
  (void)sink;
  return gflops;
}

}  // namespace

const glassformer::IsaKernels glassformer::kAvx2Kernels =
    isa_kernels<Avx2>("avx2", gemv, glassformer::gemv_bf16_portable, glassformer::gemv_int8_portable,
                    glassformer::gemm_int8_q_portable, glassformer::gemm_bf16_rounded_portable, fma_peak,
                    glassformer::stream_read_portable);

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
