/** The tracing layer: caches, hooks that read or replace, the logit lens, attribution, generation traces, trace files and reports. */
export type { ModelDescription, ModelFamily, ReadOut, StackDescription, TraceableModel, TraceInputs } from './types.js';
export { ActivationCache, globToRegExp, nameMatcher, type NameFilter } from './cache.js';
export { ablateHead, patchActivation, runWithCache, runWithHooks, type HookSpec, type RunWithCacheOptions } from './run.js';
export { applyReadOut, directLogitAttribution, logitLens, topTokens, type LogitAttribution, type LogitLens, type TokenProbability } from './lens.js';
export { traceGeneration, type GenerationEvent, type GenerationTraceOptions } from './generate.js';
export { decodeTensor, type EncodedTensor } from './encoding.js';
export { buildTrace, TRACE_FORMAT, TRACE_VERSION, type TraceFile, type TraceOptions, type TraceRequest } from './report.js';
export { formatTrace } from './text.js';
export { renderHtml } from './html.js';
export { loadTraceable, BartTraceable, BertTraceable, Gpt2Traceable, LlamaTraceable, T5Traceable, VanillaTraceable } from './adapters/index.js';
