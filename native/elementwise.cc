// Fused elementwise inference ops for the TypeScript ops in src/ops/ to call
// when no gradient is recorded (see docs/performance.md, "Encoder"):
//
//   layerNorm(x, residual | null, sum | null, gamma, beta | null, out, rows, d, eps)
//   rmsNorm(x, gamma, out, rows, d, eps)
//   unary(kind, x, gate | null, out, n, param)   kind: see UnaryKind
//   softmax(x, out, rows, n, scale, mask | null, maskStrides[3], dims[2])
//   binary(op, a, b, out, layout[12])            op: 0 add, 1 sub, 2 mul, 3 div
//   permute(x, out, layout[8])                   a strided copy (splitting and merging heads)
//
// Every value is computed as the TypeScript reference does, in double
// precision from the f32 inputs and rounded once to f32 (or at the same points
// the reference rounds), so the two agree to f32 rounding. The AVX-512 paths
// (x86, taken under any of the addon's AVX-512 variants) differ from the
// portable ones only in how exp and erfc are evaluated. Large tensors are split
// into chunks of rows over the shared thread pool; small ones run on the caller.
#include <node_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "napi_util.h"
#include "runtime.h"

#if defined(__x86_64__) || defined(__i386__)
#define GLASSFORMER_X86 1
#include <immintrin.h>
#endif

namespace glassformer {
namespace {

// ---------------------------------------------------------------------------
// Threads: chunks of rows on the shared pool.

// Below this many elements a call runs on the caller: waking a worker costs
// more than the work (an elementwise pass streams about 1 element/ns).
constexpr int64_t kParallelMinElements = 1 << 16;
// Chunks per thread: a busy core hands its share to the others.
constexpr int64_t kChunksPerThread = 4;

// Calls body(first_row, end_row) over [0, rows), split between threads when
// the whole job (rows × row_cost elements) is large enough.
template <class Body>
void parallel_rows(int64_t rows, int64_t row_cost, const Body& body) {
  const int threads = shared_pool().threads();
  if (threads <= 1 || rows < 2 || rows * row_cost < kParallelMinElements) {
    body(int64_t{0}, rows);
    return;
  }
  shared_pool().run_ranges(rows, std::min<int64_t>(rows, threads * kChunksPerThread), body);
}

// Splits n elements into rows of kElementRow for parallel_rows.
constexpr int64_t kElementRow = 4096;

template <class Body>
void parallel_elements(int64_t n, const Body& body) {
  parallel_rows((n + kElementRow - 1) / kElementRow, kElementRow, [&](int64_t r0, int64_t r1) {
    body(r0 * kElementRow, std::min(n, r1 * kElementRow));
  });
}

#if GLASSFORMER_X86
// The AVX-512 paths run under every AVX-512 variant of the addon (its names
// start "avx512"), so forcing a narrower one (setIsa) also tests the portable code.
bool use_avx512() { return std::strncmp(active_isa().name, "avx512", 6) == 0; }
#endif

// The function `name`_avx512 under an AVX-512 variant, else `name`_portable:
// a macro because the AVX-512 functions exist only in x86 builds.
#if GLASSFORMER_X86
#define GLASSFORMER_WIDEST(name) (use_avx512() ? name##_avx512 : name##_portable)
#else
#define GLASSFORMER_WIDEST(name) (name##_portable)
#endif

// ---------------------------------------------------------------------------
// The activations, portable: double precision, one rounding to f32.

enum UnaryKind : int64_t { kRelu = 0, kGelu = 1, kGeluTanh = 2, kSilu = 3, kScale = 4 };

constexpr double kSqrtHalf = 0.70710678118654752440;
// GELU tanh form (Hendrycks & Gimpel 2016): √(2/π) and the cubic coefficient.
constexpr double kGeluC = 0.79788456080286535588;
constexpr double kGeluCubic = 0.044715;

// x·Φ(x) with Φ(x) = erfc(−x/√2)/2, exact erfc (as torch's `gelu`).
inline double gelu_portable(double x) { return 0.5 * x * std::erfc(-x * kSqrtHalf); }

// 0.5·x·(1 + tanh(u)) written as x / (1 + e^(−2u)), which keeps its relative
// accuracy where tanh(u) is close to −1.
inline double gelu_tanh_portable(double x) {
  const double u = kGeluC * (x + kGeluCubic * x * x * x);
  return x / (1 + std::exp(-2 * u));
}

inline double silu_portable(double x) { return x / (1 + std::exp(-x)); }

template <int64_t Kind>
inline float unary_portable(float x, double param) {
  if constexpr (Kind == kRelu) return x > 0 ? x : 0.0f;
  if constexpr (Kind == kGelu) return static_cast<float>(gelu_portable(x));
  if constexpr (Kind == kGeluTanh) return static_cast<float>(gelu_tanh_portable(x));
  if constexpr (Kind == kSilu) return static_cast<float>(silu_portable(x));
  return static_cast<float>(x * param);
}

// out[i] = f(x[i]) (· gate[i], the gated feed-forward of Shazeer 2020, with
// f(x) rounded to f32 first, as the unfused mul sees it). One loop per kind,
// so relu and scale vectorize.
template <int64_t Kind>
void unary_portable_range(const float* x, const float* gate, float* out, int64_t i0, int64_t i1, double param) {
  if (gate) {
    for (int64_t i = i0; i < i1; ++i) out[i] = unary_portable<Kind>(x[i], param) * gate[i];
  } else {
    for (int64_t i = i0; i < i1; ++i) out[i] = unary_portable<Kind>(x[i], param);
  }
}

void unary_range_portable(int64_t kind, const float* x, const float* gate, float* out, int64_t i0, int64_t i1,
                          double param) {
  switch (kind) {
    case kRelu:
      return unary_portable_range<kRelu>(x, gate, out, i0, i1, param);
    case kGelu:
      return unary_portable_range<kGelu>(x, gate, out, i0, i1, param);
    case kGeluTanh:
      return unary_portable_range<kGeluTanh>(x, gate, out, i0, i1, param);
    case kSilu:
      return unary_portable_range<kSilu>(x, gate, out, i0, i1, param);
    default:
      return unary_portable_range<kScale>(x, gate, out, i0, i1, param);
  }
}

// ---------------------------------------------------------------------------
// Norms, portable.

// out = (x − mean)/√(var + ε)·γ + β over each row of d; with a residual, x is
// first f32(x + residual) (stored to `sum` when given), as add() then layerNorm().
void layer_norm_rows_portable(const float* x, const float* residual, float* sum, const float* gamma,
                              const float* beta, float* out, int64_t r0, int64_t r1, int64_t d, double eps) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * d;
    float* yr = out + r * d;
    if (residual) {
      float* sr = sum ? sum + r * d : yr;
      for (int64_t j = 0; j < d; ++j) sr[j] = xr[j] + residual[r * d + j];
      xr = sr;
    }
    double mean = 0;
    for (int64_t j = 0; j < d; ++j) mean += xr[j];
    mean /= static_cast<double>(d);
    double variance = 0;
    for (int64_t j = 0; j < d; ++j) variance += (xr[j] - mean) * (xr[j] - mean);
    variance /= static_cast<double>(d);
    const double inv = 1 / std::sqrt(variance + eps);
    for (int64_t j = 0; j < d; ++j) {
      yr[j] = static_cast<float>((xr[j] - mean) * inv * gamma[j] + (beta ? beta[j] : 0.0));
    }
  }
}

