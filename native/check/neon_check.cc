// Checks every entry of the NEON kernel tables (native/gemm_neon.cc) against
// double-precision references, without Node: built with an AArch64 compiler
// and run natively or under user-mode emulation (qemu-aarch64), as
// test/kernels/neon.test.ts does on x86-64 machines.
//
//   aarch64-linux-gnu-g++ -std=c++17 -O2 -static native/gemm_neon.cc native/check/neon_check.cc -o neon_check
//   qemu-aarch64 ./neon_check
//
// Prints "neon_check: N cases passed ..." and exits 0, or lists each failed
// case and exits 1; with --dotprod, only whether the CPU check finds SDOT. The threaded calls of native/addon.cc are replayed on one
// thread: the same column and row ranges, the shared operand packed by
// pack_a_rows / pack_b_cols, and their results must equal the one-call
// result bit for bit.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../gemm.h"
#include "../gemm_neon.h"

namespace {

using glassformer::Gemm;
using glassformer::IsaKernels;

int g_cases = 0;
int g_failures = 0;

void record(bool ok, const std::string& what) {
  ++g_cases;
  if (!ok) {
    ++g_failures;
    if (g_failures <= 40) std::printf("FAIL %s\n", what.c_str());
  }
}

// xorshift64*: the same inputs on every run and machine.
struct Random {
  uint64_t state;
  uint64_t next() {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
  }
  float uniform() { return static_cast<float>(static_cast<double>(next() >> 40) / 16777216.0 * 2.0 - 1.0); }
  int8_t int8() { return static_cast<int8_t>(static_cast<int>(next() % 255) - 127); }
};

std::vector<float> floats(Random& r, int64_t count) {
  std::vector<float> v(static_cast<size_t>(count));
  for (float& x : v) x = r.uniform();
  return v;
}

uint16_t bf16_bits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  return static_cast<uint16_t>(bits >> 16);
}

double bf16_value(uint16_t bits16) {
  const uint32_t bits = static_cast<uint32_t>(bits16) << 16;
  float wide;
  std::memcpy(&wide, &bits, 4);
  return wide;
}

std::string shape(const char* what, int64_t m, int64_t n, int64_t k) {
  return std::string(what) + " m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k);
}

// A reference element: Σ_p x(p) · y(p) in double, and Σ |x(p) · y(p)| for the
// tolerance of an f32 sum of k products (Higham's γ_k bound, with a margin).
struct Dot {
  double sum = 0;
  double magnitude = 0;
  void add(double x, double y) {
    sum += x * y;
    magnitude += std::fabs(x * y);
  }
  bool near(float got, int64_t k) const {
    const double tolerance = 2.0 * static_cast<double>(k + 2) * std::ldexp(1.0, -24) * magnitude + 1e-30;
    return std::isfinite(got) && std::fabs(static_cast<double>(got) - sum) <= tolerance;
  }
};

constexpr float kUntouched = -12345.0f;

// C[:, n0:n1] checked against ref(i, j); every other column must still hold kUntouched.
template <class Ref>
bool columns_match(const std::vector<float>& c, int64_t m, int64_t n, int64_t k, int64_t n0, int64_t n1, Ref ref) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const float got = c[static_cast<size_t>(i * n + j)];
      if (j < n0 || j >= n1) {
        if (got != kUntouched) return false;
      } else if (!ref(i, j).near(got, k)) {
        return false;
      }
    }
  }
  return true;
}

