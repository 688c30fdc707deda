# The native matmul addon (see docs/performance.md), built by
# scripts/build-native.mjs on install. Compiled for baseline x86-64: the AVX2
# and AVX-512 files raise their own target with pragmas and are chosen at run
# time. On arm64 the NEON file replaces them (Advanced SIMD is in every ARMv8-A
# core; its SDOT function raises its own target).
{
  "targets": [
    {
      "target_name": "glassformer_native",
      "sources": [
        "native/addon.cc",
        "native/thread_pool.cc",
        "native/ops.cc",
        "native/elementwise.cc",
        "native/gemm_scalar.cc",
        "native/gemm_avx2.cc",
        "native/gemm_avx512.cc",
        "native/gemm_avx512_dot.cc",
        "native/gemm_neon.cc"
      ],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-exceptions"],
      "cflags": [
        "-O3", "-Wall", "-Wextra",
        # GCC 12 warns inside its own AVX-512 headers (_mm512_undefined_ps);
        # Clang does not know the GCC-only option name.
        "-Wno-unknown-warning-option",
        "-Wno-maybe-uninitialized", "-Wno-uninitialized"
      ],
      "xcode_settings": {
        "GCC_OPTIMIZATION_LEVEL": "3",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17"
      },
      "defines": ["NAPI_VERSION=8"],
      "conditions": [
        # The x86 variants only on x86, the NEON one only on arm64; anywhere
        # else only the portable variant is built.
        ["target_arch not in ('x64', 'ia32')", {
          "sources!": ["native/gemm_avx2.cc", "native/gemm_avx512.cc", "native/gemm_avx512_dot.cc"]
        }],
        ["target_arch != 'arm64'", {
          "sources!": ["native/gemm_neon.cc"]
        }]
      ]
    }
  ]
}
