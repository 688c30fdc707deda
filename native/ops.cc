// Fused inference ops outside the matrix products (see docs/performance.md):
//
//   attention(q, k, v, z, pattern | null, mask | null, bias | null, strides[20], scale,
//             batch, heads, kvHeads, queries, keys, dim)
//                              fused attention for any number of queries: decode steps
//                              against a KV cache read in place, and whole prompts
#include <node_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "napi_util.h"
#include "runtime.h"

#if defined(__GNUC__)
#define GF_INLINE inline __attribute__((always_inline))
#else
#define GF_INLINE inline
#endif

namespace glassformer {
namespace {

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

// One attention call. q, z [batch, heads, queries, dim] and k, v [batch,
// kvHeads, keys, dim], each row of dim floats contiguous and the three outer
// axes at the given element strides: a KV cache written in place has rows
// `capacity` apart per head, and q, k, v can be read straight from a fused
// q|k|v projection [batch, seq, 3·heads·dim] and z written as merged heads
// [batch, seq, heads·dim], with no copy to split or merge them. pattern
// [batch, heads, queries, keys] (contiguous) or null. mask and bias are
// additive terms broadcast through their four strides (0 on an axis they
// repeat), or null. Query head h reads KV head h / (heads / kvHeads)
// (grouped-query attention, Ainslie et al. 2023).
struct Attention {
  const float* q;
  const float* k;
  const float* v;
  const float* mask;
  const float* bias;
  int64_t q_strides[3];  // batch, head, query
  int64_t k_strides[3];  // batch, KV head, key
  int64_t v_strides[3];
  int64_t z_strides[3];
  int64_t mask_strides[4];
  int64_t bias_strides[4];
  float scale;
  float* pattern;
  float* z;
  int64_t batch, heads, kv_heads, queries, keys, dim;
  int64_t query_block;   // queries per task
  int64_t query_blocks;  // tasks per (batch row, head)
  void (*task)(const Attention&, int64_t);
};

// Keys per tile: the tile's keys and values (2 × 128 × dim floats) and its
// scores stay in L1/L2 while every query of the block uses them.
constexpr int64_t kKeyBlock = 128;
// Queries per task: enough to reuse each key tile, small enough that a prompt
// still splits into many tasks for the pool.
constexpr int64_t kQueryBlock = 64;

// Per-thread scratch, grown once and kept, so steady-state calls never allocate.
struct Scratch {
  std::vector<float> scores;  // [query block, kKeyBlock]
  std::vector<float> keys_t;  // the key tile transposed, [dim, kKeyBlock]
  std::vector<float> acc;     // [query block, dim]: unnormalised weighted sum of values
  std::vector<float> max;     // running max of each query's scores
  std::vector<double> sum;    // running Σ exp(score − max)
};

Scratch& scratch(int64_t rows, int64_t dim) {
  static thread_local Scratch s;
  s.scores.resize(static_cast<size_t>(rows * kKeyBlock));
  s.keys_t.resize(static_cast<size_t>(dim * kKeyBlock));
  s.acc.resize(static_cast<size_t>(rows * dim));
  s.max.resize(static_cast<size_t>(rows));
  s.sum.resize(static_cast<size_t>(rows));
  return s;
}

// W partial sums, so the compiler keeps one vector register of them per step.
template <int W>
GF_INLINE float dot(const float* a, const float* b, int64_t n) {
  float part[W] = {};
  int64_t d = 0;
  for (; d + W <= n; d += W) {
    for (int t = 0; t < W; ++t) part[t] += a[d + t] * b[d + t];
  }
  // Halve the partial sums pairwise (log2 W vector adds) rather than adding
  // them one by one into a scalar: a chain of W dependent adds per key.
#pragma GCC unroll 8
  for (int w = W / 2; w >= 1; w /= 2) {
#pragma GCC unroll 8
    for (int t = 0; t < w; ++t) part[t] += part[t + w];
  }
  float total = part[0];
  for (; d < n; ++d) total += a[d] * b[d];
  return total;
}

template <int W>
GF_INLINE float sum(const float* x, int64_t n) {
  float part[W] = {};
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    for (int t = 0; t < W; ++t) part[t] += x[i + t];
  }
  float total = 0;
  for (; i < n; ++i) total += x[i];
  for (int t = 0; t < W; ++t) total += part[t];
  return total;
}

GF_INLINE float bits_to_float(int32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

GF_INLINE int32_t float_to_bits(float f) {
  int32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

// e^x for x ≤ 0 (a score minus its row's max), in straight-line arithmetic the
// compiler vectorizes, where a call to expf would not be: x = n·ln 2 + r with
// |r| ≤ ln 2 / 2 (ln 2 split in two constants for an exact product), e^r by
// Cephes' degree-6 polynomial for expf (within 2 ulp), 2^n built in the
// exponent bits. Below −87.3 (2^n would leave the normal range) it returns 0,
// far under any softmax term that matters next to the row's max (e^0 = 1).
GF_INLINE float exp_nonpositive(float x) {
  const bool underflow = !(x >= -87.3f);  // true for −∞ too
  x = underflow ? 0.0f : x;
  const float shifted = x * 1.44269504088896341f + 12582912.0f;  // 1.5·2^23: adding it rounds to an integer
  const float n = shifted - 12582912.0f;
  const int32_t exponent = float_to_bits(shifted) - float_to_bits(12582912.0f);
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  const float r2 = r * r;
  float poly = 1.9875691500e-4f;
  poly = poly * r + 1.3981999507e-3f;
  poly = poly * r + 8.3334519073e-3f;
  poly = poly * r + 4.1665795894e-2f;
  poly = poly * r + 1.6666665459e-1f;
  poly = poly * r + 5.0000001201e-1f;
  const float er = poly * r2 + r + 1.0f;
  const float result = er * bits_to_float((exponent + 127) << 23);
  return underflow ? 0.0f : result;
}

// W floats as one value (GCC/Clang vector extension): a zmm register under the
// AVX-512 target (W = 16), a ymm under AVX2 (8), an xmm in the portable build
// (4). Loads and stores go through memcpy, so no alignment is assumed.
// Lanes' functions are always inlined into the per-ISA tasks below, so the
// vector-return ABI GCC warns about for the baseline target never applies.
#pragma GCC diagnostic ignored "-Wpsabi"
template <int W>
struct Lanes {
  typedef float vec __attribute__((vector_size(4 * W)));
  static GF_INLINE vec load(const float* p) {
    vec v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static GF_INLINE void store(float* p, const vec& v) { std::memcpy(p, &v, sizeof v); }
};

// The W lanes of v added pairwise (log2 W levels, not a chain of W adds).
template <int W>
GF_INLINE float reduce(const typename Lanes<W>::vec& v) {
  float lanes[W];
  std::memcpy(lanes, &v, sizeof lanes);
#pragma GCC unroll 8
  for (int w = W / 2; w >= 1; w /= 2) {
#pragma GCC unroll 8
    for (int t = 0; t < w; ++t) lanes[t] += lanes[t + w];
  }
  return lanes[0];
}

// out[c] = q · k_c · scale for four consecutive key rows k_0…k_3 (`stride`
// floats apart): four independent sums share each load of q and hide the FMA
// latency that a single dot product per key waits on.
template <int W>
GF_INLINE void dot4(const float* q, const float* k, int64_t stride, int64_t dim, float scale, float* out) {
  using L = Lanes<W>;
  typename L::vec a0 = {}, a1 = {}, a2 = {}, a3 = {};
  int64_t d = 0;
  for (; d + W <= dim; d += W) {
    const typename L::vec qv = L::load(q + d);
    a0 += qv * L::load(k + d);
    a1 += qv * L::load(k + stride + d);
    a2 += qv * L::load(k + 2 * stride + d);
    a3 += qv * L::load(k + 3 * stride + d);
  }
  float s0 = reduce<W>(a0), s1 = reduce<W>(a1), s2 = reduce<W>(a2), s3 = reduce<W>(a3);
  for (; d < dim; ++d) {
    s0 += q[d] * k[d];
    s1 += q[d] * k[stride + d];
    s2 += q[d] * k[2 * stride + d];
    s3 += q[d] * k[3 * stride + d];
  }
  out[0] = s0 * scale;
  out[1] = s1 * scale;
  out[2] = s2 * scale;
  out[3] = s3 * scale;
}

// scores[r, t] = q_r · k_t · scale for the rows of a query block against one key
// tile. Few rows (decoding) take one dot product per key; more rows transpose
// the tile once into [dim, kKeyBlock] (zero past the tile's end) so each row's
// scores are sums of broadcast products over contiguous keys, held in eight
// registers for the whole tile: no horizontal sums, no stores until the end.
template <int W>
GF_INLINE void tile_scores(const float* q, int64_t q_stride, const float* k, int64_t k_stride, int64_t rows,
                           int64_t tile, int64_t dim, float scale, float* scores, float* keys_t) {
  if (rows < 4) {
    for (int64_t r = 0; r < rows; ++r) {
      float* sr = scores + r * kKeyBlock;
      int64_t t = 0;
      for (; t + 4 <= tile; t += 4) dot4<W>(q + r * q_stride, k + t * k_stride, k_stride, dim, scale, sr + t);
      for (; t < tile; ++t) sr[t] = dot<W>(q + r * q_stride, k + t * k_stride, dim) * scale;
    }
    return;
  }
  for (int64_t t = 0; t < tile; ++t) {
    for (int64_t d = 0; d < dim; ++d) keys_t[d * kKeyBlock + t] = k[t * k_stride + d];
  }
  if (tile < kKeyBlock) {
    for (int64_t d = 0; d < dim; ++d) std::fill(keys_t + d * kKeyBlock + tile, keys_t + (d + 1) * kKeyBlock, 0.0f);
  }
  using L = Lanes<W>;
  constexpr int kRegs = kKeyBlock / W;
  // Two rows at a time: each load of the transposed keys feeds two FMAs.
  int64_t r = 0;
  for (; r + 2 <= rows; r += 2) {
    const float* q0 = q + r * q_stride;
    const float* q1 = q0 + q_stride;
    typename L::vec s0[kRegs] = {};
    typename L::vec s1[kRegs] = {};
    for (int64_t d = 0; d < dim; ++d) {
      const float a0 = q0[d];
      const float a1 = q1[d];
      const float* kd = keys_t + d * kKeyBlock;
#pragma GCC unroll 32
      for (int u = 0; u < kRegs; ++u) {
        const typename L::vec kv = L::load(kd + u * W);
        s0[u] += a0 * kv;
        s1[u] += a1 * kv;
      }
    }
    float* sr = scores + r * kKeyBlock;
#pragma GCC unroll 32
    for (int u = 0; u < kRegs; ++u) {
      L::store(sr + u * W, s0[u] * scale);
      L::store(sr + kKeyBlock + u * W, s1[u] * scale);
    }
  }
  for (; r < rows; ++r) {
    const float* qr = q + r * q_stride;
    typename L::vec acc[kRegs] = {};
    for (int64_t d = 0; d < dim; ++d) {
      const float qd = qr[d];
      const float* kd = keys_t + d * kKeyBlock;
#pragma GCC unroll 32
      for (int u = 0; u < kRegs; ++u) acc[u] += qd * L::load(kd + u * W);
    }
    float* sr = scores + r * kKeyBlock;
#pragma GCC unroll 32
    for (int u = 0; u < kRegs; ++u) L::store(sr + u * W, acc[u] * scale);
  }
}

// acc += Σ_t p[t] · v_t over one tile: 4·W columns of acc at a time stay in
// four registers across the whole tile (updating acc in memory per key would
// chain every step through a store and a reload).
template <int W>
GF_INLINE void accumulate_values(const float* p, const float* v, int64_t stride, int64_t tile, int64_t dim,
                                 float* acc) {
  using L = Lanes<W>;
  int64_t d = 0;
  for (; d + 4 * W <= dim; d += 4 * W) {
    // Even and odd keys in separate registers: eight independent FMA chains.
    typename L::vec a0 = L::load(acc + d), a1 = L::load(acc + d + W), a2 = L::load(acc + d + 2 * W),
                    a3 = L::load(acc + d + 3 * W);
    typename L::vec b0 = {}, b1 = {}, b2 = {}, b3 = {};
    int64_t t = 0;
    for (; t + 2 <= tile; t += 2) {
      const float* vt = v + t * stride + d;
      const float pt = p[t];
      const float pu = p[t + 1];
      a0 += pt * L::load(vt);
      a1 += pt * L::load(vt + W);
      a2 += pt * L::load(vt + 2 * W);
      a3 += pt * L::load(vt + 3 * W);
      b0 += pu * L::load(vt + stride);
      b1 += pu * L::load(vt + stride + W);
      b2 += pu * L::load(vt + stride + 2 * W);
      b3 += pu * L::load(vt + stride + 3 * W);
    }
    if (t < tile) {
      const float* vt = v + t * stride + d;
      a0 += p[t] * L::load(vt);
      a1 += p[t] * L::load(vt + W);
      a2 += p[t] * L::load(vt + 2 * W);
      a3 += p[t] * L::load(vt + 3 * W);
    }
    L::store(acc + d, a0 + b0);
    L::store(acc + d + W, a1 + b1);
    L::store(acc + d + 2 * W, a2 + b2);
    L::store(acc + d + 3 * W, a3 + b3);
  }
  for (; d + W <= dim; d += W) {
    typename L::vec a0 = L::load(acc + d);
    for (int64_t t = 0; t < tile; ++t) a0 += p[t] * L::load(v + t * stride + d);
    L::store(acc + d, a0);
  }
  for (; d < dim; ++d) {
    float a0 = acc[d];
    for (int64_t t = 0; t < tile; ++t) a0 += p[t] * v[t * stride + d];
    acc[d] = a0;
  }
}

// One task: the queries [i0, i0 + rows) of one (batch row, head) against all
// its keys, tile by tile with the online softmax of FlashAttention (Dao et al.
// 2022, Algorithm 1): a running max and sum per query, the accumulated values
// rescaled whenever the max grows, so the scores are never all held at once.
// With a pattern to return, the raw scores are written to it on the way and
// normalised at the end with the final max and sum.
template <int W>
GF_INLINE void attend_task(const Attention& a, int64_t task) {
  const int64_t bh = task / a.query_blocks;
  const int64_t i0 = (task % a.query_blocks) * a.query_block;
  const int64_t rows = std::min(a.query_block, a.queries - i0);
  const int64_t b = bh / a.heads;
  const int64_t h = bh % a.heads;
  const int64_t kv_head = h / (a.heads / a.kv_heads);
  const int64_t dim = a.dim;
  const float* kh = a.k + b * a.k_strides[0] + kv_head * a.k_strides[1];
  const float* vh = a.v + b * a.v_strides[0] + kv_head * a.v_strides[1];
  const float* qb = a.q + b * a.q_strides[0] + h * a.q_strides[1] + i0 * a.q_strides[2];
  Scratch& s = scratch(rows, dim);
  std::fill(s.acc.begin(), s.acc.begin() + rows * dim, 0.0f);
  std::fill(s.max.begin(), s.max.begin() + rows, kMinusInf);
  std::fill(s.sum.begin(), s.sum.begin() + rows, 0.0);
  for (int64_t j0 = 0; j0 < a.keys; j0 += kKeyBlock) {
    const int64_t tile = std::min(kKeyBlock, a.keys - j0);
    tile_scores<W>(qb, a.q_strides[2], kh + j0 * a.k_strides[2], a.k_strides[2], rows, tile, dim, a.scale,
                   s.scores.data(), s.keys_t.data());
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = i0 + r;
      float* sr = s.scores.data() + r * kKeyBlock;
      // The unfused order: q·k·scale, + position bias, + mask.
      if (a.bias) {
        const float* bias = a.bias + b * a.bias_strides[0] + h * a.bias_strides[1] + i * a.bias_strides[2];
        for (int64_t t = 0; t < tile; ++t) sr[t] += bias[(j0 + t) * a.bias_strides[3]];
      }
      if (a.mask) {
        const float* mask = a.mask + b * a.mask_strides[0] + h * a.mask_strides[1] + i * a.mask_strides[2];
        for (int64_t t = 0; t < tile; ++t) sr[t] += mask[(j0 + t) * a.mask_strides[3]];
      }
      float tile_max = kMinusInf;
      for (int64_t t = 0; t < tile; ++t) tile_max = std::max(tile_max, sr[t]);
      if (a.pattern) std::copy(sr, sr + tile, a.pattern + (bh * a.queries + i) * a.keys + j0);
      if (tile_max == kMinusInf) continue;  // every key of the tile masked out: adds nothing
      float* acc = s.acc.data() + r * dim;
      if (tile_max > s.max[r]) {
        // exp(−∞) = 0 clears the first tile's zeros harmlessly.
        const float rescale = s.max[r] == kMinusInf ? 0.0f : exp_nonpositive(s.max[r] - tile_max);
        s.sum[r] *= rescale;
        for (int64_t d = 0; d < dim; ++d) acc[d] *= rescale;
        s.max[r] = tile_max;
      }
      const float max = s.max[r];
      for (int64_t t = 0; t < tile; ++t) sr[t] = exp_nonpositive(sr[t] - max);
      s.sum[r] += sum<W>(sr, tile);
      accumulate_values<W>(sr, vh + j0 * a.v_strides[2], a.v_strides[2], tile, dim, acc);
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = i0 + r;
    float* zi = a.z + b * a.z_strides[0] + h * a.z_strides[1] + i * a.z_strides[2];
    float* pi = a.pattern ? a.pattern + (bh * a.queries + i) * a.keys : nullptr;
    if (s.max[r] == kMinusInf) {
      // Every key masked out: the row attends to nothing, as softmax() leaves it.
      std::fill(zi, zi + dim, 0.0f);
      if (pi) std::fill(pi, pi + a.keys, 0.0f);
      continue;
    }
    const float inv = static_cast<float>(1 / s.sum[r]);
    const float* acc = s.acc.data() + r * dim;
    for (int64_t d = 0; d < dim; ++d) zi[d] = acc[d] * inv;
    if (pi) {
      const float max = s.max[r];
      for (int64_t j = 0; j < a.keys; ++j) pi[j] = exp_nonpositive(pi[j] - max) * inv;
    }
  }
}

// The same task compiled for each instruction set the addon picks between
// (always_inline puts attend_task's body under each function's target).
#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))) void attend_task_avx512(const Attention& a,
                                                                                               int64_t task) {
  attend_task<16>(a, task);
}
__attribute__((target("avx2,fma"))) void attend_task_avx2(const Attention& a, int64_t task) { attend_task<8>(a, task); }
#endif
void attend_task_portable(const Attention& a, int64_t task) { attend_task<4>(a, task); }

// The variant of the instruction set the matmul uses (setIsa switches both).
void (*task_for_isa())(const Attention&, int64_t) {
#if defined(__x86_64__) || defined(__i386__)
  // Every AVX-512 variant ("avx512", "avx512vnni") starts with the name.
  const char* isa = active_isa().name;
  if (std::strncmp(isa, "avx512", 6) == 0) return attend_task_avx512;
  if (std::strcmp(isa, "avx2") == 0) return attend_task_avx2;
#endif
  return attend_task_portable;
}

void run_attention_task(const void* context, int64_t task) {
  const Attention& a = *static_cast<const Attention*>(context);
  a.task(a, task);
}

// Below this many multiply-adds (q·k and p·v) a call runs on the caller alone
// unless the helpers are awake anyway: a decode step over a few hundred keys
// takes tens of microseconds, about what waking a sleeping worker costs.
constexpr int64_t kThreadedWork = int64_t{1} << 20;

void run_attention(Attention& a) {
  if (a.batch == 0 || a.heads == 0 || a.queries == 0) return;
  a.query_block = std::min(a.queries, kQueryBlock);
  a.query_blocks = (a.queries + a.query_block - 1) / a.query_block;
  a.task = task_for_isa();
  const int64_t tasks = a.batch * a.heads * a.query_blocks;
  const double work =
      2.0 * static_cast<double>(a.batch * a.heads * a.queries) * static_cast<double>(a.keys) * static_cast<double>(a.dim);
  ThreadPool& pool = shared_pool();
  // A short call (a decode step) still splits its heads when the helpers are
  // polling, as they are between a decode step's products: no wake-up to pay,
  // and the step reads its KV cache cold from memory (the weights streamed
  // through the caches since the last step), so two threads' loads in flight
  // shorten a latency-bound wait. GPT-2-small's 12 heads at 35 keys after a
  // 28 MB product, medians of 300 calls: 21 -> 13 us (warm caches: 6.4 -> 4.3).
  if (tasks == 1 || (work < static_cast<double>(kThreadedWork) && !pool.helpers_polling())) {
    for (int64_t t = 0; t < tasks; ++t) a.task(a, t);
    return;
  }
  pool.run(tasks, run_attention_task, &a);
}

// `length >= count` for an array that must hold `count` floats.
bool check_length(napi_env env, const char* fn, const char* name, int64_t length, int64_t count) {
  if (length >= count) return true;
  if (!pending(env)) {
    napi_throw_range_error(env, nullptr,
                           (std::string(fn) + ": " + name + " needs " + std::to_string(count) +
                            " elements but has length " + std::to_string(length))
                               .c_str());
  }
  return false;
}

// The last element an additive term reads through its strides must lie inside it.
bool check_broadcast(napi_env env, const char* fn, const char* name, int64_t length, const int64_t* strides,
                     const Attention& a) {
  const int64_t shape[4] = {a.batch, a.heads, a.queries, a.keys};
  const double last = strided_last(shape, strides);
  if (last < static_cast<double>(length)) return true;
  if (!pending(env)) {
    napi_throw_range_error(env, nullptr,
                           (std::string(fn) + ": the " + name + "'s strides reach element " +
                            std::to_string(static_cast<int64_t>(std::min(last, 9007199254740992.0))) +
                            " but it has length " + std::to_string(length))
                               .c_str());
  }
  return false;
}

bool check_strided(napi_env env, const char* fn, const char* name, int64_t length, const int64_t* strides, int64_t n0,
                   int64_t n1, int64_t n2, int64_t dim) {
  if (n0 == 0 || n1 == 0 || n2 == 0 || dim == 0) return true;
  // Rows of `dim` contiguous floats at the strides of the three outer axes.
  const int64_t shape[4] = {n0, n1, n2, dim};
  const int64_t row_strides[4] = {strides[0], strides[1], strides[2], 1};
  const double end = strided_last(shape, row_strides) + 1;
  if (end <= static_cast<double>(length)) return true;
  if (!pending(env)) {
    napi_throw_range_error(env, nullptr,
                           (std::string(fn) + ": " + name + " needs " +
                            std::to_string(static_cast<int64_t>(std::min(end, 9007199254740992.0))) +
                            " elements for its strides but has length " + std::to_string(length))
                               .c_str());
  }
  return false;
}

// Every extent the kernel reads or writes, for an Attention whose sizes and strides are set.
bool check_attention(napi_env env, const char* fn, const Attention& a, int64_t q_len, int64_t k_len, int64_t v_len,
                     int64_t z_len, int64_t p_len, int64_t m_len, int64_t b_len) {
  if (a.heads > 0 && (a.kv_heads == 0 || a.heads % a.kv_heads != 0)) {
    if (!pending(env)) {
      napi_throw_range_error(env, nullptr,
                             (std::string(fn) + ": heads (" + std::to_string(a.heads) +
                              ") must be a positive multiple of kvHeads (" + std::to_string(a.kv_heads) + ")")
                                 .c_str());
    }
    return false;
  }
  const double total = static_cast<double>(a.batch) * std::max(a.heads, a.kv_heads) * std::max(a.queries, a.keys) *
                       std::max<int64_t>(std::max(a.keys, a.dim), 1);
  if (total > kMaxExactInteger) {
    if (!pending(env)) napi_throw_range_error(env, nullptr, (std::string(fn) + ": sizes overflow").c_str());
    return false;
  }
  if (!check_strided(env, fn, "q", q_len, a.q_strides, a.batch, a.heads, a.queries, a.dim) ||
      !check_strided(env, fn, "z", z_len, a.z_strides, a.batch, a.heads, a.queries, a.dim) ||
      !check_strided(env, fn, "k", k_len, a.k_strides, a.batch, a.kv_heads, a.keys, a.dim) ||
      !check_strided(env, fn, "v", v_len, a.v_strides, a.batch, a.kv_heads, a.keys, a.dim) ||
      (a.pattern && !check_length(env, fn, "pattern", p_len, a.batch * a.heads * a.queries * a.keys))) {
    return false;
  }
  if (a.batch * a.heads * a.queries == 0 || a.keys == 0) return true;
  return (!a.mask || check_broadcast(env, fn, "mask", m_len, a.mask_strides, a)) &&
         (!a.bias || check_broadcast(env, fn, "bias", b_len, a.bias_strides, a));
}

// attention(q, k, v, z, pattern | null, mask | null, bias | null, strides[20], scale,
//           batch, heads, kvHeads, queries, keys, dim)
// strides: q's (batch, head, query), k's (batch, KV head, key), v's, z's, then
// the mask's and the bias's four (batch, head, query, key).
napi_value AttentionCall(napi_env env, napi_callback_info info) {
  constexpr const char* fn = "attention";
  napi_value argv[15];
  if (!get_args(env, info, 15, argv,
                "attention: expected (q, k, v, z, pattern, mask, bias, strides, scale, batch, heads, kvHeads, "
                "queries, keys, dim)")) {
    return nullptr;
  }
  Attention a{};
  float *q, *k, *v, *z, *pattern, *mask, *bias;
  double* strides = nullptr;
  int64_t q_len, k_len, v_len, z_len, p_len, m_len, b_len, s_len;
  double scale = 1;
  if (!get_float32_array(env, argv[0], fn, "q", &q, &q_len) || !get_float32_array(env, argv[1], fn, "k", &k, &k_len) ||
      !get_float32_array(env, argv[2], fn, "v", &v, &v_len) || !get_float32_array(env, argv[3], fn, "z", &z, &z_len) ||
      !get_optional_float32_array(env, argv[4], fn, "pattern", &pattern, &p_len) ||
      !get_optional_float32_array(env, argv[5], fn, "mask", &mask, &m_len) ||
      !get_optional_float32_array(env, argv[6], fn, "bias", &bias, &b_len) ||
      !get_typed_array(env, argv[7], fn, "strides", napi_float64_array, "a Float64Array", &strides, &s_len)) {
    return nullptr;
  }
  if (!get_number(env, argv[8], fn, "scale", &scale) || !get_count(env, argv[9], fn, "batch", &a.batch) ||
      !get_count(env, argv[10], fn, "heads", &a.heads) || !get_count(env, argv[11], fn, "kvHeads", &a.kv_heads) ||
      !get_count(env, argv[12], fn, "queries", &a.queries) || !get_count(env, argv[13], fn, "keys", &a.keys) ||
      !get_count(env, argv[14], fn, "dim", &a.dim)) {
    return nullptr;
  }
  if (s_len < 20) {
    napi_throw_range_error(env, nullptr,
                           "attention: strides needs 20 entries (q's, k's, v's and z's 3, "
                           "the mask's and the bias's 4)");
    return nullptr;
  }
  for (int t = 0; t < 20; ++t) {
    if (!is_count(strides[t])) {
      napi_throw_range_error(
          env, nullptr,
          ("attention: strides[" + std::to_string(t) + "] must be a non-negative integer below 2^53").c_str());
      return nullptr;
    }
  }
  int64_t* targets[] = {a.q_strides, a.k_strides, a.v_strides, a.z_strides};
  for (int t = 0; t < 12; ++t) targets[t / 3][t % 3] = static_cast<int64_t>(strides[t]);
  for (int t = 0; t < 4; ++t) {
    a.mask_strides[t] = static_cast<int64_t>(strides[12 + t]);
    a.bias_strides[t] = static_cast<int64_t>(strides[16 + t]);
  }
  a.q = q;
  a.k = k;
  a.v = v;
  a.z = z;
  a.pattern = pattern;
  a.mask = mask;
  a.bias = bias;
  a.scale = static_cast<float>(scale);
  if (!check_attention(env, fn, a, q_len, k_len, v_len, z_len, p_len, m_len, b_len)) return nullptr;
  run_attention(a);
  return undefined(env);
}

}  // namespace

void register_ops(napi_env env, napi_value exports) {
  define_functions(env, exports, {{"attention", AttentionCall}});
}

}  // namespace glassformer