// out = γ · f32(x / √(mean(x²) + ε)): HF rounds the normalised value before the gain.
void rms_norm_rows_portable(const float* x, const float* gamma, float* out, int64_t r0, int64_t r1, int64_t d,
                            double eps) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * d;
    double squares = 0;
    for (int64_t j = 0; j < d; ++j) squares += static_cast<double>(xr[j]) * xr[j];
    const double inv = 1 / std::sqrt(squares / static_cast<double>(d) + eps);
    for (int64_t j = 0; j < d; ++j) out[r * d + j] = gamma[j] * static_cast<float>(xr[j] * inv);
  }
}

// ---------------------------------------------------------------------------
// Softmax over rows of n, with the attention scale and additive mask fused.

// Where row r's mask row starts: rows are [B, H, Q] flattened, the mask
// [B|1, H|1, Q|1, n] read through element strides (0 on a broadcast axis).
struct MaskLayout {
  const float* mask;
  int64_t strides[3];
  int64_t heads;
  int64_t queries;
  const float* row(int64_t r) const {
    const int64_t q = r % queries;
    const int64_t h = (r / queries) % heads;
    const int64_t b = r / (queries * heads);
    return mask + b * strides[0] + h * strides[1] + q * strides[2];
  }
};

// s = f32(f32(x·scale) + mask) into out (the unfused ops round after each);
// returns the row's largest s.
inline float scaled_masked_row(const float* x, const float* m, float* out, int64_t n, double scale) {
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j) {
    float s = scale == 1 ? x[j] : static_cast<float>(x[j] * scale);
    if (m) s += m[j];
    out[j] = s;
    max = std::max(max, s);
  }
  return max;
}

// e_j = f32(exp(s_j − max)) stored, Σ e_j in double, then out = f32(e_j / Σ):
// the reference's order of rounding. A row of all −∞ stays all 0.
void softmax_rows_portable(const float* x, float* out, int64_t r0, int64_t r1, int64_t n, double scale,
                           const MaskLayout& mask) {
  for (int64_t r = r0; r < r1; ++r) {
    float* yr = out + r * n;
    const float max = scaled_masked_row(x + r * n, mask.mask ? mask.row(r) : nullptr, yr, n, scale);
    if (max == -std::numeric_limits<float>::infinity()) {
      std::fill(yr, yr + n, 0.0f);
      continue;
    }
    double total = 0;
    for (int64_t j = 0; j < n; ++j) {
      const double e = std::exp(static_cast<double>(yr[j]) - max);
      yr[j] = static_cast<float>(e);
      total += e;
    }
    const double inv = 1 / total;
    for (int64_t j = 0; j < n; ++j) yr[j] = static_cast<float>(yr[j] * inv);
  }
}