bool same_bits(const std::vector<float>& x, const std::vector<float>& y) {
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

// The weight kinds the blocked GEMM packs: f32 [k, n], f32 [n, k], bf16 and int8 [n, k].
enum class Weight { kF32, kF32Transposed, kBf16, kInt8 };

const char* weight_name(Weight w) {
  switch (w) {
    case Weight::kF32: return "f32 [k,n]";
    case Weight::kF32Transposed: return "f32 [n,k]";
    case Weight::kBf16: return "bf16 [n,k]";
    default: return "int8 [n,k]";
  }
}

struct Operands {
  std::vector<float> a, b, scales;
  std::vector<uint16_t> b16;
  std::vector<int8_t> b8;
  Gemm g;
  // op(B)[p][j] as the kernels see it.
  double b_at(int64_t p, int64_t j) const {
    if (g.b16) return bf16_value(b16[static_cast<size_t>(j * g.k + p)]);
    if (g.b8) return static_cast<double>(static_cast<float>(b8[static_cast<size_t>(j * g.k + p)]) * scales[static_cast<size_t>(j)]);
    return g.trans_b ? b[static_cast<size_t>(j * g.k + p)] : b[static_cast<size_t>(p * g.n + j)];
  }
  Dot ref(int64_t i, int64_t j) const {
    Dot d;
    for (int64_t p = 0; p < g.k; ++p) d.add(a[static_cast<size_t>(i * g.k + p)], b_at(p, j));
    return d;
  }
};

Operands make_operands(Random& r, int64_t m, int64_t n, int64_t k, Weight w) {
  Operands o;
  o.a = floats(r, m * k);
  o.g = Gemm{o.a.data(), nullptr, nullptr, m, n, k, w != Weight::kF32};
  if (w == Weight::kBf16) {
    for (int64_t i = 0; i < n * k; ++i) o.b16.push_back(bf16_bits(r.uniform()));
    o.g.b16 = o.b16.data();
  } else if (w == Weight::kInt8) {
    for (int64_t i = 0; i < n * k; ++i) o.b8.push_back(r.int8());
    for (int64_t j = 0; j < n; ++j) o.scales.push_back(0.001f + std::fabs(r.uniform()) / 64);
    o.g.b8 = o.b8.data();
    o.g.b8_scales = o.scales.data();
  } else {
    o.b = floats(r, n * k);
    o.g.b = o.b.data();
  }
  return o;
}

// A 64-byte-aligned buffer, as the addon's shared packs are.
struct Aligned {
  float* data;
  explicit Aligned(int64_t floats)
      : data(static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>((floats * 4 + 63) / 64 * 64)))) {}
  ~Aligned() { std::free(data); }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
};

// gemm_block over the whole of C, then as addon.cc's threads split it:
// columns in chunks of whole tiles with A packed once (pack_a_rows), and rows
// in chunks with B packed once (pack_b_cols), each chunk's pack done in pieces.
void check_gemm_block(const IsaKernels& isa, Random& r, int64_t m, int64_t n, int64_t k, Weight w) {
  Operands o = make_operands(r, m, n, k, w);
  const std::string what = std::string(isa.name) + " gemm_block " + weight_name(w) + shape("", m, n, k);
  std::vector<float> whole(static_cast<size_t>(m * n), kUntouched);
  o.g.c = whole.data();
  isa.gemm_block(o.g, 0, m, 0, n, nullptr, nullptr);
  record(columns_match(whole, m, n, k, 0, n, [&](int64_t i, int64_t j) { return o.ref(i, j); }), what);

  const int64_t m_tiles = (m + isa.mr - 1) / isa.mr;
  const int64_t n_tiles = (n + isa.nr - 1) / isa.nr;
  {
    Aligned shared(isa.packed_a_size(o.g));
    std::vector<float> split(static_cast<size_t>(m * n), kUntouched);
    o.g.c = split.data();
    const int64_t pieces = std::min<int64_t>(2, m_tiles);
    for (int64_t c = 0; c < pieces; ++c) {
      isa.pack_a_rows(o.g, m_tiles * c / pieces * isa.mr, std::min(m, m_tiles * (c + 1) / pieces * isa.mr),
                      shared.data);
    }
    const int64_t chunks = std::min<int64_t>(n_tiles, 3);
    for (int64_t c = 0; c < chunks; ++c) {
      isa.gemm_block(o.g, 0, m, n_tiles * c / chunks * isa.nr, std::min(n, n_tiles * (c + 1) / chunks * isa.nr),
                     shared.data, nullptr);
    }
    record(same_bits(split, whole), what + " (columns split, A packed once)");
  }
  {
    Aligned shared(isa.packed_b_size(o.g));
    std::vector<float> split(static_cast<size_t>(m * n), kUntouched);
    o.g.c = split.data();
    const int64_t pieces = std::min<int64_t>(2, n_tiles);
    for (int64_t c = 0; c < pieces; ++c) {
      isa.pack_b_cols(o.g, n_tiles * c / pieces * isa.nr, std::min(n, n_tiles * (c + 1) / pieces * isa.nr),
                      shared.data);
    }
    const int64_t chunks = std::min<int64_t>(m_tiles, 3);
    for (int64_t c = 0; c < chunks; ++c) {
      isa.gemm_block(o.g, m_tiles * c / chunks * isa.mr, std::min(m, m_tiles * (c + 1) / chunks * isa.mr), 0, n,
                     nullptr, shared.data);
    }
    record(same_bits(split, whole), what + " (rows split, B packed once)");
  }
}

