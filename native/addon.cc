// N-API binding: glassformer's native matmul kernel.
//
//   gemm(a, aOffset, b, bOffset, c, cOffset, m, n, k, transB)  C = A · op(B)
//   gemmBf16(a, aOffset, b, bOffset, c, cOffset, m, n, k)  C = A · Bᵀ, B [n, k] bf16 bits
//   gemmBf16Rounded(same arguments)  the same with A rounded to bf16 (vdpbf16ps)
//   gemmInt8(a, aOffset, q, qOffset, scales, c, cOffset, m, n, k)  C = A · (scales ⊙ Q)ᵀ, Q [n, k] int8
//   gemmInt8Quantized(same arguments)  the same with A quantized per row to int8 (VNNI)
//   and the fused ops of ops.cc (attention) and elementwise.cc, registered by
//   register_ops and register_elementwise
//   prepack(b, bOffset, n, k, transB) -> ArrayBuffer   op(B) packed once, for
//   gemmPacked(a, aOffset, packed, c, cOffset, m, n, k)  C = A · op(B) without packing B
//   setThreads(n) -> threads in use     threads() -> threads in use
//   isa() -> "avx512bf16" | "avx512vnni" | "avx512" | "avx2" | "neon-dotprod" | "neon" | "scalar"   supportedIsas() -> string[]
//   setIsa(name)   (tests use it to check every variant on one machine)
//   setDecodePrefetch(bytes) -> the previous value: how much of the next decode
//     product's weight the idle worker prefetches between products (0: off)
//   fmaPeak(seconds) -> GFLOP/s of one core in a register-only FMA loop
//   streamRead(buffer, threads, prefetch) -> GB/s of one pass reading a
//     Float32Array the way a GEMV reads its weights (the decode limit)
//
// The call is synchronous: a matmul in a forward pass is short and the caller
// needs its result next, so the JavaScript thread takes part as worker 0.
#include <node_api.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <new>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "gemm.h"
#if defined(__aarch64__)
#include "gemm_neon.h"
#endif
#include "napi_util.h"
#include "runtime.h"
#include "thread_pool.h"