#if GLASSFORMER_X86
// ---------------------------------------------------------------------------
// AVX-512: the same formulas eight doubles at a time.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#endif

inline __mmask8 lanes8(int64_t count) { return count >= 8 ? 0xFF : static_cast<__mmask8>((1u << count) - 1); }

// e^x: x = n·ln2 + r with |r| ≤ ln2/2, e^r by its Taylor series to r^11
// (truncation below 2^-46, far under f32 rounding), times 2^n by vscalefpd,
// which also gives 0 and +∞ beyond the double range. ln2 is split in two
// (Cody & Waite) so n·ln2 is subtracted without rounding error.
inline __m512d exp_pd(__m512d x) {
  const __m512d lo = _mm512_set1_pd(-746.0), hi = _mm512_set1_pd(710.0);
  x = _mm512_min_pd(hi, _mm512_max_pd(lo, x));  // NaN stays NaN (max/min return their second operand)
  const __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(6.93147180369123816490e-01), x);
  r = _mm512_fnmadd_pd(n, _mm512_set1_pd(1.90821492927058770002e-10), r);
  __m512d p = _mm512_set1_pd(1.0 / 39916800);
  constexpr double kInverseFactorials[] = {1.0 / 3628800, 1.0 / 362880, 1.0 / 40320, 1.0 / 5040, 1.0 / 720,
                                           1.0 / 120,     1.0 / 24,     1.0 / 6,     0.5,        1.0,
                                           1.0};
  for (double c : kInverseFactorials) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c));
  return _mm512_scalef_pd(p, n);
}

// erfc(z) for z ≥ 0 within 1.2e-7 relative (Numerical Recipes in C, 2nd ed.,
// §6.2, erfcc: t·exp(−z² + a Chebyshev-fitted polynomial in t = 1/(1 + z/2))).
// Relative, not absolute, accuracy is what the negative tail of GELU needs.
inline __m512d erfc_pd(__m512d z) {
  const __m512d t = _mm512_div_pd(_mm512_set1_pd(1.0), _mm512_fmadd_pd(z, _mm512_set1_pd(0.5), _mm512_set1_pd(1.0)));
  constexpr double kPoly[] = {-0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806,
                              0.09678418,  0.37409196, 1.00002368,  -1.26551223};
  __m512d p = _mm512_set1_pd(0.17087277);
  for (double c : kPoly) p = _mm512_fmadd_pd(p, t, _mm512_set1_pd(c));
  return _mm512_mul_pd(t, exp_pd(_mm512_fnmadd_pd(z, z, p)));
}

inline __m512d gelu_pd(__m512d x) {
  // Φ(x) = erfc(|x|/√2)/2 for x ≤ 0, 1 − erfc(|x|/√2)/2 above.
  const __m512d z = _mm512_abs_pd(_mm512_mul_pd(x, _mm512_set1_pd(kSqrtHalf)));
  const __m512d half_tail = _mm512_mul_pd(_mm512_set1_pd(0.5), erfc_pd(z));
  const __mmask8 positive = _mm512_cmp_pd_mask(x, _mm512_setzero_pd(), _CMP_GT_OQ);
  const __m512d phi = _mm512_mask_sub_pd(half_tail, positive, _mm512_set1_pd(1.0), half_tail);
  return _mm512_mul_pd(x, phi);
}

inline __m512d gelu_tanh_pd(__m512d x) {
  const __m512d x3 = _mm512_mul_pd(_mm512_mul_pd(x, x), x);
  const __m512d u = _mm512_mul_pd(_mm512_set1_pd(kGeluC), _mm512_fmadd_pd(x3, _mm512_set1_pd(kGeluCubic), x));
  const __m512d e = exp_pd(_mm512_mul_pd(u, _mm512_set1_pd(-2.0)));
  return _mm512_div_pd(x, _mm512_add_pd(_mm512_set1_pd(1.0), e));
}

inline __m512d silu_pd(__m512d x) {
  const __m512d e = exp_pd(_mm512_sub_pd(_mm512_setzero_pd(), x));
  return _mm512_div_pd(x, _mm512_add_pd(_mm512_set1_pd(1.0), e));
}

template <int64_t Kind>
inline __m512d activation_pd(__m512d x) {
  if constexpr (Kind == kGelu) return gelu_pd(x);
  if constexpr (Kind == kGeluTanh) return gelu_tanh_pd(x);
  return silu_pd(x);
}

template <int64_t Kind>
void activation_range_avx512(const float* x, const float* gate, float* out, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; i += 8) {
    const __mmask8 m = lanes8(i1 - i);
    const __m512d v = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + i));
    __m256 y = _mm512_cvtpd_ps(activation_pd<Kind>(v));
    if (gate) y = _mm256_mul_ps(y, _mm256_maskz_loadu_ps(m, gate + i));
    _mm256_mask_storeu_ps(out + i, m, y);
  }
}

