// What addon.cc shares with the other native files: the process-wide thread
// pool, the instruction-set variant chosen at load, and the hook through which
// ops.cc adds its functions to the module's exports.
#pragma once

#include <node_api.h>

#include "gemm.h"
#include "thread_pool.h"

namespace glassformer {

ThreadPool& shared_pool();
const IsaKernels& active_isa();

// Defines ops.cc's functions (attend, ...) on the addon's exports.
void register_ops(napi_env env, napi_value exports);

}  // namespace glassformer