namespace glassformer {
namespace {

// Below this many multiply-adds one thread is faster than waking another.
constexpr int64_t kParallelMinMacs = 1 << 19;
// Up to this many rows of A (one token, or a few beams), streaming the weights
// beats packing them: measured 2.5x at m = 2, even by m = 8.
constexpr int64_t kGemvMaxRows = 4;
// Decoding (m <= kGemvMaxRows) is bound by memory bandwidth. On an idle
// machine two threads stream a cold weight faster than one: GPT-2's weights,
// interleaved one- and two-thread runs, medians of 40 on this VM, 20.0 -> 31.2
// GB/s for the [50257, 768] logits, 25.5 -> 30.8 for [3072, 768], 21.7 ->
// 28.4 for [768, 3072], 23.9 -> 30.6 for [2304, 768]. From 1 MB: splitting
// int8 GPT-2's 1.8-2.4 MB layer weights too took its decode from 142 to
// 165-175 tokens/s; smaller weights stay on the calling thread (the worker's
// handshake would cost more than it saves). A busy second core costs little,
// as the caller takes the chunks the worker has not started.
constexpr int64_t kGemvSplitMinBytes = int64_t{1} << 20;
// Column blocks of a split GEMV: a multiple of every variant's vector width.
constexpr int64_t kGemvSplitColumns = 16;
// A split GEMV's chunks, cut at these 64ths of its column blocks: an eighth
// at each end, halving towards the middle, where the caller (taking chunks
// from the front) and the helper (from the back) meet. The thread that
// finishes first then waits on at most a 64th of the product; with eight equal
// chunks it waited on up to an eighth, and measured 6-25 us of one thread
// streaming alone at the end of each of GPT-2's layer products (8-10% of them).
constexpr int64_t kGemvCuts[] = {0, 8, 16, 24, 28, 30, 31, 32, 33, 34, 36, 40, 48, 56, 64};
constexpr int64_t kGemvChunks = sizeof(kGemvCuts) / sizeof(kGemvCuts[0]) - 1;
// Chunks per thread for a GEMM: several, so the load balances when a core is
// busy with something else (each chunk packs only its own panels of B).
constexpr int64_t kGemmChunksPerThread = 3;
// The operand the threads share is packed once into a buffer kept for the next
// call; above this size (64 MB) each thread packs block by block instead.
constexpr int64_t kMaxSharedPackFloats = int64_t{1} << 24;
// Below this size (1 MB) the caller packs the shared operand alone: a few tens
// of microseconds, against a handshake with a worker that may be asleep or
// descheduled (a second barrier the caller would wait at).
constexpr int64_t kSoloPackFloats = int64_t{1} << 18;
// The most setDecodePrefetch accepts: more than the last-level cache would
// evict the start of what it prefetched before the product reads it.
constexpr int64_t kMaxDecodePrefetchBytes = int64_t{32} << 20;
// Pieces of a streamRead pass on several threads: enough that a late worker
// only misses a few.
constexpr int64_t kStreamChunks = 32;

#if defined(__x86_64__) || defined(__i386__)
// AVX-512 plus VNNI's int8 dot products: the same table with the quantized
// int8 product swapped for vpdpbusd.
const IsaKernels* avx512_vnni() {
  static const IsaKernels vnni = [] {
    IsaKernels k = kAvx512Kernels;
    k.name = "avx512vnni";
    k.gemm_int8_q = gemm_int8_q_vnni;
    return k;
  }();
  return &vnni;
}

// And AVX512_BF16's vdpbf16ps for bf16 weights times bf16-rounded activations.
const IsaKernels* avx512_bf16() {
  static const IsaKernels bf16 = [] {
    IsaKernels k = *avx512_vnni();
    k.name = "avx512bf16";
    k.gemm_bf16_rounded = gemm_bf16_rounded_dpbf16;
    return k;
  }();
  return &bf16;
}
#endif

std::vector<const IsaKernels*> supported_isas() {
  std::vector<const IsaKernels*> isas;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq")) {
    if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bf16")) isas.push_back(avx512_bf16());
    if (__builtin_cpu_supports("avx512vnni")) isas.push_back(avx512_vnni());
    isas.push_back(&kAvx512Kernels);
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isas.push_back(&kAvx2Kernels);
#endif
#if defined(__aarch64__)
  // Advanced SIMD is in every ARMv8-A core; SDOT (FEAT_DotProd) is optional.
  if (neon_dotprod_supported()) isas.push_back(&kNeonDotprodKernels);
  isas.push_back(&kNeonKernels);
#endif
  isas.push_back(&kScalarKernels);
  return isas;
}

struct State {
  std::vector<const IsaKernels*> isas = supported_isas();
  const IsaKernels* active = isas.front();
  ThreadPool pool;
};

// Shared by every Node environment (worker threads) in the process and never
// destroyed: the pool's threads must not be joined from a static destructor.
State& state() {
  static State* s = [] {
    auto* created = new State();
    const unsigned hw = std::thread::hardware_concurrency();
    created->pool.set_threads(hw == 0 ? 1 : static_cast<int>(hw));
    return created;
  }();
  return *s;
}

}  // namespace

ThreadPool& shared_pool() { return state().pool; }
const IsaKernels& active_isa() { return *state().active; }

namespace {

// A 64-byte-aligned buffer for the operand the threads share, kept between
// calls (one per calling thread) so steady-state multiplies never allocate.
class SharedPack {
 public:
  SharedPack() = default;
  SharedPack(const SharedPack&) = delete;
  SharedPack& operator=(const SharedPack&) = delete;
  ~SharedPack() { std::free(data_); }
  float* get(int64_t floats) {
    if (floats > capacity_) {
      std::free(data_);
      data_ = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(floats * 4 + 63) / 64 * 64));
      capacity_ = data_ ? floats : 0;
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  int64_t capacity_ = 0;
};

// One multiply cut into chunks of C: whole register tiles along n (or along m
// when C is tall and narrow), or runs of output elements for decode.
struct Job {
  const Gemm* g;
  const IsaKernels* isa;
  bool split_n;
  int64_t tiles;   // along the split dimension
  int64_t chunks;
  float* shared;   // the other operand packed once for all threads, or null
  int64_t pack_chunks;
  const float* packed_b;  // B packed ahead of the call (gemmPacked), or null
};

// Packs a share of the operand that is not split: A's row panels when the
// threads split the columns of C, B's column panels when they split the rows.
void run_pack_chunk(const void* context, int64_t chunk) {
  const Job& job = *static_cast<const Job*>(context);
  const Gemm& g = *job.g;
  const IsaKernels& isa = *job.isa;
  if (job.split_n) {
    const int64_t panels = (g.m + isa.mr - 1) / isa.mr;
    isa.pack_a_rows(g, panels * chunk / job.pack_chunks * isa.mr,
                    std::min(g.m, panels * (chunk + 1) / job.pack_chunks * isa.mr), job.shared);
  } else {
    const int64_t panels = (g.n + isa.nr - 1) / isa.nr;
    isa.pack_b_cols(g, panels * chunk / job.pack_chunks * isa.nr,
                    std::min(g.n, panels * (chunk + 1) / job.pack_chunks * isa.nr), job.shared);
  }
}

void run_gemm_chunk(const void* context, int64_t chunk) {
  const Job& job = *static_cast<const Job*>(context);
  const Gemm& g = *job.g;
  const IsaKernels& isa = *job.isa;
  const int64_t first = job.tiles * chunk / job.chunks;
  const int64_t last = job.tiles * (chunk + 1) / job.chunks;
  if (job.split_n) {
    isa.gemm_block(g, 0, g.m, first * isa.nr, std::min(g.n, last * isa.nr), job.shared, job.packed_b);
  } else {
    isa.gemm_block(g, first * isa.mr, std::min(g.m, last * isa.mr), 0, g.n, nullptr,
                   job.packed_b ? job.packed_b : job.shared);
  }
}

// Calls body(n0, n1) over the columns [0, n) of C: on this thread when
// `threads` is 1, else in up to threads · chunks_per_thread ranges the pool's
// threads share, each a whole number of `block` columns (but the last).
template <class Body>
void split_columns(int64_t n, int64_t threads, int64_t block, int64_t chunks_per_thread, const Body& body) {
  if (threads == 1) {
    body(int64_t{0}, n);
    return;
  }
  const int64_t blocks = (n + block - 1) / block;
  state().pool.run_ranges(blocks, std::min<int64_t>(blocks, threads * chunks_per_thread), [&](int64_t b0, int64_t b1) {
    body(b0 * block, std::min(n, b1 * block));
  });
}

// A decode product's weight: where it starts, its size, and how C's columns
// [0, n) lie in it: column j is the run of row_bytes at base + j · row_bytes
// (an [n, k] weight), or row_bytes is 0 (a [k, n] weight: columns strided).
struct GemvWeight {
  const char* base = nullptr;
  int64_t bytes = 0;
  int64_t n = 0;
  int64_t row_bytes = 0;
};

// Decoding issues the same products in the same order every token (GPT-2: four
// a layer and the head), so the weight that followed a weight last time is
// the one that will follow it now. Kept per calling thread (each has its own
// sequence), keyed by the weight's address; bounded, as addresses are reused
// once weights are freed.
class DecodeSequence {
 public:
  // Records that `now` follows the previous product; returns the weight that
  // followed `now` last time, or null.
  const GemvWeight* advance(const GemvWeight& now) {
    if (previous_ && previous_ != now.base) {
      if (next_.size() >= kMaxWeights) next_.clear();
      next_[previous_] = now;
    }
    previous_ = now.base;
    const auto found = next_.find(now.base);
    return found == next_.end() ? nullptr : &found->second;
  }

