/**
 * Hugging Face compatible tokenizers: load `tokenizer.json`, encode, decode, explain.
 * This entry point has no Node dependency; `load-node.ts` adds `loadTokenizer(dir)`.
 */
export { Tokenizer } from './tokenizer.js';
export { cleanUpTokenization } from './decoders.js';
export type { BatchOptions, DecodeOptions, EncodeOptions, Explanation, ExplainedSegment, FromJsonOptions, TokenizerParts } from './tokenizer.js';
export { loadTokenizerWith } from './load.js';
export type { ReadText } from './load.js';
export type { Encoding } from './encoding.js';
export type { AddedToken } from './added-tokens.js';
export type { ModelTrace, BpeMergeStep } from './models/index.js';
export type { PaddingOptions, TruncationOptions, TruncationStrategy, Side } from './truncation.js';
