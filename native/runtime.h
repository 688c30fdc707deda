// What addon.cc shares with the other native files: the process-wide thread
// pool, the instruction-set variant chosen at load, and the hooks through which
// ops.cc and elementwise.cc add their functions to the module's exports.
#pragma once

#include <node_api.h>

#include "gemm.h"
#include "thread_pool.h"

namespace glassformer {

ThreadPool& shared_pool();
const IsaKernels& active_isa();

// Define the other files' functions on the addon's exports: ops.cc's
// attention and decoding helpers, elementwise.cc's fused norms and activations.
void register_ops(napi_env env, napi_value exports);
void register_elementwise(napi_env env, napi_value exports);

}  // namespace glassformer