 private:
  static constexpr size_t kMaxWeights = 4096;
  std::unordered_map<const char*, GemvWeight> next_;
  const char* previous_ = nullptr;
};

// Columns [first, end) of chunk c of a split decode product of n columns (see
// kGemvCuts; a chunk of a narrow product may be empty).
void gemv_chunk_columns(int64_t n, int64_t c, int64_t* first, int64_t* end) {
  const int64_t blocks = (n + kGemvSplitColumns - 1) / kGemvSplitColumns;
  *first = std::min(n, blocks * kGemvCuts[c] / 64 * kGemvSplitColumns);
  *end = std::min(n, blocks * kGemvCuts[c + 1] / 64 * kGemvSplitColumns);
}

// Bytes of the next decode product's weight the idle helper prefetches (see
// split_gemv); 0 turns it off (setDecodePrefetch). The helper's L2 is 1 MB on
// this VM (Zen 4), and a gap of 30-100 us between products fetches about that.
std::atomic<int64_t> decode_prefetch_bytes{int64_t{1} << 20};

// Asks the idle helper to prefetch the first `budget` bytes it will read of
// `next`: it takes chunks from the back (ThreadPool::Order), so the last
// chunk from its start, then the one before, and so on. Weights too small to
// split, or whose columns are strided ([k, n]), are left to the hardware.
void prefetch_next_gemv(const GemvWeight& next, int64_t budget) {
  ThreadPool& pool = state().pool;
  const int64_t threads = pool.threads();
  if (threads < 2 || next.row_bytes == 0 || next.bytes < kGemvSplitMinBytes) return;
  ThreadPool::Span spans[ThreadPool::kMaxSpans];
  int count = 0;
  for (int64_t c = kGemvChunks - 1; c >= 0 && budget > 0 && count < ThreadPool::kMaxSpans; --c) {
    int64_t first, end;
    gemv_chunk_columns(next.n, c, &first, &end);
    if (first == end) continue;
    const int64_t take = std::min((end - first) * next.row_bytes, budget);
    spans[count++] = {next.base + first * next.row_bytes, take};
    budget -= take;
  }
  pool.prefetch_when_idle(spans, count);
}

// Calls gemv(n0, n1) over the columns [0, n) of a decode product: on this
// thread, or in column blocks the pool's threads share when the weight is
// large enough to stream faster on two (see above), the helpers taking them
// from the back. Each column is summed by the same code either way, so the
// result is the same. Then the helper, idle until the next product (the
// caller goes back to JavaScript for the norms and attention between them,
// 30-100 us with memory idle), is asked to prefetch the start of its share of
// the product that came next last time (DecodeSequence).
template <class Gemv>
void split_gemv(const GemvWeight& now, const Gemv& gemv) {
  ThreadPool& pool = state().pool;
  const int64_t budget = decode_prefetch_bytes.load(std::memory_order_relaxed);
  // This product streams now: whatever the helper still prefetches competes with it.
  if (budget > 0) pool.cancel_prefetch();
  static thread_local DecodeSequence sequence;
  const GemvWeight* next = budget > 0 ? sequence.advance(now) : nullptr;
  const int64_t threads = now.bytes < kGemvSplitMinBytes ? 1 : pool.threads();
  if (threads == 1) {
    gemv(int64_t{0}, now.n);
  } else {
    struct Columns {
      const Gemv* gemv;
      int64_t n;
    } columns{&gemv, now.n};
    pool.run(
        kGemvChunks,
        [](const void* context, int64_t chunk) {
          const Columns& c = *static_cast<const Columns*>(context);
          int64_t first, end;
          gemv_chunk_columns(c.n, chunk, &first, &end);
          if (first < end) (*c.gemv)(first, end);
        },
        &columns, static_cast<int>(threads), ThreadPool::Order::kHelpersFromBack);
  }
  if (next) prefetch_next_gemv(*next, budget);
}

// C = A · op(B), with B already packed (packed_b, from prepack) or not (null).
void run_gemm(const Gemm& g, const float* packed_b = nullptr) {
  State& s = state();
  if (g.k == 0) {
    std::fill(g.c, g.c + g.m * g.n, 0.0f);
    return;
  }
  const int64_t threads = g.m * g.n * g.k < kParallelMinMacs ? 1 : s.pool.threads();
  Job job{&g, s.active, true, 0, 0, nullptr, 0, packed_b};
  if (g.m <= kGemvMaxRows && !packed_b) {
    // Stream each weight once, without packing (see the notes at the top).
    const IsaKernels* isa = job.isa;
    const GemvWeight weight{reinterpret_cast<const char*>(g.b), g.n * g.k * 4, g.n, g.trans_b ? g.k * 4 : 0};
    split_gemv(weight, [&](int64_t n0, int64_t n1) { isa->gemv(g, n0, n1); });
    return;
  }
  if (threads == 1) {
    // One thread packs block by block, each panel just before it is used.
    job.isa->gemm_block(g, 0, g.m, 0, g.n, nullptr, packed_b);
    return;
  }
  const int64_t m_tiles = (g.m + job.isa->mr - 1) / job.isa->mr;
  const int64_t n_tiles = (g.n + job.isa->nr - 1) / job.isa->nr;
  // With B packed ahead the threads split the rows of C whenever there are
  // enough: each packs only its own rows of A as it goes, so nothing is
  // packed up front and no thread waits at a second barrier. Splitting the
  // columns instead had the caller pack all of A first: GPT-2's [128x768] .
  // [768x768]^T went from 70-81% to 91-95% of two cores' peak (interleaved
  // runs, this VM), and no shape got slower.
  job.split_n = packed_b ? m_tiles < threads * kGemmChunksPerThread
                         : n_tiles >= threads * kGemmChunksPerThread || n_tiles >= m_tiles;
  job.tiles = job.split_n ? n_tiles : m_tiles;
  job.chunks = std::min(job.tiles, threads * kGemmChunksPerThread);
  // With B packed ahead, splitting the rows of C needs nothing packed here.
  if (!(packed_b && !job.split_n)) {
    static thread_local SharedPack shared;
    const int64_t shared_size = job.split_n ? job.isa->packed_a_size(g) : job.isa->packed_b_size(g);
    job.shared = shared_size <= kMaxSharedPackFloats ? shared.get(shared_size) : nullptr;
    if (job.shared) {
      job.pack_chunks = shared_size <= kSoloPackFloats ? 1 : std::min(threads, job.split_n ? m_tiles : n_tiles);
      s.pool.run(job.pack_chunks, run_pack_chunk, &job);
    }
  }
  s.pool.run(job.chunks, run_gemm_chunk, &job);
}

// C = A · Bᵀ with B [n, k] in bf16. A few rows stream the 16-bit weights
// straight into the product (half the bytes of f32: decode's limit); more rows
// run the f32 GEMM, whose packs widen B block by block.
void run_gemm_bf16(const float* a, const uint16_t* b, float* c, int64_t m, int64_t n, int64_t k) {
  State& s = state();
  if (m <= kGemvMaxRows) {
    const IsaKernels* isa = s.active;
    split_gemv(GemvWeight{reinterpret_cast<const char*>(b), n * k * 2, n, k * 2},
               [&](int64_t n0, int64_t n1) { isa->gemv_bf16(a, b, c, m, n, k, n0, n1); });
    return;
  }
  Gemm g{a, nullptr, c, m, n, k, true};
  g.b16 = b;
  run_gemm(g);
}

// C = A · (s ⊙ Q)ᵀ with int8 weights Q [n, k] and per-row scales s [n]:
// streamed for a few rows; for more, the f32 GEMM dequantizes Q as it packs.
void run_gemm_int8(const float* a, const int8_t* q, const float* scales, float* c, int64_t m, int64_t n, int64_t k) {
  State& s = state();
  if (m <= kGemvMaxRows) {
    const IsaKernels* isa = s.active;
    split_gemv(GemvWeight{reinterpret_cast<const char*>(q), n * k, n, k},
               [&](int64_t n0, int64_t n1) { isa->gemv_int8(a, q, scales, c, m, n, k, n0, n1); });
    return;
  }
  Gemm g{a, nullptr, c, m, n, k, true};
  g.b8 = q;
  g.b8_scales = scales;
  run_gemm(g);
}

// Activations quantized per row for the int8 dot products: scale_i =
// max_p |a_ip| / 127 and a_ip / scale_i rounded to the nearest integer (ties to
// even), stored plus 128 as an unsigned byte. src/kernels/int8.ts mirrors this
// rounding exactly. A zero row keeps scale 0.
void quantize_rows(const float* a, int64_t m, int64_t k, uint8_t* out, float* scales) {
  for (int64_t i = 0; i < m; ++i) {
    const float* row = a + i * k;
    float largest = 0.0f;
    for (int64_t p = 0; p < k; ++p) largest = std::max(largest, std::fabs(row[p]));
    const float scale = largest / 127.0f;
    scales[i] = scale;
    for (int64_t p = 0; p < k; ++p) {
      // Adding and subtracting 1.5 · 2^23 rounds |x| < 2^22 to an integer,
      // ties to even, in f32 itself: nearbyint without a libm call per value.
      const float level = scale > 0.0f ? (row[p] / scale + 12582912.0f) - 12582912.0f : 0.0f;
      out[i * k + p] = static_cast<uint8_t>(static_cast<int32_t>(std::min(127.0f, std::max(-127.0f, level))) + 128);
    }
  }
}

// C = (sa ⊙ A8) · (s ⊙ Q)ᵀ with A quantized per row to int8. Decode (a few
// rows) streams Q once, as the f32 GEMV; more rows are compute-bound and split
// the weight rows between the pool's threads.
void run_gemm_int8_q(const float* a, const int8_t* q, const float* scales, float* c, int64_t m, int64_t n,
                     int64_t k) {
  State& s = state();
  static thread_local std::vector<uint8_t> quantized;
  static thread_local std::vector<float> row_scales;
  quantized.resize(static_cast<size_t>(m * k));
  row_scales.resize(static_cast<size_t>(m));
  quantize_rows(a, m, k, quantized.data(), row_scales.data());
  // Pointers, not the thread_local vectors: in the lambda those would name
  // each worker's own (empty) copy.
  const uint8_t* a8 = quantized.data();
  const float* a_scales = row_scales.data();
  const IsaKernels& isa = *s.active;
  const auto product = [&](int64_t n0, int64_t n1) { isa.gemm_int8_q(a8, a_scales, q, scales, c, m, n, k, n0, n1); };
  if (m <= kGemvMaxRows) {
    split_gemv(GemvWeight{reinterpret_cast<const char*>(q), n * k, n, k}, product);
    return;
  }
  split_columns(n, m * n * k < kParallelMinMacs ? 1 : s.pool.threads(), 1, kGemmChunksPerThread, product);
}

// f32 to bf16 bits, rounded to nearest even (NaN stays a quiet NaN), as
// f32ToBf16 in src/tensor/dtype.ts.
inline uint16_t round_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x7fffffu) != 0) return static_cast<uint16_t>((bits >> 16) | 0x40);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

