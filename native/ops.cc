// Fused inference ops outside the matrix products (see docs/performance.md):
//
//   attend(q, k, v, mask, maskStrides, scale, pattern, z, batch, heads, queries, keys, dim)
//                              fused attention for a few query rows (decoding)
#include <node_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "napi_util.h"
#include "runtime.h"

namespace glassformer {
namespace {

// Attention for a few query rows (decoding): for each batch row, head and
// query, the scores q·k·scale + mask, a stable softmax and the weighted sum of
// the values in one pass over that head's keys and values, which stay in cache
// between the two sweeps. mask_strides give the mask's broadcast layout (0 on
// an axis it repeats); a null mask adds nothing. Shapes: q, z [B, H, Q, D];
// k, v [B, H, K, D]; pattern [B, H, Q, K].
void attend_rows(const float* q, const float* k, const float* v, const float* mask, const int64_t* mask_strides,
                 float scale, float* pattern, float* z, int64_t batch, int64_t heads, int64_t queries, int64_t keys,
                 int64_t dim) {
  static thread_local std::vector<float> row;
  row.resize(static_cast<size_t>(keys));
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t h = 0; h < heads; ++h) {
      const float* kh = k + (b * heads + h) * keys * dim;
      const float* vh = v + (b * heads + h) * keys * dim;
      for (int64_t i = 0; i < queries; ++i) {
        const float* qi = q + ((b * heads + h) * queries + i) * dim;
        float* zi = z + ((b * heads + h) * queries + i) * dim;
        float* pi = pattern + ((b * heads + h) * queries + i) * keys;
        float max = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < keys; ++j) {
          // Eight partial sums, so the compiler vectorizes the dot product.
          float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
          int64_t d = 0;
          for (; d + 8 <= dim; d += 8) {
            for (int64_t t = 0; t < 8; ++t) part[t] += qi[d + t] * kh[j * dim + d + t];
          }
          float dot = 0;
          for (; d < dim; ++d) dot += qi[d] * kh[j * dim + d];
          for (float x : part) dot += x;
          float score = dot * scale;
          if (mask) score += mask[b * mask_strides[0] + h * mask_strides[1] + i * mask_strides[2] + j * mask_strides[3]];
          row[j] = score;
          max = std::max(max, score);
        }
        std::fill(zi, zi + dim, 0.0f);
        if (max == -std::numeric_limits<float>::infinity()) {
          // Every key masked out: the row attends to nothing, as softmax() leaves it.
          std::fill(pi, pi + keys, 0.0f);
          continue;
        }
        double total = 0;
        for (int64_t j = 0; j < keys; ++j) {
          row[j] = std::exp(row[j] - max);
          total += row[j];
        }
        const double inv = 1 / total;
        for (int64_t j = 0; j < keys; ++j) {
          const float p = static_cast<float>(row[j] * inv);
          pi[j] = p;
          for (int64_t d = 0; d < dim; ++d) zi[d] += p * vh[j * dim + d];
        }
      }
    }
  }
}

// attend(q, k, v, mask | null, maskStrides[4], scale, pattern, z, batch, heads, queries, keys, dim)
napi_value Attend(napi_env env, napi_callback_info info) {
  napi_value argv[13];
  if (!get_args(env, info, 13, argv,
                "attend: expected (q, k, v, mask, maskStrides, scale, pattern, z, batch, heads, queries, keys, dim)")) {
    return nullptr;
  }
  float *q, *k, *v, *pattern, *z, *mask = nullptr, *strides_f = nullptr;
  int64_t q_len, k_len, v_len, p_len, z_len, m_len = 0, s_len, batch, heads, queries, keys, dim;
  napi_valuetype mask_type = napi_undefined;
  napi_typeof(env, argv[3], &mask_type);
  double scale = 1;
  if (!get_float32_array(env, argv[0], "q", &q, &q_len) || !get_float32_array(env, argv[1], "k", &k, &k_len) ||
      !get_float32_array(env, argv[2], "v", &v, &v_len) ||
      (mask_type != napi_null && !get_float32_array(env, argv[3], "mask", &mask, &m_len)) ||
      !get_float32_array(env, argv[4], "maskStrides", &strides_f, &s_len) ||
      napi_get_value_double(env, argv[5], &scale) != napi_ok ||
      !get_float32_array(env, argv[6], "pattern", &pattern, &p_len) ||
      !get_float32_array(env, argv[7], "z", &z, &z_len) || !get_count(env, argv[8], "batch", &batch) ||
      !get_count(env, argv[9], "heads", &heads) || !get_count(env, argv[10], "queries", &queries) ||
      !get_count(env, argv[11], "keys", &keys) || !get_count(env, argv[12], "dim", &dim)) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_type_error(env, nullptr, "attend: scale must be a number");
    return nullptr;
  }
  const int64_t rows = batch * heads;
  if (s_len < 4 || !check_extent(env, "q", q_len, 0, rows * queries, dim) ||
      !check_extent(env, "k", k_len, 0, rows * keys, dim) || !check_extent(env, "v", v_len, 0, rows * keys, dim) ||
      !check_extent(env, "pattern", p_len, 0, rows * queries, keys) ||
      !check_extent(env, "z", z_len, 0, rows * queries, dim)) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_range_error(env, nullptr, "attend: maskStrides needs 4 entries");
    return nullptr;
  }
  int64_t strides[4];
  for (int t = 0; t < 4; ++t) strides[t] = static_cast<int64_t>(strides_f[t]);
  if (mask && batch > 0 && heads > 0 && queries > 0 && keys > 0) {
    const int64_t last = (batch - 1) * strides[0] + (heads - 1) * strides[1] + (queries - 1) * strides[2] +
                         (keys - 1) * strides[3];
    if (last >= m_len) {
      napi_throw_range_error(env, nullptr, "attend: the mask's strides reach past its end");
      return nullptr;
    }
  }
  attend_rows(q, k, v, mask, strides, static_cast<float>(scale), pattern, z, batch, heads, queries, keys, dim);
  return undefined(env);
}

}  // namespace

void register_ops(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"attend", nullptr, Attend, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}

}  // namespace glassformer
