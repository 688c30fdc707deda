/** The glassformer public API. */
export * from './errors.js';
export { Tensor, concat, stack, gather, type Shape } from './tensor/tensor.js';
export type { DType } from './tensor/dtype.js';
export * as ops from './ops/index.js';
import { useFastestKernel } from './kernels/index.js';
export { matmulKernel, setMatmulKernel, referenceMatmul, blockedMatmul, useFastestKernel, kernelInfo, type MatmulKernel, type KernelInfo } from './kernels/index.js';
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
export { loadBert, loadBertFolder, BertModel, BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification, type EncoderModel, type EncoderInputs, type EncoderOutputs, type BertHead } from './models/bert.js';
export { Embedder, embed, readSentenceEncoderConfig, type EmbedOptions, type SentenceEncoderConfig } from './tasks/embed.js';
export { ExactIndex, SemanticSearch, indexMetricFor, type VectorIndex, type SearchHit, type QueryOptions, type IndexEntry } from './tasks/search.js';
export { TextClassifier, classify, type LabelScore } from './tasks/classify.js';
export { MaskFiller, fillMask, type FillMaskCandidate } from './tasks/fill-mask.js';
export { TokenClassifier, classifyTokens, type TokenEntity, type AggregationStrategy } from './tasks/token-classification.js';
export * from './trace/index.js';
export * from './tokenizers/index.js';
export { loadTokenizer } from './tokenizers/load-node.js';

// The native kernel when it built, else the blocked TypeScript one; a browser build gets the latter.
await useFastestKernel();
