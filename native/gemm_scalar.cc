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

namespace {

// a · w over k elements, each weight widened to f32 by `widen`; eight partial
// sums, so the compiler can keep them in one vector register.
template <class W, class Widen>
float dot_widened(const float* a, const W* w, int64_t k, Widen widen) {
  float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t p = 0;
  for (; p + 8 <= k; p += 8) {
    for (int64_t r = 0; r < 8; ++r) part[r] += a[p + r] * widen(w[p + r]);
  }
  float sum = 0;
  for (; p < k; ++p) sum += a[p] * widen(w[p]);
  for (float v : part) sum += v;
  return sum;
}

// bf16 is the top half of an f32.
float widen_bf16(uint16_t bits16) {
  const uint32_t bits = static_cast<uint32_t>(bits16) << 16;
  float wide;
  std::memcpy(&wide, &bits, 4);
  return wide;
}

float widen_int8(int8_t v) { return static_cast<float>(v); }

}  // namespace

void glassformer::gemv_bf16_portable(const float* a, const uint16_t* b, float* c, int64_t m, int64_t n, int64_t k,
                                     int64_t n0, int64_t n1) {
  for (int64_t j = n0; j < n1; ++j) {
    for (int64_t i = 0; i < m; ++i) c[i * n + j] = dot_widened(a + i * k, b + j * k, k, widen_bf16);
  }
}

void glassformer::gemv_int8_portable(const float* a, const int8_t* q, const float* scales, float* c, int64_t m,
                                     int64_t n, int64_t k, int64_t n0, int64_t n1) {
  for (int64_t j = n0; j < n1; ++j) {
    for (int64_t i = 0; i < m; ++i) c[i * n + j] = dot_widened(a + i * k, q + j * k, k, widen_int8) * scales[j];
  }
}

void glassformer::gemm_int8_q_portable(const uint8_t* a, const float* a_scales, const int8_t* q, const float* scales,
                                       float* c, int64_t m, int64_t n, int64_t k, int64_t n0, int64_t n1) {
  for (int64_t j = n0; j < n1; ++j) {
    const int8_t* w = q + j * k;
    for (int64_t i = 0; i < m; ++i) {
      const uint8_t* x = a + i * k;
      int32_t dot = 0;
      for (int64_t p = 0; p < k; ++p) dot += (static_cast<int32_t>(x[p]) - 128) * w[p];
      c[i * n + j] = static_cast<float>(dot) * a_scales[i] * scales[j];
    }
  }
}

void glassformer::gemm_bf16_rounded_portable(const uint16_t* a, const uint16_t* b, float* c, int64_t m, int64_t n,
                                             int64_t k, int64_t n0, int64_t n1) {
  const int64_t kp = k + (k & 1);
  for (int64_t j = n0; j < n1; ++j) {
    for (int64_t i = 0; i < m; ++i) {
      // Each product of two bf16 values is exact in f32.
      float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t p = 0;
      for (; p + 8 <= k; p += 8) {
        for (int64_t r = 0; r < 8; ++r) part[r] += widen_bf16(a[i * kp + p + r]) * widen_bf16(b[j * k + p + r]);
      }
      float sum = 0;
      for (; p < k; ++p) sum += widen_bf16(a[i * kp + p]) * widen_bf16(b[j * k + p]);
      for (float v : part) sum += v;
      c[i * n + j] = sum;
    }
  }
}

double glassformer::stream_read_portable(const float* data, int64_t count, bool prefetch) {
  // Eight partial sums, as dot_widened: the compiler keeps them in one vector.
  float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t p = 0;
  for (; p + 8 <= count; p += 8) {
#if defined(__GNUC__)
    if (prefetch && p % 16 == 0) __builtin_prefetch(data + p + 1024);
#else
    (void)prefetch;
#endif
    for (int64_t r = 0; r < 8; ++r) part[r] += data[p + r];
  }
  double sum = 0;
  for (; p < count; ++p) sum += data[p];
  for (float v : part) sum += v;
  return sum;
}

const glassformer::IsaKernels glassformer::kScalarKernels =
    isa_kernels<Scalar>("scalar", gemv, glassformer::gemv_bf16_portable, glassformer::gemv_int8_portable,
                        glassformer::gemm_int8_q_portable, glassformer::gemm_bf16_rounded_portable, fma_peak,
                        glassformer::stream_read_portable);