void unary_range_avx512(int64_t kind, const float* x, const float* gate, float* out, int64_t i0, int64_t i1,
                        double param) {
  switch (kind) {
    case kGelu:
      return activation_range_avx512<kGelu>(x, gate, out, i0, i1);
    case kGeluTanh:
      return activation_range_avx512<kGeluTanh>(x, gate, out, i0, i1);
    case kSilu:
      return activation_range_avx512<kSilu>(x, gate, out, i0, i1);
    default:
      return unary_range_portable(kind, x, gate, out, i0, i1, param);
  }
}

// Σ (x_j − shift)^Power over a row of floats (Power 1 or 2), eight doubles at a time.
template <int Power>
inline double sum_row_pd(const float* x, int64_t n, double shift) {
  const __m512d mu = _mm512_set1_pd(shift);
  __m512d acc = _mm512_setzero_pd();
  for (int64_t j = 0; j < n; j += 8) {
    const __mmask8 m = lanes8(n - j);
    const __m512d c = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + j)), mu);
    acc = _mm512_mask_add_pd(acc, m, acc, Power == 1 ? c : _mm512_mul_pd(c, c));
  }
  return _mm512_reduce_add_pd(acc);
}

void layer_norm_rows_avx512(const float* x, const float* residual, float* sum, const float* gamma, const float* beta,
                            float* out, int64_t r0, int64_t r1, int64_t d, double eps) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * d;
    float* yr = out + r * d;
    if (residual) {
      float* sr = sum ? sum + r * d : yr;
      for (int64_t j = 0; j < d; j += 16) {
        const __mmask16 m = static_cast<__mmask16>(d - j >= 16 ? 0xFFFF : (1u << (d - j)) - 1);
        _mm512_mask_storeu_ps(sr + j, m,
                              _mm512_add_ps(_mm512_maskz_loadu_ps(m, xr + j), _mm512_maskz_loadu_ps(m, residual + r * d + j)));
      }
      xr = sr;
    }
    const double mean = sum_row_pd<1>(xr, d, 0) / static_cast<double>(d);
    const __m512d mu = _mm512_set1_pd(mean);
    const double variance = sum_row_pd<2>(xr, d, mean) / static_cast<double>(d);
    const __m512d inv = _mm512_set1_pd(1 / std::sqrt(variance + eps));
    for (int64_t j = 0; j < d; j += 8) {
      const __mmask8 m = lanes8(d - j);
      const __m512d v = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, xr + j));
      const __m512d g = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, gamma + j));
      const __m512d b = beta ? _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, beta + j)) : _mm512_setzero_pd();
      const __m512d y = _mm512_add_pd(_mm512_mul_pd(_mm512_mul_pd(_mm512_sub_pd(v, mu), inv), g), b);
      _mm256_mask_storeu_ps(yr + j, m, _mm512_cvtpd_ps(y));
    }
  }
}

void rms_norm_rows_avx512(const float* x, const float* gamma, float* out, int64_t r0, int64_t r1, int64_t d,
                          double eps) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * d;
    const double squares = sum_row_pd<2>(xr, d, 0);
    const __m512d inv = _mm512_set1_pd(1 / std::sqrt(squares / static_cast<double>(d) + eps));
    for (int64_t j = 0; j < d; j += 8) {
      const __mmask8 m = lanes8(d - j);
      const __m256 normed = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, xr + j)), inv));
      _mm256_mask_storeu_ps(out + r * d + j, m, _mm256_mul_ps(_mm256_maskz_loadu_ps(m, gamma + j), normed));
    }
  }
}

void softmax_rows_avx512(const float* x, float* out, int64_t r0, int64_t r1, int64_t n, double scale,
                         const MaskLayout& mask) {
  for (int64_t r = r0; r < r1; ++r) {
    float* yr = out + r * n;
    const float max = scaled_masked_row(x + r * n, mask.mask ? mask.row(r) : nullptr, yr, n, scale);
    if (max == -std::numeric_limits<float>::infinity()) {
      std::fill(yr, yr + n, 0.0f);
      continue;
    }
    const __m512d shift = _mm512_set1_pd(max);
    __m512d acc = _mm512_setzero_pd();
    for (int64_t j = 0; j < n; j += 8) {
      const __mmask8 m = lanes8(n - j);
      const __m512d e = exp_pd(_mm512_sub_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, yr + j)), shift));
      const __m256 rounded = _mm512_cvtpd_ps(e);
      _mm256_mask_storeu_ps(yr + j, m, rounded);
      acc = _mm512_mask_add_pd(acc, m, acc, e);
    }
    const __m512d inv = _mm512_set1_pd(1 / _mm512_reduce_add_pd(acc));
    for (int64_t j = 0; j < n; j += 8) {
      const __mmask8 m = lanes8(n - j);
      const __m512d e = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, yr + j));
      _mm256_mask_storeu_ps(yr + j, m, _mm512_cvtpd_ps(_mm512_mul_pd(e, inv)));
    }
  }
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif  // GLASSFORMER_X86

