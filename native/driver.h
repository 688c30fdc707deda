// The cache-blocked GEMM loop nest shared by every instruction-set variant
// (Goto & van de Geijn, "Anatomy of High-Performance Matrix Multiplication",
// ACM TOMS 2008; the BLIS loop order).
//
//   for jc in n by NC:            B block  [KC x NC] packed, lives in L3
//     for pc in k by KC:
//       for ic in m by MC:        A block  [MC x KC] packed, lives in L2
//         pack A[ic:ic+MC, pc:pc+KC] into MR-tall micro-panels
//         for jr in NC by NR:     one B micro-panel [KC x NR] stays in L1/L2
//           (first ic only) pack B[pc:pc+KC, jr:jr+NR]
//           for ir in MC by MR:   microkernel: C[MR x NR] += A panel · B panel
//
// With several threads, the operand every thread needs (A when they split the
// columns of C, B when they split the rows) is packed once, together, up front.
//
// This header is included by each variant's file after its target pragma
// and instantiated with a kernel type from that file's anonymous namespace, so
// each instantiation is compiled for its own instruction set and has internal
// linkage (no cross-file ODR merging that could leak AVX-512 code into the
// portable path).
//
// K must provide: MR, NR, KC, MC, NC (MC a multiple of MR, NC of NR) and
//   pack_a(a, lda, rows, kc, dst)        (PortablePacking gives both packs)        dst[p*MR + i] = a[i*lda + p], zero rows >= rows
//   pack_b(g, p0, kc, j0, cols, dst)     dst[p*NR + j] = op(B)[p0+p][j0+j], zero cols >= cols
//   kernel(kc, pa, pb, c, ldc, rows, cols, accumulate)
//                                        C[rows x cols] (+)= pa · pb

#include <algorithm>
#include <chrono>
#include <cstdlib>

namespace {

// A 64-byte-aligned scratch buffer per thread, grown on demand and kept for
// the life of the thread so packing never allocates in the steady state.
class PackBuffer {
 public:
  PackBuffer() = default;
  PackBuffer(const PackBuffer&) = delete;
  PackBuffer& operator=(const PackBuffer&) = delete;
  ~PackBuffer() { std::free(data_); }

