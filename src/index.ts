/** The glassformer public API. */
export * from './errors.js';
export { Tensor, concat, stack, gather, type Shape } from './tensor/tensor.js';
export type { DType } from './tensor/dtype.js';
export * as ops from './ops/index.js';
export { matmulKernel, setMatmulKernel, referenceMatmul, type MatmulKernel } from './kernels/index.js';
export { Hooks, noHooks, type HookFn, type HookPoints } from './nn/hooks.js';
export { Weights } from './nn/weights.js';
export { KVCache } from './nn/kv-cache.js';
export { readSafetensors, writeSafetensors, serializeSafetensors } from './io/safetensors.js';
export { nodeFileSystem } from './io/node-fs.js';
export { VanillaTransformer } from './models/vanilla.js';
export { parseModelConfig, readModelConfig, parseGenerationConfig, type ModelConfig, type GenerationConfig } from './io/config.js';
export { verifyFolder, formatReport, type VerifyReport } from './verify/index.js';
export type { DecodingSession, GenerativeModel, SessionInputs } from './generation/types.js';
export { modelInfo, formatModelInfo, HubClient, type ModelInfo, type Fetcher } from './hub/index.js';
export { resolveModel, resolveModelDetailed, hubSettingsFromEnv, type ResolveOptions } from './hub/node.js';