// C = bf16(A) · Bᵀ: A rounded to bf16 once, then bf16 products summed in f32
// (vdpbf16ps where the CPU has it), the weight rows split between threads.
void run_gemm_bf16_rounded(const float* a, const uint16_t* b, float* c, int64_t m, int64_t n, int64_t k) {
  State& s = state();
  // Rows k rounded up to even apart, the pad zero (see IsaKernels::gemm_bf16_rounded).
  const int64_t kp = k + (k & 1);
  static thread_local std::vector<uint16_t> rounded;
  rounded.resize(static_cast<size_t>(m * kp));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t p = 0; p < k; ++p) rounded[i * kp + p] = round_to_bf16(a[i * k + p]);
    if (kp != k) rounded[i * kp + k] = 0;
  }
  const int64_t threads = m * n * k < kParallelMinMacs ? 1 : s.pool.threads();
  const uint16_t* a16 = rounded.data();  // not the thread_local itself (see run_gemm_int8_q)
  const IsaKernels& isa = *s.active;
  split_columns(n, threads, 1, kGemmChunksPerThread,
                [&](int64_t n0, int64_t n1) { isa.gemm_bf16_rounded(a16, b, c, m, n, k, n0, n1); });
}

napi_value Gemm_(napi_env env, napi_callback_info info) {
  constexpr const char* fn = "gemm";
  napi_value argv[10];
  if (!get_args(env, info, 10, argv,
                "gemm: expected (a, aOffset, b, bOffset, c, cOffset, m, n, k, transB)")) {
    return nullptr;
  }
  float *a, *b, *c;
  int64_t a_len, b_len, c_len, a_off, b_off, c_off, m, n, k;
  bool trans_b = false;
  if (!get_float32_array(env, argv[0], fn, "a", &a, &a_len) || !get_count(env, argv[1], fn, "aOffset", &a_off) ||
      !get_float32_array(env, argv[2], fn, "b", &b, &b_len) || !get_count(env, argv[3], fn, "bOffset", &b_off) ||
      !get_float32_array(env, argv[4], fn, "c", &c, &c_len) || !get_count(env, argv[5], fn, "cOffset", &c_off) ||
      !get_count(env, argv[6], fn, "m", &m) || !get_count(env, argv[7], fn, "n", &n) || !get_count(env, argv[8], fn, "k", &k) ||
      !get_bool(env, argv[9], fn, "transB", &trans_b)) {
    return nullptr;
  }
  if (!check_extent(env, fn, "a", a_len, a_off, m, k) ||
      !check_extent(env, fn, "b", b_len, b_off, trans_b ? n : k, trans_b ? k : n) ||
      !check_extent(env, fn, "c", c_len, c_off, m, n)) {
    return nullptr;
  }
  if (m == 0 || n == 0) return undefined(env);
  run_gemm(Gemm{a + a_off, b + b_off, c + c_off, m, n, k, trans_b});
  return undefined(env);
}

