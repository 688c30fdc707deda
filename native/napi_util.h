// Argument helpers shared by the N-API entry points (addon.cc, elementwise.cc,
// ops.cc): each throws a JavaScript error naming the function and argument,
// and returns false.
#pragma once

#include <node_api.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace glassformer {

inline bool check(napi_env env, napi_status status) {
  if (status == napi_ok) return true;
  const napi_extended_error_info* info = nullptr;
  napi_get_last_error_info(env, &info);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, nullptr, info && info->error_message ? info->error_message : "N-API call failed");
  return false;
}

// The data of a typed array of the expected element type; `what` names that
// type in the error ("gemm: a must be a Float32Array").
template <class T>
inline bool get_typed_array(napi_env env, napi_value value, const char* fn, const char* name, napi_typedarray_type expected,
                     const char* what, T** data, int64_t* length) {
  bool is_typed = false;
  if (!check(env, napi_is_typedarray(env, value, &is_typed))) return false;
  napi_typedarray_type type = napi_int8_array;
  size_t count = 0;
  void* ptr = nullptr;
  if (is_typed && !check(env, napi_get_typedarray_info(env, value, &type, &count, &ptr, nullptr, nullptr))) {
    return false;
  }
  if (!is_typed || type != expected) {
    napi_throw_type_error(env, nullptr, (std::string(fn) + ": " + name + " must be " + what).c_str());
    return false;
  }
  *data = static_cast<T*>(ptr);
  *length = static_cast<int64_t>(count);
  return true;
}

// True when a JavaScript exception is already pending (a helper threw).
inline bool pending(napi_env env) {
  bool is_pending = false;
  napi_is_exception_pending(env, &is_pending);
  return is_pending;
}

inline bool get_float32_array(napi_env env, napi_value value, const char* fn, const char* name, float** data,
                              int64_t* length) {
  return get_typed_array(env, value, fn, name, napi_float32_array, "a Float32Array", data, length);
}

// A Float32Array or null ("absent": data null, length 0).
inline bool get_optional_float32_array(napi_env env, napi_value value, const char* fn, const char* name, float** data,
                                       int64_t* length) {
  *data = nullptr;
  *length = 0;
  napi_valuetype type = napi_undefined;
  if (!check(env, napi_typeof(env, value, &type))) return false;
  if (type == napi_null) return true;
  return get_typed_array(env, value, fn, name, napi_float32_array, "a Float32Array or null", data, length);
}

// The largest integer a double holds exactly (2^53 − 1): counts and strides
// stay below it, so sums of their products can be checked in doubles.
constexpr double kMaxExactInteger = 9007199254740991.0;

// True for an integer in [0, 2^53): the only doubles that convert to int64_t
// without undefined behaviour or rounding (NaN, ±∞ and 1e300 do not).
inline bool is_count(double d) {
  return d >= 0 && d <= kMaxExactInteger && d == static_cast<double>(static_cast<int64_t>(d));
}

inline bool get_count(napi_env env, napi_value value, const char* fn, const char* name, int64_t* out) {
  double d = 0;
  if (napi_get_value_double(env, value, &d) != napi_ok || !is_count(d)) {
    napi_throw_range_error(env, nullptr, (std::string(fn) + ": " + name + " must be a non-negative integer").c_str());
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

inline bool get_number(napi_env env, napi_value value, const char* fn, const char* name, double* out) {
  if (napi_get_value_double(env, value, out) == napi_ok) return true;
  napi_throw_type_error(env, nullptr, (std::string(fn) + ": " + name + " must be a number").c_str());
  return false;
}

inline bool get_bool(napi_env env, napi_value value, const char* fn, const char* name, bool* out) {
  if (napi_get_value_bool(env, value, out) == napi_ok) return true;
  napi_throw_type_error(env, nullptr, (std::string(fn) + ": " + name + " must be a boolean").c_str());
  return false;
}

// `offset + rows * cols <= length`, computed without overflow for sizes below 2^53.
inline bool check_extent(napi_env env, const char* fn, const char* name, int64_t length, int64_t offset, int64_t rows,
                         int64_t cols) {
  const bool fits = offset <= length && (rows == 0 || cols == 0 || (cols <= (length - offset) / rows &&
                                                                    rows * cols <= length - offset));
  if (!fits) {
    napi_throw_range_error(env, nullptr,
                           (std::string(fn) + ": " + name + " needs " + std::to_string(rows) + "x" +
                            std::to_string(cols) + " elements" +
                            (offset == 0 ? std::string() : " from offset " + std::to_string(offset)) + " but has " +
                            std::to_string(length))
                               .c_str());
    return false;
  }
  return true;
}

// The last element read through `strides` over `shape` (4 axes, none empty):
// inside an array of `length` when below it. In doubles, so huge strides
// cannot wrap around: exact below 2^53, and past any array's length above it.
inline double strided_last(const int64_t* shape, const int64_t* strides) {
  double last = 0;
  for (int t = 0; t < 4; ++t) last += static_cast<double>(shape[t] - 1) * static_cast<double>(strides[t]);
  return last;
}

// Reads the first `count` arguments into argv; throws `usage` if fewer were passed.
inline bool get_args(napi_env env, napi_callback_info info, size_t count, napi_value* argv, const char* usage) {
  size_t argc = count;
  if (!check(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr))) return false;
  if (argc < count) {
    napi_throw_type_error(env, nullptr, usage);
    return false;
  }
  return true;
}

// One function of the module's exports.
struct Export {
  const char* name;
  napi_callback function;
};

// Defines each function as an enumerable property of exports.
inline void define_functions(napi_env env, napi_value exports, std::initializer_list<Export> functions) {
  std::vector<napi_property_descriptor> props;
  props.reserve(functions.size());
  for (const Export& f : functions) {
    props.push_back({f.name, nullptr, f.function, nullptr, nullptr, nullptr, napi_enumerable, nullptr});
  }
  napi_define_properties(env, exports, props.size(), props.data());
}

inline napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

inline napi_value number(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

inline napi_value string(napi_env env, const char* s) {
  napi_value out;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &out);
  return out;
}

}  // namespace glassformer
