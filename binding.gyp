{
  "targets": [
    {
      "target_name": "glassformer_native",
      "sources": [
        "native/addon.cc",
        "native/thread_pool.cc",
        "native/gemm_scalar.cc",
        "native/gemm_avx2.cc",
        "native/gemm_avx512.cc"
      ],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-exceptions"],
      "cflags": ["-O3", "-Wall", "-Wextra", "-Wno-maybe-uninitialized", "-Wno-uninitialized"],
      "defines": ["NAPI_VERSION=8"],
      "conditions": [
        ["target_arch not in ('x64', 'ia32')", {
          "sources!": ["native/gemm_avx2.cc", "native/gemm_avx512.cc"]
        }]
      ]
    }
  ]
}