// gemmBf16 and gemmBf16Rounded take the same arguments; `rounded` picks the product.
napi_value gemm_bf16_entry(napi_env env, napi_callback_info info, const char* fn, bool rounded) {
  napi_value argv[9];
  const std::string usage = std::string(fn) + ": expected (a, aOffset, b, bOffset, c, cOffset, m, n, k)";
  if (!get_args(env, info, 9, argv, usage.c_str())) return nullptr;
  float *a, *c;
  uint16_t* b;
  int64_t a_len, b_len, c_len, a_off, b_off, c_off, m, n, k;
  if (!get_float32_array(env, argv[0], fn, "a", &a, &a_len) || !get_count(env, argv[1], fn, "aOffset", &a_off) ||
      !get_typed_array(env, argv[2], fn, "b", napi_uint16_array, "a Uint16Array of bf16 bits", &b, &b_len) ||
      !get_count(env, argv[3], fn, "bOffset", &b_off) || !get_float32_array(env, argv[4], fn, "c", &c, &c_len) ||
      !get_count(env, argv[5], fn, "cOffset", &c_off) || !get_count(env, argv[6], fn, "m", &m) ||
      !get_count(env, argv[7], fn, "n", &n) || !get_count(env, argv[8], fn, "k", &k)) {
    return nullptr;
  }
  if (!check_extent(env, fn, "a", a_len, a_off, m, k) || !check_extent(env, fn, "b", b_len, b_off, n, k) ||
      !check_extent(env, fn, "c", c_len, c_off, m, n)) {
    return nullptr;
  }
  if (m == 0 || n == 0) return undefined(env);
  if (k == 0) {
    std::fill(c + c_off, c + c_off + m * n, 0.0f);
    return undefined(env);
  }
  if (rounded) {
    run_gemm_bf16_rounded(a + a_off, b + b_off, c + c_off, m, n, k);
  } else {
    run_gemm_bf16(a + a_off, b + b_off, c + c_off, m, n, k);
  }
  return undefined(env);
}

