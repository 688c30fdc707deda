// The AArch64 Advanced SIMD (NEON) variants (gemm_neon.cc; arm64 builds only).
// Advanced SIMD is part of every ARMv8-A core, so `neon` needs no check at run
// time; `neon-dotprod` is the same table with the quantized int8 product on
// SDOT (ARMv8.2-A's optional dot-product extension), chosen only where the CPU
// reports it.
#pragma once

#include <cstdint>

#include "gemm.h"

namespace glassformer {

extern const IsaKernels kNeonKernels;
extern const IsaKernels kNeonDotprodKernels;

// Whether this CPU (and OS) has the SDOT/UDOT instructions (FEAT_DotProd).
bool neon_dotprod_supported();

}  // namespace glassformer