// ---------------------------------------------------------------------------
// Broadcast binary ops: out = a ∘ b over a shape of up to four axes, each
// operand read through element strides (0 on an axis it repeats). The
// TypeScript side merges axes first, so a bias add is [rows, d] with b's
// strides (0, 1) and an attention mask [B, H·Q, K] with (K, 0, 1).

enum BinaryOp : int64_t { kAdd = 0, kSub = 1, kMul = 2, kDiv = 3 };

template <int64_t Op>
inline float apply(float x, float y) {
  if constexpr (Op == kAdd) return x + y;
  if constexpr (Op == kSub) return x - y;
  if constexpr (Op == kMul) return x * y;
  return x / y;
}

// One innermost run of n values; a_step, b_step ∈ {0, 1} as template
// arguments so each case vectorizes.
template <int64_t Op, int AStep, int BStep>
void binary_run(const float* __restrict a, const float* __restrict b, float* __restrict out, int64_t n) {
  for (int64_t j = 0; j < n; ++j) out[j] = apply<Op>(a[j * AStep], b[j * BStep]);
}

// The same with out == a (an in-place update of the first operand).
template <int64_t Op, int BStep>
void binary_run_in_place(float* __restrict a, const float* __restrict b, int64_t n) {
  for (int64_t j = 0; j < n; ++j) a[j] = apply<Op>(a[j], b[j * BStep]);
}

// The same with out == a == b (x ∘ x written over x).
template <int64_t Op>
void binary_run_self(float* x, int64_t n) {
  for (int64_t j = 0; j < n; ++j) x[j] = apply<Op>(x[j], x[j]);
}

// The same with out == b.
template <int64_t Op, int AStep>
void binary_run_in_place_second(const float* __restrict a, float* __restrict b, int64_t n) {
  for (int64_t j = 0; j < n; ++j) b[j] = apply<Op>(a[j * AStep], b[j]);
}

struct BinaryLayout {
  int64_t shape[4];
  int64_t a_strides[4];
  int64_t b_strides[4];
};

template <int64_t Op>
void binary_rows(const float* a, const float* b, float* out, const BinaryLayout& l, int64_t r0, int64_t r1) {
  const int64_t n = l.shape[3];
  const int64_t sa = l.a_strides[3], sb = l.b_strides[3];
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t i2 = r % l.shape[2], i1 = (r / l.shape[2]) % l.shape[1], i0 = r / (l.shape[2] * l.shape[1]);
    const float* ar = a + i0 * l.a_strides[0] + i1 * l.a_strides[1] + i2 * l.a_strides[2];
    const float* br = b + i0 * l.b_strides[0] + i1 * l.b_strides[1] + i2 * l.b_strides[2];
    float* yr = out + r * n;
    if (ar == yr && br == yr && sa == 1 && sb == 1) {
      binary_run_self<Op>(yr, n);
    } else if (ar == yr && sa == 1) {
      if (sb == 1) binary_run_in_place<Op, 1>(yr, br, n);
      else binary_run_in_place<Op, 0>(yr, br, n);
    } else if (br == yr && sb == 1) {
      if (sa == 1) binary_run_in_place_second<Op, 1>(ar, yr, n);
      else binary_run_in_place_second<Op, 0>(ar, yr, n);
    } else if (sa == 1 && sb == 1) {
      binary_run<Op, 1, 1>(ar, br, yr, n);
    } else if (sa == 1) {
      binary_run<Op, 1, 0>(ar, br, yr, n);
    } else if (sb == 1) {
      binary_run<Op, 0, 1>(ar, br, yr, n);
    } else {
      binary_run<Op, 0, 0>(ar, br, yr, n);
    }
  }
}

void run_binary(int64_t op, const float* a, const float* b, float* out, const BinaryLayout& l) {
  const int64_t rows = l.shape[0] * l.shape[1] * l.shape[2];
  parallel_rows(rows, l.shape[3], [&](int64_t r0, int64_t r1) {
    switch (op) {
      case kAdd:
        return binary_rows<kAdd>(a, b, out, l, r0, r1);
      case kSub:
        return binary_rows<kSub>(a, b, out, l, r0, r1);
      case kMul:
        return binary_rows<kMul>(a, b, out, l, r0, r1);
      default:
        return binary_rows<kDiv>(a, b, out, l, r0, r1);
    }
  });
}

// ---------------------------------------------------------------------------
// Permutes: out (contiguous, up to four axes) = x read through element
// strides. Splitting heads, [B, T, H, D] → [B, H, T, D], is rows of D
// contiguous floats, copied as runs.

struct PermuteLayout {
  int64_t shape[4];
  int64_t strides[4];
};