napi_value GemmBf16(napi_env env, napi_callback_info info) { return gemm_bf16_entry(env, info, "gemmBf16", false); }

napi_value GemmBf16Rounded(napi_env env, napi_callback_info info) {
  return gemm_bf16_entry(env, info, "gemmBf16Rounded", true);
}

// gemmInt8 and gemmInt8Quantized take the same arguments; `quantized` picks the
// product (A in f32, or A quantized per row for the int32 dot products).
napi_value gemm_int8_entry(napi_env env, napi_callback_info info, const char* fn, bool quantized) {
  napi_value argv[10];
  const std::string usage = std::string(fn) + ": expected (a, aOffset, q, qOffset, scales, c, cOffset, m, n, k)";
  if (!get_args(env, info, 10, argv, usage.c_str())) return nullptr;
  float *a, *scales, *c;
  int8_t* q;
  int64_t a_len, q_len, s_len, c_len, a_off, q_off, c_off, m, n, k;
  if (!get_float32_array(env, argv[0], fn, "a", &a, &a_len) || !get_count(env, argv[1], fn, "aOffset", &a_off) ||
      !get_typed_array(env, argv[2], fn, "q", napi_int8_array, "an Int8Array", &q, &q_len) ||
      !get_count(env, argv[3], fn, "qOffset", &q_off) || !get_float32_array(env, argv[4], fn, "scales", &scales, &s_len) ||
      !get_float32_array(env, argv[5], fn, "c", &c, &c_len) || !get_count(env, argv[6], fn, "cOffset", &c_off) ||
      !get_count(env, argv[7], fn, "m", &m) || !get_count(env, argv[8], fn, "n", &n) || !get_count(env, argv[9], fn, "k", &k)) {
    return nullptr;
  }
  if (!check_extent(env, fn, "a", a_len, a_off, m, k) || !check_extent(env, fn, "q", q_len, q_off, n, k) ||
      !check_extent(env, fn, "scales", s_len, 0, n, 1) || !check_extent(env, fn, "c", c_len, c_off, m, n)) {
    return nullptr;
  }
  if (quantized && k > kInt8MaxK) {
    napi_throw_range_error(env, nullptr,
                           (std::string(fn) + ": k must be at most " + std::to_string(kInt8MaxK) +
                            " (int32 dot products), got " + std::to_string(k)).c_str());
    return nullptr;
  }
  if (m == 0 || n == 0) return undefined(env);
  if (k == 0) {
    std::fill(c + c_off, c + c_off + m * n, 0.0f);
    return undefined(env);
  }
  if (quantized) {
    run_gemm_int8_q(a + a_off, q + q_off, scales, c + c_off, m, n, k);
  } else {
    run_gemm_int8(a + a_off, q + q_off, scales, c + c_off, m, n, k);
  }
  return undefined(env);
}

napi_value GemmInt8(napi_env env, napi_callback_info info) { return gemm_int8_entry(env, info, "gemmInt8", false); }

napi_value GemmInt8Quantized(napi_env env, napi_callback_info info) {
  return gemm_int8_entry(env, info, "gemmInt8Quantized", true);
}

// A weight packed ahead of its products (prepack): a header, then at byte 64
// the panels pack_b_cols lays out for the variant that packed it. `self` is
// the buffer's own address: a copy (ArrayBuffer.prototype.slice) keeps the
// magic but moves, and may be shorter or lose the 64-byte alignment the
// kernels' aligned loads need, so only the buffer prepack returned is used.
struct PackedHeader {
  uint64_t magic;
  const void* self;
  const IsaKernels* isa;
  int64_t n;
  int64_t k;
  bool trans_b;
};
constexpr uint64_t kPackedMagic = 0x676c617373504b31;  // "glassPK1"
constexpr size_t kPackedDataOffset = 64;
static_assert(sizeof(PackedHeader) <= kPackedDataOffset, "header fits before the panels");

struct PackBJob {
  const Gemm* g;
  const IsaKernels* isa;
  float* dst;
  int64_t chunks;
};

void run_prepack_chunk(const void* context, int64_t chunk) {
  const PackBJob& job = *static_cast<const PackBJob*>(context);
  const int64_t panels = (job.g->n + job.isa->nr - 1) / job.isa->nr;
  job.isa->pack_b_cols(*job.g, panels * chunk / job.chunks * job.isa->nr,
                       std::min(job.g->n, panels * (chunk + 1) / job.chunks * job.isa->nr), job.dst);
}