  float* get(size_t floats) {
    if (floats > capacity_) {
      std::free(data_);
      size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
      data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      capacity_ = data_ ? floats : 0;
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  size_t capacity_ = 0;
};

// Portable packing, used by the variants that have no faster transposing
// pack of their own.
template <int64_t MR>
void pack_a_portable(const float* a, int64_t lda, int64_t rows, int64_t kc, float* dst) {
  for (int64_t p = 0; p < kc; ++p) {
    for (int64_t i = 0; i < MR; ++i) dst[p * MR + i] = i < rows ? a[i * lda + p] : 0.0f;
  }
}

template <int64_t NR>
void pack_b_portable(const glassformer::Gemm& g, int64_t p0, int64_t kc, int64_t j0, int64_t cols, float* dst) {
  for (int64_t p = 0; p < kc; ++p) {
    for (int64_t j = 0; j < NR; ++j) {
      dst[p * NR + j] = j < cols ? glassformer::b_element(g, p0 + p, j0 + j) : 0.0f;
    }
  }
}

// pack_a / pack_b for a variant whose microkernel reads the portable layout
// and that has no faster pack of its own.
template <int64_t MR_, int64_t NR_>
struct PortablePacking {
  static constexpr int64_t MR = MR_;
  static constexpr int64_t NR = NR_;

  static void pack_a(const float* a, int64_t lda, int64_t rows, int64_t kc, float* dst) {
    pack_a_portable<MR>(a, lda, rows, kc, dst);
  }

  static void pack_b(const glassformer::Gemm& g, int64_t p0, int64_t kc, int64_t j0, int64_t cols, float* dst) {
    pack_b_portable<NR>(g, p0, kc, j0, cols, dst);
  }
};

inline int64_t round_up(int64_t x, int64_t multiple) { return (x + multiple - 1) / multiple * multiple; }

// A fully packed operand, shared by the threads of one multiply: for each KC
// block of k in turn, every micro-panel of A (MR rows) or B (NR columns),
// each kc deep. Block pc starts at pc * (m or n rounded up to the tile).
template <class K>
void pack_a_rows(const glassformer::Gemm& g, int64_t r0, int64_t r1, float* dst) {
  const int64_t padded = round_up(g.m, K::MR);
  for (int64_t pc = 0; pc < g.k; pc += K::KC) {
    const int64_t kc = std::min<int64_t>(K::KC, g.k - pc);
    for (int64_t ir = r0; ir < r1; ir += K::MR) {
      K::pack_a(g.a + ir * g.k + pc, g.k, std::min<int64_t>(K::MR, g.m - ir), kc, dst + pc * padded + ir * kc);
    }
  }
}

template <class K>
void pack_b_cols(const glassformer::Gemm& g, int64_t c0, int64_t c1, float* dst) {
  const int64_t padded = round_up(g.n, K::NR);
  for (int64_t pc = 0; pc < g.k; pc += K::KC) {
    const int64_t kc = std::min<int64_t>(K::KC, g.k - pc);
    for (int64_t jr = c0; jr < c1; jr += K::NR) {
      K::pack_b(g, pc, kc, jr, std::min<int64_t>(K::NR, g.n - jr), dst + pc * padded + jr * kc);
    }
  }
}

// C[m0:m1, n0:n1] = A · op(B). shared_a / shared_b, when given, hold the whole
// operand already packed (pack_a_rows / pack_b_cols); otherwise this thread
// packs what it needs into its own buffers. m0 and n0 are multiples of MR, NR.
template <class K>
void gemm_block_impl(const glassformer::Gemm& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                     const float* shared_a, const float* shared_b) {
  static thread_local PackBuffer a_buffer;
  static thread_local PackBuffer b_buffer;
  const int64_t kc_max = std::min<int64_t>(K::KC, g.k);
  float* packed_a = nullptr;
  float* packed_b = nullptr;
  if (!shared_a) {
    packed_a = a_buffer.get(static_cast<size_t>(std::min<int64_t>(K::MC, round_up(m1 - m0, K::MR)) * kc_max));
    if (!packed_a) std::abort();  // out of memory for a few hundred KB of scratch
  }
  if (!shared_b) {
    packed_b = b_buffer.get(static_cast<size_t>(std::min<int64_t>(K::NC, round_up(n1 - n0, K::NR)) * kc_max));
    if (!packed_b) std::abort();
  }
  const int64_t m_padded = round_up(g.m, K::MR);
  const int64_t n_padded = round_up(g.n, K::NR);

  for (int64_t jc = n0; jc < n1; jc += K::NC) {
    const int64_t nc = std::min<int64_t>(K::NC, n1 - jc);
    for (int64_t pc = 0; pc < g.k; pc += K::KC) {
      const int64_t kc = std::min<int64_t>(K::KC, g.k - pc);
      // The first k block overwrites C, later ones add to it.
      const bool accumulate = pc > 0;
      for (int64_t ic = m0; ic < m1; ic += K::MC) {
        const int64_t mc = std::min<int64_t>(K::MC, m1 - ic);
        const float* pa = shared_a ? shared_a + pc * m_padded + ic * kc : packed_a;
        if (!shared_a) {
          for (int64_t ir = 0; ir < mc; ir += K::MR) {
            K::pack_a(g.a + (ic + ir) * g.k + pc, g.k, std::min<int64_t>(K::MR, mc - ir), kc, packed_a + ir * kc);
          }
        }
        for (int64_t jr = 0; jr < nc; jr += K::NR) {
          const int64_t cols = std::min<int64_t>(K::NR, nc - jr);
          const float* pb = shared_b ? shared_b + pc * n_padded + (jc + jr) * kc : packed_b + jr * kc;
          // Each B micro-panel is packed just before its first use, so the
          // microkernels that follow find it in L1/L2 rather than L3.
          if (!shared_b && ic == m0) K::pack_b(g, pc, kc, jc + jr, cols, packed_b + jr * kc);
          for (int64_t ir = 0; ir < mc; ir += K::MR) {
            K::kernel(kc, pa + ir * kc, pb, g.c + (ic + ir) * g.n + jc + jr, g.n,
                      std::min<int64_t>(K::MR, mc - ir), cols, accumulate);
          }
        }
      }
    }
  }
}

// Runs `step` (one update of a variant's independent FMA chains, in registers)
// for at least `seconds`; the rate it reached, in GFLOP/s.
template <class Step>
double time_fma_steps(double seconds, double flops_per_step, Step step) {
  const int64_t chunk = 1 << 20;
  int64_t iterations = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    for (int64_t it = 0; it < chunk; ++it) step();
    iterations += chunk;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < seconds);
  return static_cast<double>(iterations) * flops_per_step / elapsed / 1e9;
}

// The IsaKernels table of a variant: the blocked GEMM and packs instantiated
// for K (so in the including file's instruction set), plus its own GEMVs.
template <class K>
constexpr glassformer::IsaKernels isa_kernels(const char* name, decltype(glassformer::IsaKernels::gemv) gemv,
                                              decltype(glassformer::IsaKernels::gemv_bf16) gemv_bf16,
                                              decltype(glassformer::IsaKernels::gemv_int8) gemv_int8,
                                              decltype(glassformer::IsaKernels::gemm_int8_q) gemm_int8_q,
                                              decltype(glassformer::IsaKernels::gemm_bf16_rounded) gemm_bf16_rounded,
                                              decltype(glassformer::IsaKernels::fma_peak) fma_peak,
                                              decltype(glassformer::IsaKernels::stream_read) stream_read) {
  return {name,        gemm_block_impl<K>, pack_a_rows<K>, pack_b_cols<K>, gemv, gemv_bf16, gemv_int8, gemm_int8_q,
          gemm_bf16_rounded, K::MR, K::NR, fma_peak, stream_read};
}

}  // namespace
