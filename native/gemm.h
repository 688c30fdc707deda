// Shared declarations for the f32 matrix multiply kernels.
//
// Every instruction-set variant (AVX-512, AVX2+FMA, portable scalar) lives in
// its own file, compiled with GCC target pragmas so that one binary runs on any
// x86-64 and picks the widest variant the CPU supports at run time.
#pragma once

#include <cstdint>

namespace glassformer {

// C = A · op(B), all row-major and contiguous; C is overwritten.
// A is [m, k]; B is [k, n], or [n, k] when trans_b (an nn.Linear weight).
// A weight kept in fewer bits is given instead of b, always [n, k] (trans_b):
// b16 as bf16 bits, or b8 as int8 with one scale per row; the packs widen it
// into the f32 panels block by block, so no f32 copy of the whole weight.
struct Gemm {
  const float* a;
  const float* b;
  float* c;
  int64_t m;
  int64_t n;
  int64_t k;
  bool trans_b;
  const uint16_t* b16 = nullptr;
  const int8_t* b8 = nullptr;
  const float* b8_scales = nullptr;
};

// op(B)[p][j] as f32, whatever B is held in.
inline float b_element(const Gemm& g, int64_t p, int64_t j) {
  if (g.b16) {
    const uint32_t bits = static_cast<uint32_t>(g.b16[j * g.k + p]) << 16;
    float wide;
    __builtin_memcpy(&wide, &bits, 4);
    return wide;
  }
  if (g.b8) return static_cast<float>(g.b8[j * g.k + p]) * g.b8_scales[j];
  return g.trans_b ? g.b[j * g.k + p] : g.b[p * g.n + j];
}

// One instruction-set variant. The driver splits the output between threads
// and calls these on disjoint ranges, concurrently.
struct IsaKernels {
  const char* name;
  // Computes C[m0:m1, n0:n1]; requires k > 0; m0 and n0 multiples of mr and nr.
  // shared_a / shared_b: the whole operand packed by pack_a_rows / pack_b_cols
  // (so threads splitting C pack it once between them), or null to pack per block.
  void (*gemm_block)(const Gemm& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1, const float* shared_a,
                     const float* shared_b);
  // Pack rows [r0, r1) of A or columns [c0, c1) of op(B) (multiples of mr / nr)
  // into a buffer of packed_a_size / packed_b_size floats, 64-byte aligned.
  void (*pack_a_rows)(const Gemm& g, int64_t r0, int64_t r1, float* dst);
  void (*pack_b_cols)(const Gemm& g, int64_t c0, int64_t c1, float* dst);
  // Computes C[:, n0:n1] without packing, for the few rows of decoding (one
  // token, or a handful of beams): bound by memory bandwidth, each weight is
  // read from memory once.
  void (*gemv)(const Gemm& g, int64_t n0, int64_t n1);
  // C[:, n0:n1] = A · Bᵀ for bf16 weights B [n, k] (m at most a few rows):
  // each weight is widened to f32 in registers (exact: bf16 is the top half of
  // an f32), so memory carries 2 bytes a weight and the sums are those of the
  // f32 product on the widened weights.
  void (*gemv_bf16)(const float* a, const uint16_t* b, float* c, int64_t m, int64_t n, int64_t k, int64_t n0,
                    int64_t n1);
  // C[:, n0:n1] = A · (s ⊙ Q)ᵀ for int8 weights Q [n, k] with one scale per
  // row of Q (per output channel): widened to f32 in registers, dot products
  // in f32, each scaled once at the end.
  void (*gemv_int8)(const float* a, const int8_t* q, const float* scales, float* c, int64_t m, int64_t n, int64_t k,
                    int64_t n0, int64_t n1);
  // C[:, n0:n1] = (sa ⊙ A8) · (s ⊙ Q)ᵀ, int8 weights times activations
  // quantized per row (any m): `a` holds each row's int8 values plus 128 as
  // unsigned bytes [m, k] (VNNI multiplies unsigned by signed bytes; the 128
  // comes back out through each weight row's sum), `a_scales` one scale per
  // row. Dot products are exact int32 sums (k <= kInt8MaxK), each scaled once:
  // float(dot) * a_scales[i] * scales[j], so every variant gives the same bits.
  void (*gemm_int8_q)(const uint8_t* a, const float* a_scales, const int8_t* q, const float* scales, float* c,
                      int64_t m, int64_t n, int64_t k, int64_t n0, int64_t n1);
  // C[:, n0:n1] = A16 · Bᵀ for bf16 weights B [n, k] and activations already
  // rounded to bf16, A16 [m, k] with rows k rounded up to even apart (the pad
  // zero, so pairs of k never need a mask), any m; products summed in f32.
  void (*gemm_bf16_rounded)(const uint16_t* a, const uint16_t* b, float* c, int64_t m, int64_t n, int64_t k,
                            int64_t n0, int64_t n1);
  // Register tile of gemm_block: work is split between threads in whole tiles.
  int64_t mr;
  int64_t nr;
  int64_t packed_a_size(const Gemm& g) const { return (g.m + mr - 1) / mr * mr * g.k; }
  int64_t packed_b_size(const Gemm& g) const { return (g.n + nr - 1) / nr * nr * g.k; }
  // A tight loop of independent FMAs on one core: the arithmetic peak, GFLOP/s.
  double (*fma_peak)(double seconds);
  // Reads `count` floats once, front to back, as a GEMV streams its weights
  // (optionally with software prefetch); returns their sum so the reads happen.
  // Timed by the caller: the bandwidth a GEMV on cold weights can reach.
  double (*stream_read)(const float* data, int64_t count, bool prefetch);
};

// The portable bf16 GEMV (gemm_scalar.cc), also used by the AVX2 variant.
void gemv_bf16_portable(const float* a, const uint16_t* b, float* c, int64_t m, int64_t n, int64_t k, int64_t n0,
                        int64_t n1);

// The portable int8 GEMV (gemm_scalar.cc), also used by the AVX2 variant.
void gemv_int8_portable(const float* a, const int8_t* q, const float* scales, float* c, int64_t m, int64_t n,
                        int64_t k, int64_t n0, int64_t n1);

// Longest k whose int8 dot products cannot overflow an int32 (255 · 127 · k).
constexpr int64_t kInt8MaxK = 65536;

// The portable quantized int8 product (gemm_scalar.cc), used by the variants
// without VNNI.
void gemm_int8_q_portable(const uint8_t* a, const float* a_scales, const int8_t* q, const float* scales, float* c,
                          int64_t m, int64_t n, int64_t k, int64_t n0, int64_t n1);

// The AVX-512 VNNI one (gemm_avx512_dot.cc; x86 only).
void gemm_int8_q_vnni(const uint8_t* a, const float* a_scales, const int8_t* q, const float* scales, float* c,
                      int64_t m, int64_t n, int64_t k, int64_t n0, int64_t n1);

// The portable product of bf16 weights and bf16-rounded activations (gemm_scalar.cc).
void gemm_bf16_rounded_portable(const uint16_t* a, const uint16_t* b, float* c, int64_t m, int64_t n, int64_t k,
                                int64_t n0, int64_t n1);

// The AVX512_BF16 one, by vdpbf16ps (gemm_avx512_dot.cc; x86 only).
void gemm_bf16_rounded_dpbf16(const uint16_t* a, const uint16_t* b, float* c, int64_t m, int64_t n, int64_t k,
                              int64_t n0, int64_t n1);

// The portable streaming read (gemm_scalar.cc), also used by the AVX2 variant.
double stream_read_portable(const float* data, int64_t count, bool prefetch);

extern const IsaKernels kAvx512Kernels;
extern const IsaKernels kAvx2Kernels;
extern const IsaKernels kScalarKernels;

}  // namespace glassformer