// prepack(b, bOffset, n, k, transB) -> ArrayBuffer: op(B) [k, n] packed into the
// active variant's panels once, for gemmPacked to multiply by without packing.
napi_value Prepack(napi_env env, napi_callback_info info) {
  constexpr const char* fn = "prepack";
  napi_value argv[5];
  if (!get_args(env, info, 5, argv, "prepack: expected (b, bOffset, n, k, transB)")) return nullptr;
  float* b;
  int64_t b_len, b_off, n, k;
  bool trans_b = false;
  if (!get_float32_array(env, argv[0], fn, "b", &b, &b_len) || !get_count(env, argv[1], fn, "bOffset", &b_off) ||
      !get_count(env, argv[2], fn, "n", &n) || !get_count(env, argv[3], fn, "k", &k) ||
      !get_bool(env, argv[4], fn, "transB", &trans_b)) {
    return nullptr;
  }
  if (!check_extent(env, fn, "b", b_len, b_off, trans_b ? n : k, trans_b ? k : n)) return nullptr;
  const IsaKernels& isa = *state().active;
  const Gemm g{nullptr, b + b_off, nullptr, 0, n, k, trans_b};
  const size_t bytes = kPackedDataOffset + static_cast<size_t>(isa.packed_b_size(g)) * 4;
  void* memory = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!memory) {
    napi_throw_error(env, nullptr, "prepack: out of memory for the packed weight");
    return nullptr;
  }
  new (memory) PackedHeader{kPackedMagic, memory, &isa, n, k, trans_b};
  PackBJob job{&g, &isa, reinterpret_cast<float*>(static_cast<char*>(memory) + kPackedDataOffset), 0};
  const int64_t panels = (n + isa.nr - 1) / isa.nr;
  job.chunks = std::min<int64_t>(panels, n * k < kParallelMinMacs ? 1 : state().pool.threads());
  if (job.chunks > 0 && k > 0) state().pool.run(job.chunks, run_prepack_chunk, &job);
  // V8 is told the size, so a pack whose weight is gone is collected as
  // promptly as an equally large typed array would be.
  const auto release = [](napi_env finalizing, void* data, void* hint) {
    int64_t adjusted = 0;
    napi_adjust_external_memory(finalizing, -static_cast<int64_t>(reinterpret_cast<uintptr_t>(hint)), &adjusted);
    std::free(data);
  };
  napi_value out;
  if (!check(env, napi_create_external_arraybuffer(env, memory, bytes, release,
                                                   reinterpret_cast<void*>(static_cast<uintptr_t>(bytes)), &out))) {
    std::free(memory);
    return nullptr;
  }
  int64_t adjusted = 0;
  napi_adjust_external_memory(env, static_cast<int64_t>(bytes), &adjusted);
  return out;
}

// gemmPacked(a, aOffset, packed, c, cOffset, m, n, k): C = A · op(B) for a B
// that prepack packed with the variant now active and this n, k.
napi_value GemmPacked(napi_env env, napi_callback_info info) {
  constexpr const char* fn = "gemmPacked";
  napi_value argv[8];
  if (!get_args(env, info, 8, argv, "gemmPacked: expected (a, aOffset, packed, c, cOffset, m, n, k)")) return nullptr;
  float *a, *c;
  int64_t a_len, c_len, a_off, c_off, m, n, k;
  if (!get_float32_array(env, argv[0], fn, "a", &a, &a_len) || !get_count(env, argv[1], fn, "aOffset", &a_off) ||
      !get_float32_array(env, argv[3], fn, "c", &c, &c_len) || !get_count(env, argv[4], fn, "cOffset", &c_off) ||
      !get_count(env, argv[5], fn, "m", &m) || !get_count(env, argv[6], fn, "n", &n) || !get_count(env, argv[7], fn, "k", &k)) {
    return nullptr;
  }
  bool is_buffer = false;
  void* data = nullptr;
  size_t bytes = 0;
  if (!check(env, napi_is_arraybuffer(env, argv[2], &is_buffer))) return nullptr;
  if (is_buffer && !check(env, napi_get_arraybuffer_info(env, argv[2], &data, &bytes))) return nullptr;
  const auto* header = static_cast<const PackedHeader*>(data);
  if (!is_buffer || bytes < kPackedDataOffset || header->magic != kPackedMagic || header->self != data) {
    napi_throw_type_error(env, nullptr, "gemmPacked: packed must be an ArrayBuffer returned by prepack");
    return nullptr;
  }
  if (header->isa != state().active || header->n != n || header->k != k) {
    napi_throw_range_error(env, nullptr,
                           ("gemmPacked: packed holds a " + std::to_string(header->k) + "x" +
                            std::to_string(header->n) + " weight for " + header->isa->name + ", asked for " +
                            std::to_string(k) + "x" + std::to_string(n) + " on " + state().active->name +
                            " (prepack it again)").c_str());
    return nullptr;
  }
  if (!check_extent(env, fn, "a", a_len, a_off, m, k) || !check_extent(env, fn, "c", c_len, c_off, m, n)) return nullptr;
  if (m == 0 || n == 0) return undefined(env);
  const float* panels = reinterpret_cast<const float*>(static_cast<const char*>(data) + kPackedDataOffset);
  run_gemm(Gemm{a + a_off, nullptr, c + c_off, m, n, k, header->trans_b}, panels);
  return undefined(env);
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (!check(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr))) return nullptr;
  int64_t threads = 0;
  if (argc < 1 || !get_count(env, argv[0], "setThreads", "threads", &threads)) return nullptr;
  if (threads < 1 || threads > 256) {
    napi_throw_range_error(env, nullptr, "setThreads: threads must be between 1 and 256");
    return nullptr;
  }
  state().pool.set_threads(static_cast<int>(threads));
  return number(env, state().pool.threads());
}