// The column ranges a split decode product is cut into (addon.cc: blocks of
// 64 columns), and one range that starts off any tile, as a GEMM split by
// single columns (gemm_bf16_rounded, gemm_int8_q) does.
std::vector<std::pair<int64_t, int64_t>> column_ranges(int64_t n) {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (int64_t j = 0; j < n; j += 64) ranges.emplace_back(j, std::min(n, j + 64));
  if (n > 5) ranges.emplace_back(5, n - 1);
  return ranges;
}

// Runs `product(c, n0, n1)` on the whole of C and on each column range into a
// fresh C; checks the whole against ref, each range against ref with the other
// columns untouched and the same bits as the whole.
template <class Product, class Ref>
void check_columns(const std::string& what, int64_t m, int64_t n, int64_t k, Product product, Ref ref) {
  std::vector<float> whole(static_cast<size_t>(m * n), kUntouched);
  product(whole.data(), 0, n);
  record(columns_match(whole, m, n, k, 0, n, ref), what);
  std::vector<float> pieces(static_cast<size_t>(m * n), kUntouched);
  for (const auto& [n0, n1] : column_ranges(n)) {
    std::vector<float> part(static_cast<size_t>(m * n), kUntouched);
    product(part.data(), n0, n1);
    record(columns_match(part, m, n, k, n0, n1, ref), what + " columns " + std::to_string(n0) + ".." + std::to_string(n1));
    bool same = true;
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = n0; j < n1; ++j) same = same && part[static_cast<size_t>(i * n + j)] == whole[static_cast<size_t>(i * n + j)];
    }
    record(same, what + " columns " + std::to_string(n0) + ".." + std::to_string(n1) + " same bits as one call");
  }
}

void check_gemv(const IsaKernels& isa, Random& r, int64_t m, int64_t n, int64_t k, bool trans_b) {
  Operands o = make_operands(r, m, n, k, trans_b ? Weight::kF32Transposed : Weight::kF32);
  check_columns(std::string(isa.name) + " gemv " + (trans_b ? "[n,k]" : "[k,n]") + shape("", m, n, k), m, n, k,
                [&](float* c, int64_t n0, int64_t n1) {
                  Gemm g = o.g;
                  g.c = c;
                  isa.gemv(g, n0, n1);
                },
                [&](int64_t i, int64_t j) { return o.ref(i, j); });
}

void check_gemv_bf16(const IsaKernels& isa, Random& r, int64_t m, int64_t n, int64_t k) {
  Operands o = make_operands(r, m, n, k, Weight::kBf16);
  check_columns(std::string(isa.name) + " gemv_bf16" + shape("", m, n, k), m, n, k,
                [&](float* c, int64_t n0, int64_t n1) { isa.gemv_bf16(o.a.data(), o.b16.data(), c, m, n, k, n0, n1); },
                [&](int64_t i, int64_t j) { return o.ref(i, j); });
}

void check_gemv_int8(const IsaKernels& isa, Random& r, int64_t m, int64_t n, int64_t k) {
  Operands o = make_operands(r, m, n, k, Weight::kInt8);
  // The interface scales the f32 dot product once: ref = (a · q) · s.
  const auto ref = [&](int64_t i, int64_t j) {
    Dot d;
    for (int64_t p = 0; p < k; ++p) d.add(o.a[static_cast<size_t>(i * k + p)], o.b8[static_cast<size_t>(j * k + p)] * static_cast<double>(o.scales[static_cast<size_t>(j)]));
    return d;
  };
  check_columns(std::string(isa.name) + " gemv_int8" + shape("", m, n, k), m, n, k,
                [&](float* c, int64_t n0, int64_t n1) {
                  isa.gemv_int8(o.a.data(), o.b8.data(), o.scales.data(), c, m, n, k, n0, n1);
                },
                ref);
}