void permute_rows(const float* x, float* out, const PermuteLayout& l, int64_t r0, int64_t r1) {
  const int64_t n = l.shape[3], step = l.strides[3];
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t i2 = r % l.shape[2], i1 = (r / l.shape[2]) % l.shape[1], i0 = r / (l.shape[2] * l.shape[1]);
    const float* xr = x + i0 * l.strides[0] + i1 * l.strides[1] + i2 * l.strides[2];
    float* yr = out + r * n;
    if (step == 1) {
      std::memcpy(yr, xr, static_cast<size_t>(n) * sizeof(float));
    } else {
      for (int64_t j = 0; j < n; ++j) yr[j] = xr[j * step];
    }
  }
}

// ---------------------------------------------------------------------------
// Argument checking: every error names the function and the argument (the
// helpers of napi_util.h).

// Reads `count` entries of a Float64Array layout (shapes, strides) into out;
// each must be an integer in [0, 2^53), so converting it is defined behaviour
// and sums of products of them can be bounded in doubles.
bool layout_counts(napi_env env, const char* fn, const double* raw, int count, int64_t* out) {
  for (int t = 0; t < count; ++t) {
    if (!is_count(raw[t])) {
      napi_throw_range_error(env, nullptr,
                             (std::string(fn) + ": layout entries must be non-negative integers below 2^53").c_str());
      return false;
    }
    out[t] = static_cast<int64_t>(raw[t]);
  }
  return true;
}

// The product of counts, or -1 past 2^53.
int64_t product(const int64_t* values, int count) {
  double p = 1;
  for (int i = 0; i < count; ++i) p *= static_cast<double>(values[i]);
  return p > kMaxExactInteger ? -1 : static_cast<int64_t>(p);
}

// ---------------------------------------------------------------------------
// Entry points.

// layerNorm(x, residual | null, sum | null, gamma, beta | null, out, rows, d, eps)
napi_value LayerNorm(napi_env env, napi_callback_info info) {
  constexpr const char* fn = "layerNorm";
  napi_value argv[9];
  if (!get_args(env, info, 9, argv, "layerNorm: expected (x, residual, sum, gamma, beta, out, rows, d, eps)")) {
    return nullptr;
  }
  float *x, *residual, *sum, *gamma, *beta, *out;
  int64_t x_len, r_len, s_len, g_len, b_len, o_len, rows, d;
  double eps = 0;
  if (!get_float32_array(env, argv[0], fn, "x", &x, &x_len) ||
      !get_optional_float32_array(env, argv[1], fn, "residual", &residual, &r_len) ||
      !get_optional_float32_array(env, argv[2], fn, "sum", &sum, &s_len) ||
      !get_float32_array(env, argv[3], fn, "gamma", &gamma, &g_len) ||
      !get_optional_float32_array(env, argv[4], fn, "beta", &beta, &b_len) ||
      !get_float32_array(env, argv[5], fn, "out", &out, &o_len) || !get_count(env, argv[6], fn, "rows", &rows) ||
      !get_count(env, argv[7], fn, "d", &d) || !get_number(env, argv[8], fn, "eps", &eps)) {
    return nullptr;
  }
  if (!check_extent(env, fn, "x", x_len, 0, rows, d) || !check_extent(env, fn, "out", o_len, 0, rows, d) ||
      !check_extent(env, fn, "gamma", g_len, 0, 1, d) || (residual && !check_extent(env, fn, "residual", r_len, 0, rows, d)) ||
      (sum && !check_extent(env, fn, "sum", s_len, 0, rows, d)) || (beta && !check_extent(env, fn, "beta", b_len, 0, 1, d))) {
    return nullptr;
  }
  if (sum && !residual) {
    napi_throw_type_error(env, nullptr, "layerNorm: sum needs a residual to add");
    return nullptr;
  }
  if (d == 0) return undefined(env);
  const auto run = GLASSFORMER_WIDEST(layer_norm_rows);
  parallel_rows(rows, 3 * d, [&](int64_t r0, int64_t r1) { run(x, residual, sum, gamma, beta, out, r0, r1, d, eps); });
  return undefined(env);
}

// rmsNorm(x, gamma, out, rows, d, eps)
napi_value RmsNorm(napi_env env, napi_callback_info info) {
  constexpr const char* fn = "rmsNorm";
  napi_value argv[6];
  if (!get_args(env, info, 6, argv, "rmsNorm: expected (x, gamma, out, rows, d, eps)")) return nullptr;
  float *x, *gamma, *out;
  int64_t x_len, g_len, o_len, rows, d;
  double eps = 0;
  if (!get_float32_array(env, argv[0], fn, "x", &x, &x_len) ||
      !get_float32_array(env, argv[1], fn, "gamma", &gamma, &g_len) ||
      !get_float32_array(env, argv[2], fn, "out", &out, &o_len) || !get_count(env, argv[3], fn, "rows", &rows) ||
      !get_count(env, argv[4], fn, "d", &d) || !get_number(env, argv[5], fn, "eps", &eps)) {
    return nullptr;
  }
  if (!check_extent(env, fn, "x", x_len, 0, rows, d) || !check_extent(env, fn, "out", o_len, 0, rows, d) ||
      !check_extent(env, fn, "gamma", g_len, 0, 1, d)) {
    return nullptr;
  }
  if (d == 0) return undefined(env);
  const auto run = GLASSFORMER_WIDEST(rms_norm_rows);
  parallel_rows(rows, 2 * d, [&](int64_t r0, int64_t r1) { run(x, gamma, out, r0, r1, d, eps); });
  return undefined(env);
}