napi_value Threads(napi_env env, napi_callback_info) { return number(env, state().pool.threads()); }

napi_value Isa(napi_env env, napi_callback_info) { return string(env, state().active->name); }

napi_value SupportedIsas(napi_env env, napi_callback_info) {
  napi_value out;
  napi_create_array(env, &out);
  const auto& isas = state().isas;
  for (size_t i = 0; i < isas.size(); ++i) napi_set_element(env, out, static_cast<uint32_t>(i), string(env, isas[i]->name));
  return out;
}

napi_value SetIsa(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (!check(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr))) return nullptr;
  char name[32] = {0};
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, nullptr, "setIsa: expected an instruction-set name");
    return nullptr;
  }
  for (const IsaKernels* isa : state().isas) {
    if (std::string(isa->name) == name) {
      state().active = isa;
      return string(env, isa->name);
    }
  }
  napi_throw_range_error(env, nullptr, (std::string("setIsa: this CPU does not support '") + name + "'").c_str());
  return nullptr;
}

// One pass over a buffer, cut into contiguous pieces the threads take in turn.
struct StreamJob {
  const float* data;
  int64_t count;
  int64_t chunks;
  bool prefetch;
  double sums[kStreamChunks];
};

void run_stream_chunk(const void* context, int64_t chunk) {
  auto& job = *const_cast<StreamJob*>(static_cast<const StreamJob*>(context));
  const int64_t first = job.count * chunk / job.chunks / 16 * 16;
  const int64_t last = chunk + 1 == job.chunks ? job.count : job.count * (chunk + 1) / job.chunks / 16 * 16;
  job.sums[chunk] = state().active->stream_read(job.data + first, last - first, job.prefetch);
}

// streamRead(buffer, threads, prefetch): the read bandwidth, GB/s, of one
// timed pass over `buffer` on up to `threads` threads of the pool. The caller
// passes a buffer larger than the last-level cache to measure memory.
napi_value StreamRead(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv, "streamRead: expected (buffer, threads, prefetch)")) return nullptr;
  float* data;
  int64_t count, threads;
  bool prefetch = false;
  if (!get_typed_array(env, argv[0], "streamRead", "buffer", napi_float32_array, "a Float32Array", &data, &count) ||
      !get_count(env, argv[1], "streamRead", "threads", &threads) ||
      !get_bool(env, argv[2], "streamRead", "prefetch", &prefetch)) {
    return nullptr;
  }
  if (threads < 1) {
    napi_throw_range_error(env, nullptr, "streamRead: threads must be at least 1");
    return nullptr;
  }
  StreamJob job{data, count, threads == 1 ? 1 : kStreamChunks, prefetch, {}};
  const auto start = std::chrono::steady_clock::now();
  state().pool.run(job.chunks, run_stream_chunk, &job, static_cast<int>(std::min<int64_t>(threads, 256)));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  volatile double sink = 0;
  for (int64_t c = 0; c < job.chunks; ++c) sink = sink + job.sums[c];
  return number(env, seconds > 0 ? static_cast<double>(count) * 4 / seconds / 1e9 : 0);
}

// setDecodePrefetch(bytes) -> the previous value: how much of the next
// decode product's weight the idle helper prefetches between products (0:
// none), to measure it against not prefetching.
napi_value SetDecodePrefetch(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "setDecodePrefetch: expected (bytes)")) return nullptr;
  int64_t bytes = 0;
  if (!get_count(env, argv[0], "setDecodePrefetch", "bytes", &bytes)) return nullptr;
  if (bytes > kMaxDecodePrefetchBytes) {
    napi_throw_range_error(env, nullptr,
                           ("setDecodePrefetch: bytes must be at most " + std::to_string(kMaxDecodePrefetchBytes) +
                            " (the last-level cache), got " + std::to_string(bytes))
                               .c_str());
    return nullptr;
  }
  if (bytes == 0) state().pool.cancel_prefetch();
  return number(env, static_cast<double>(decode_prefetch_bytes.exchange(bytes)));
}

napi_value FmaPeak(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (!check(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr))) return nullptr;
  double seconds = 0.2;
  if (argc >= 1 && !get_number(env, argv[0], "fmaPeak", "seconds", &seconds)) return nullptr;
  // Clamped so a typo cannot hold the JavaScript thread; NaN takes the shortest.
  seconds = seconds >= 0.01 ? std::min(seconds, 10.0) : 0.01;
  return number(env, state().active->fma_peak(seconds));
}

}  // namespace
}  // namespace glassformer

NAPI_MODULE_INIT() {
  using namespace glassformer;
  define_functions(env, exports,
                   {{"gemm", Gemm_},
                    {"gemmBf16", GemmBf16},
                    {"gemmBf16Rounded", GemmBf16Rounded},
                    {"gemmInt8", GemmInt8},
                    {"prepack", Prepack},
                    {"gemmPacked", GemmPacked},
                    {"gemmInt8Quantized", GemmInt8Quantized},
                    {"setThreads", SetThreads},
                    {"threads", Threads},
                    {"isa", Isa},
                    {"supportedIsas", SupportedIsas},
                    {"setIsa", SetIsa},
                    {"fmaPeak", FmaPeak},
                    {"streamRead", StreamRead},
                    {"setDecodePrefetch", SetDecodePrefetch}});
  register_ops(env, exports);
  register_elementwise(env, exports);
  return exports;
}