// Exact: the integer dot products are exact and each is scaled by the same
// two f32 multiplications, so every variant gives these bits.
void check_gemm_int8_q(const IsaKernels& isa, Random& r, int64_t m, int64_t n, int64_t k) {
  std::vector<uint8_t> a(static_cast<size_t>(m * k));
  for (uint8_t& x : a) x = static_cast<uint8_t>(r.int8() + 128);
  std::vector<int8_t> q(static_cast<size_t>(n * k));
  for (int8_t& x : q) x = r.int8();
  std::vector<float> a_scales, scales;
  for (int64_t i = 0; i < m; ++i) a_scales.push_back(std::fabs(r.uniform()) / 127);
  for (int64_t j = 0; j < n; ++j) scales.push_back(std::fabs(r.uniform()) / 127);
  std::vector<float> expected(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      int64_t dot = 0;
      for (int64_t p = 0; p < k; ++p) dot += (static_cast<int64_t>(a[static_cast<size_t>(i * k + p)]) - 128) * q[static_cast<size_t>(j * k + p)];
      expected[static_cast<size_t>(i * n + j)] = static_cast<float>(dot) * a_scales[static_cast<size_t>(i)] * scales[static_cast<size_t>(j)];
    }
  }
  const std::string what = std::string(isa.name) + " gemm_int8_q" + shape("", m, n, k);
  for (const auto& [n0, n1] : column_ranges(n)) {
    std::vector<float> c(static_cast<size_t>(m * n), kUntouched);
    isa.gemm_int8_q(a.data(), a_scales.data(), q.data(), scales.data(), c.data(), m, n, k, n0, n1);
    bool exact = true;
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        const float want = j >= n0 && j < n1 ? expected[static_cast<size_t>(i * n + j)] : kUntouched;
        exact = exact && std::memcmp(&c[static_cast<size_t>(i * n + j)], &want, 4) == 0;
      }
    }
    record(exact, what + " columns " + std::to_string(n0) + ".." + std::to_string(n1) + " exact");
  }
}

// A16 rows k rounded up to even apart, the pad zero (IsaKernels::gemm_bf16_rounded).
void check_gemm_bf16_rounded(const IsaKernels& isa, Random& r, int64_t m, int64_t n, int64_t k) {
  const int64_t kp = k + (k & 1);
  std::vector<uint16_t> a(static_cast<size_t>(m * kp), 0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t p = 0; p < k; ++p) a[static_cast<size_t>(i * kp + p)] = bf16_bits(r.uniform());
  }
  std::vector<uint16_t> b(static_cast<size_t>(n * k));
  for (uint16_t& x : b) x = bf16_bits(r.uniform());
  check_columns(std::string(isa.name) + " gemm_bf16_rounded" + shape("", m, n, k), m, n, k,
                [&](float* c, int64_t n0, int64_t n1) { isa.gemm_bf16_rounded(a.data(), b.data(), c, m, n, k, n0, n1); },
                [&](int64_t i, int64_t j) {
                  Dot d;
                  for (int64_t p = 0; p < k; ++p) d.add(bf16_value(a[static_cast<size_t>(i * kp + p)]), bf16_value(b[static_cast<size_t>(j * k + p)]));
                  return d;
                });
}

void check_stream_read(const IsaKernels& isa, Random& r, int64_t count) {
  std::vector<float> data = floats(r, count);
  Dot d;
  for (float x : data) d.add(x, 1.0);
  for (bool prefetch : {false, true}) {
    const double got = isa.stream_read(data.data(), count, prefetch);
    record(d.near(static_cast<float>(got), count),
           std::string(isa.name) + " stream_read count=" + std::to_string(count) + (prefetch ? " prefetch" : ""));
  }
}

