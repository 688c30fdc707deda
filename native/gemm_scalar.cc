// Portable variant for any CPU: the same blocking with a 4x16 tile in plain C++,
// which the compiler vectorises with whatever the baseline target offers.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <cstdlib>

#include "gemm.h"
#include "driver.h"

namespace {

using glassformer::Gemm;

struct Scalar : PortablePacking<4, 16> {
  static constexpr int64_t KC = 256;
  static constexpr int64_t MC = MR * 32;
  static constexpr int64_t NC = 2048;

  static void kernel(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, int64_t rows, int64_t cols,
                     bool accumulate) {
    float acc[MR][NR] = {};
    for (int64_t p = 0; p < kc; ++p) {
      for (int i = 0; i < MR; ++i) {
        const float ai = pa[i];
        for (int j = 0; j < NR; ++j) acc[i][j] += ai * pb[j];
      }
      pa += MR;
      pb += NR;
    }
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
    }
  }
};

void gemv(const Gemm& g, int64_t n0, int64_t n1) {
  if (g.trans_b) {
    for (int64_t j = n0; j < n1; ++j) {
      const float* row = g.b + j * g.k;
      for (int64_t i = 0; i < g.m; ++i) {
        const float* a = g.a + i * g.k;
        float sum = 0.0f;
        for (int64_t p = 0; p < g.k; ++p) sum += a[p] * row[p];
        g.c[i * g.n + j] = sum;
      }
    }
    return;
  }
  for (int64_t i = 0; i < g.m; ++i) {
    const float* a = g.a + i * g.k;
    float* c = g.c + i * g.n;
    std::fill(c + n0, c + n1, 0.0f);
    for (int64_t p = 0; p < g.k; ++p) {
      const float ap = a[p];
      const float* row = g.b + p * g.n;
      for (int64_t j = n0; j < n1; ++j) c[j] += ap * row[j];
    }
  }
}

double fma_peak(double seconds) {
  float acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = 1.0f + static_cast<float>(i) * 0.01f;
  const double gflops = time_fma_steps(seconds, 16 * 2, [&] {
    for (int i = 0; i < 16; ++i) acc[i] = acc[i] * 0.999f + 0.001f;
  });
  float sum = 0;
  for (float v : acc) sum += v;
  volatile float sink = sum;
  (void)sink;
  return gflops;
}

}  // namespace

void glassformer::gemv_bf16_portable(const float* a, const uint16_t* b, float* c, int64_t m, int64_t n, int64_t k,
                                     int64_t n0, int64_t n1) {
  for (int64_t j = n0; j < n1; ++j) {
    const uint16_t* w = b + j * k;
    for (int64_t i = 0; i < m; ++i) {
      // Eight partial sums, so the compiler can keep them in one vector register.
      float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t p = 0;
      for (; p + 8 <= k; p += 8) {
        for (int64_t q = 0; q < 8; ++q) {
          const uint32_t bits = static_cast<uint32_t>(w[p + q]) << 16;
          float wide;
          std::memcpy(&wide, &bits, 4);
          part[q] += a[i * k + p + q] * wide;
        }
      }
      float sum = 0;
      for (; p < k; ++p) {
        const uint32_t bits = static_cast<uint32_t>(w[p]) << 16;
        float wide;
        std::memcpy(&wide, &bits, 4);
        sum += a[i * k + p] * wide;
      }
      for (float v : part) sum += v;
      c[i * n + j] = sum;
    }
  }
}

void glassformer::gemv_int8_portable(const float* a, const int8_t* q, const float* scales, float* c, int64_t m,
                                     int64_t n, int64_t k, int64_t n0, int64_t n1) {
  for (int64_t j = n0; j < n1; ++j) {
    const int8_t* w = q + j * k;
    for (int64_t i = 0; i < m; ++i) {
      float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t p = 0;
      for (; p + 8 <= k; p += 8) {
        for (int64_t r = 0; r < 8; ++r) part[r] += a[i * k + p + r] * static_cast<float>(w[p + r]);
      }
      float sum = 0;
      for (; p < k; ++p) sum += a[i * k + p] * static_cast<float>(w[p]);
      for (float v : part) sum += v;
      c[i * n + j] = sum * scales[j];
    }
  }
}

const glassformer::IsaKernels glassformer::kScalarKernels =
    isa_kernels<Scalar>("scalar", gemv, glassformer::gemv_bf16_portable, glassformer::gemv_int8_portable, fma_peak);
