// Fused elementwise inference ops (norms, activations, softmax) for the
// TypeScript ops in src/ops/ to call when no gradient is recorded.
#include <node_api.h>

#include "napi_util.h"
#include "runtime.h"

namespace glassformer {

void register_elementwise(napi_env, napi_value) {}

}  // namespace glassformer