// unary(kind, x, gate | null, out, n, param)
napi_value Unary(napi_env env, napi_callback_info info) {
  constexpr const char* fn = "unary";
  napi_value argv[6];
  if (!get_args(env, info, 6, argv, "unary: expected (kind, x, gate, out, n, param)")) return nullptr;
  float *x, *gate, *out;
  int64_t kind, x_len, g_len, o_len, n;
  double param = 0;
  if (!get_count(env, argv[0], fn, "kind", &kind) || !get_float32_array(env, argv[1], fn, "x", &x, &x_len) ||
      !get_optional_float32_array(env, argv[2], fn, "gate", &gate, &g_len) ||
      !get_float32_array(env, argv[3], fn, "out", &out, &o_len) || !get_count(env, argv[4], fn, "n", &n) ||
      !get_number(env, argv[5], fn, "param", &param)) {
    return nullptr;
  }
  if (kind > kScale) {
    napi_throw_range_error(env, nullptr, "unary: kind must be 0 (relu), 1 (gelu), 2 (gelu tanh), 3 (silu) or 4 (scale)");
    return nullptr;
  }
  if (!check_extent(env, fn, "x", x_len, 0, 1, n) || !check_extent(env, fn, "out", o_len, 0, 1, n) ||
      (gate && !check_extent(env, fn, "gate", g_len, 0, 1, n))) {
    return nullptr;
  }
  const auto run = GLASSFORMER_WIDEST(unary_range);
  parallel_elements(n, [&](int64_t i0, int64_t i1) { run(kind, x, gate, out, i0, i1, param); });
  return undefined(env);
}

// softmax(x, out, rows, n, scale, mask | null, maskStrides, dims): maskStrides
// (Float64Array of 3) are the mask's element strides over [B, H, Q], dims
// (Float64Array of 2) are H and Q; rows = B·H·Q.
napi_value Softmax(napi_env env, napi_callback_info info) {
  constexpr const char* fn = "softmax";
  napi_value argv[8];
  if (!get_args(env, info, 8, argv, "softmax: expected (x, out, rows, n, scale, mask, maskStrides, dims)")) {
    return nullptr;
  }
  float *x, *out, *mask;
  double *strides, *dims;
  int64_t x_len, o_len, m_len, s_len, d_len, rows, n;
  double scale = 1;
  if (!get_float32_array(env, argv[0], fn, "x", &x, &x_len) || !get_float32_array(env, argv[1], fn, "out", &out, &o_len) ||
      !get_count(env, argv[2], fn, "rows", &rows) || !get_count(env, argv[3], fn, "n", &n) ||
      !get_number(env, argv[4], fn, "scale", &scale) || !get_optional_float32_array(env, argv[5], fn, "mask", &mask, &m_len) ||
      !get_typed_array(env, argv[6], fn, "maskStrides", napi_float64_array, "a Float64Array", &strides, &s_len) ||
      !get_typed_array(env, argv[7], fn, "dims", napi_float64_array, "a Float64Array", &dims, &d_len)) {
    return nullptr;
  }
  if (!check_extent(env, fn, "x", x_len, 0, rows, n) || !check_extent(env, fn, "out", o_len, 0, rows, n)) return nullptr;
  MaskLayout layout{mask, {0, 0, 0}, 1, 1};
  if (mask) {
    int64_t counts[2];
    if (s_len < 3 || d_len < 2 || !layout_counts(env, fn, strides, 3, layout.strides) ||
        !layout_counts(env, fn, dims, 2, counts) || counts[0] == 0 || counts[1] == 0 ||
        static_cast<double>(counts[0]) * static_cast<double>(counts[1]) > kMaxExactInteger) {
      if (!pending(env)) {
        napi_throw_range_error(env, nullptr,
                               "softmax: maskStrides needs 3 entries and dims 2 positive ones with a product below 2^53");
      }
      return nullptr;
    }
    layout.heads = counts[0];
    layout.queries = counts[1];
    if (rows > 0 && n > 0) {
      // The mask row of the last [B, H, Q] index must end inside the mask.
      const int64_t per_batch = layout.heads * layout.queries;
      const int64_t shape[4] = {(rows + per_batch - 1) / per_batch, layout.heads, layout.queries, n};
      const int64_t mask_strides[4] = {layout.strides[0], layout.strides[1], layout.strides[2], 1};
      if (strided_last(shape, mask_strides) >= static_cast<double>(m_len)) {
        napi_throw_range_error(env, nullptr, "softmax: the mask's strides reach past its end");
        return nullptr;
      }
    }
  }
  if (n == 0) return undefined(env);
  const auto run = GLASSFORMER_WIDEST(softmax_rows);
  parallel_rows(rows, 3 * n, [&](int64_t r0, int64_t r1) { run(x, out, r0, r1, n, scale, layout); });
  return undefined(env);
}