void check_table(const IsaKernels& isa) {
  Random r{0x9E3779B97F4A7C15ULL};
  record(isa.mr == 8 && isa.nr == 12, std::string(isa.name) + " register tile 8x12");

  // The blocked GEMM: every weight kind, sizes of 1, under, at and past the
  // 8x12 tile, k past the 512-deep k block (C accumulated across blocks).
  const int64_t ms[] = {1, 5, 8, 9, 17, 33};
  const int64_t ns[] = {1, 7, 12, 13, 25, 50};
  const int64_t ks[] = {1, 3, 4, 17, 64, 515};
  for (Weight w : {Weight::kF32, Weight::kF32Transposed, Weight::kBf16, Weight::kInt8}) {
    for (int64_t m : ms) {
      for (int64_t n : ns) {
        for (int64_t k : ks) check_gemm_block(isa, r, m, n, k, w);
      }
    }
  }
  // Past MC (128 rows), two k blocks, and past NC (3072 columns).
  check_gemm_block(isa, r, 130, 40, 1030, Weight::kF32Transposed);
  check_gemm_block(isa, r, 130, 40, 1030, Weight::kF32);
  check_gemm_block(isa, r, 9, 3100, 20, Weight::kF32);
  check_gemm_block(isa, r, 9, 3100, 20, Weight::kBf16);

  // Decode: m <= 4, k with every tail of the 16- and 4-wide steps, a large k.
  for (int64_t m = 1; m <= 4; ++m) {
    for (int64_t k : {1, 3, 4, 15, 16, 17, 35, 100}) {
      for (int64_t n : {1, 13, 130}) {
        check_gemv(isa, r, m, n, k, true);
        check_gemv(isa, r, m, n, k, false);
        check_gemv_bf16(isa, r, m, n, k);
        check_gemv_int8(isa, r, m, n, k);
      }
    }
    check_gemv(isa, r, m, 70, 4099, true);
    check_gemv(isa, r, m, 70, 4099, false);
    check_gemv_bf16(isa, r, m, 70, 4099);
    check_gemv_int8(isa, r, m, 70, 4099);
  }
  // The interface allows any m for the weight-row GEMVs.
  check_gemv_bf16(isa, r, 7, 20, 33);
  check_gemv_int8(isa, r, 7, 20, 33);

  // bf16-rounded products, any m, a large k.
  for (int64_t m : {1, 2, 3, 4, 5, 9}) {
    for (int64_t k : {1, 15, 16, 17, 31, 32, 33, 100}) check_gemm_bf16_rounded(isa, r, m, 70, k);
  }
  check_gemm_bf16_rounded(isa, r, 3, 20, 1029);
  check_gemm_bf16_rounded(isa, r, 20, 30, 600);

  for (int64_t count : {0, 1, 15, 16, 17, 1000, 4099}) check_stream_read(isa, r, count);
  const double peak = isa.fma_peak(0.01);
  record(std::isfinite(peak) && peak > 0, std::string(isa.name) + " fma_peak " + std::to_string(peak));
}

// The quantized int8 product, any m, tails of the 16- and 32-byte steps, a large k.
void check_int8_q(const IsaKernels& isa) {
  Random r{0xD1B54A32D192ED03ULL};
  for (int64_t m : {1, 2, 3, 4, 5, 9}) {
    for (int64_t k : {1, 15, 16, 17, 31, 32, 33, 100}) check_gemm_int8_q(isa, r, m, 70, k);
  }
  check_gemm_int8_q(isa, r, 3, 20, 5000);
  check_gemm_int8_q(isa, r, 6, 20, 1027);
}

// neon-dotprod is neon with gemm_int8_q on SDOT: the rest is the same code.
bool shares_neon_entries(const IsaKernels& isa) {
  if (std::strcmp(isa.name, "neon-dotprod") != 0) return false;
  const IsaKernels& neon = glassformer::kNeonKernels;
  return isa.gemm_block == neon.gemm_block && isa.pack_a_rows == neon.pack_a_rows &&
         isa.pack_b_cols == neon.pack_b_cols && isa.gemv == neon.gemv && isa.gemv_bf16 == neon.gemv_bf16 &&
         isa.gemv_int8 == neon.gemv_int8 && isa.gemm_bf16_rounded == neon.gemm_bf16_rounded &&
         isa.fma_peak == neon.fma_peak && isa.stream_read == neon.stream_read && isa.mr == neon.mr &&
         isa.nr == neon.nr;
}

}  // namespace

int main(int argc, char** argv) {
  // `neon_check --dotprod` only reports what the CPU check finds (the test
  // runs it on an emulated CPU without SDOT).
  if (argc > 1 && std::strcmp(argv[1], "--dotprod") == 0) {
    std::printf("neon_dotprod_supported: %s\n", glassformer::neon_dotprod_supported() ? "yes" : "no");
    return 0;
  }
  check_table(glassformer::kNeonKernels);
  check_int8_q(glassformer::kNeonKernels);
  record(shares_neon_entries(glassformer::kNeonDotprodKernels), "neon-dotprod shares every entry but gemm_int8_q with neon");
  const bool dotprod = glassformer::neon_dotprod_supported();
  if (dotprod) check_int8_q(glassformer::kNeonDotprodKernels);
  if (g_failures > 0) {
    std::printf("neon_check: %d of %d cases failed\n", g_failures, g_cases);
    return 1;
  }
  std::printf("neon_check: %d cases passed (neon-dotprod %s)\n", g_cases,
              dotprod ? "checked" : "not checked: this CPU has no SDOT");
  return 0;
}
