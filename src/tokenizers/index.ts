/** Hugging Face compatible tokenizers: load `tokenizer.json`, encode, decode, explain. */
export { Tokenizer, cleanUpTokenization } from './tokenizer.js';
export type { BatchOptions, DecodeOptions, EncodeOptions, Explanation, ExplainedSegment, FromJsonOptions, TokenizerParts } from './tokenizer.js';
export type { Encoding } from './encoding.js';
export type { AddedToken } from './added-tokens.js';
export type { ModelTrace, BpeMergeStep } from './models/index.js';