// binary(op, a, b, out, layout): layout (Float64Array of 12) is the output
// shape over four axes, then a's and b's element strides on them.
napi_value Binary(napi_env env, napi_callback_info info) {
  constexpr const char* fn = "binary";
  napi_value argv[5];
  if (!get_args(env, info, 5, argv, "binary: expected (op, a, b, out, layout)")) return nullptr;
  float *a, *b, *out;
  double* raw;
  int64_t op, a_len, b_len, o_len, l_len;
  if (!get_count(env, argv[0], fn, "op", &op) || !get_float32_array(env, argv[1], fn, "a", &a, &a_len) ||
      !get_float32_array(env, argv[2], fn, "b", &b, &b_len) || !get_float32_array(env, argv[3], fn, "out", &out, &o_len) ||
      !get_typed_array(env, argv[4], fn, "layout", napi_float64_array, "a Float64Array", &raw, &l_len)) {
    return nullptr;
  }
  if (op > kDiv || l_len < 12) {
    napi_throw_range_error(env, nullptr, "binary: op must be 0 (add), 1 (sub), 2 (mul) or 3 (div) and layout 12 numbers");
    return nullptr;
  }
  BinaryLayout l;
  if (!layout_counts(env, fn, raw, 4, l.shape) || !layout_counts(env, fn, raw + 4, 4, l.a_strides) ||
      !layout_counts(env, fn, raw + 8, 4, l.b_strides)) {
    return nullptr;
  }
  if (l.a_strides[3] > 1 || l.b_strides[3] > 1) {
    napi_throw_range_error(env, nullptr, "binary: the last axis must have stride 0 or 1 in both operands");
    return nullptr;
  }
  const int64_t total = product(l.shape, 4);
  if (total < 0 || !check_extent(env, fn, "out", o_len, 0, 1, total)) {
    if (!pending(env)) napi_throw_range_error(env, nullptr, "binary: the shape is too large");
    return nullptr;
  }
  if (total == 0) return undefined(env);
  // The last element each operand reads must lie inside it.
  const bool a_fits = strided_last(l.shape, l.a_strides) < static_cast<double>(a_len);
  if (!a_fits || strided_last(l.shape, l.b_strides) >= static_cast<double>(b_len)) {
    napi_throw_range_error(env, nullptr,
                           (std::string("binary: the strides of ") + (a_fits ? "b" : "a") + " reach past its end").c_str());
    return nullptr;
  }
  run_binary(op, a, b, out, l);
  return undefined(env);
}

// permute(x, out, layout): layout (Float64Array of 8) is the output shape over
// four axes, then x's element strides on them; out is contiguous and must not
// overlap x.
napi_value Permute(napi_env env, napi_callback_info info) {
  constexpr const char* fn = "permute";
  napi_value argv[3];
  if (!get_args(env, info, 3, argv, "permute: expected (x, out, layout)")) return nullptr;
  float *x, *out;
  double* raw;
  int64_t x_len, o_len, l_len;
  if (!get_float32_array(env, argv[0], fn, "x", &x, &x_len) || !get_float32_array(env, argv[1], fn, "out", &out, &o_len) ||
      !get_typed_array(env, argv[2], fn, "layout", napi_float64_array, "a Float64Array", &raw, &l_len)) {
    return nullptr;
  }
  if (l_len < 8) {
    napi_throw_range_error(env, nullptr, "permute: layout needs 8 numbers");
    return nullptr;
  }
  PermuteLayout l;
  if (!layout_counts(env, fn, raw, 4, l.shape) || !layout_counts(env, fn, raw + 4, 4, l.strides)) return nullptr;
  const int64_t total = product(l.shape, 4);
  if (total < 0 || !check_extent(env, fn, "out", o_len, 0, 1, total)) {
    if (!pending(env)) napi_throw_range_error(env, nullptr, "permute: the shape is too large");
    return nullptr;
  }
  if (total == 0) return undefined(env);
  if (strided_last(l.shape, l.strides) >= static_cast<double>(x_len)) {
    napi_throw_range_error(env, nullptr, "permute: the strides of x reach past its end");
    return nullptr;
  }
  const int64_t rows = l.shape[0] * l.shape[1] * l.shape[2];
  parallel_rows(rows, l.shape[3], [&](int64_t r0, int64_t r1) { permute_rows(x, out, l, r0, r1); });
  return undefined(env);
}

}  // namespace

void register_elementwise(napi_env env, napi_value exports) {
  define_functions(env, exports,
                   {{"layerNorm", LayerNorm},
                    {"rmsNorm", RmsNorm},
                    {"unary", Unary},
                    {"softmax", Softmax},
                    {"binary", Binary},
                    {"permute", Permute}});
}

}  // namespace glassformer
