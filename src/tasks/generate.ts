/**
 * The text-generation job: load a decoder-only model with its tokenizer and
 * generation defaults, then text in, text out (Hugging Face's
 * "text-generation" pipeline). Models come from a Hugging Face folder
 * (config.json + safetensors; model_type gpt2, llama, mistral, qwen2, qwen3,
 * phi3) or from a llama2.c checkpoint (.bin) with its tokenizer.bin.
 */
import { ConfigError, FormatError, UnsupportedError, WeightError } from '../errors.js';
import { generate, type GenerateCallbacks, type GenerateResult } from '../generation/generate.js';
import { generationOptionsFromJson, tokenList, type GenerateOptions } from '../generation/options.js';
import { streamGenerate, type StreamChunk } from '../generation/streamer.js';
import type { GenerativeModel } from '../generation/types.js';
import { readLlama2cCheckpoint, readLlama2cTokenizer } from '../io/llama2c.js';
import { openModelFolder } from '../io/model-folder.js';
import type { FileSystem } from '../io/source.js';
import { Gpt2Model, parseGpt2Config } from '../models/gpt2.js';
import { LLAMA_MODEL_TYPES, LlamaModel, parseLlamaConfig, type LlamaModelType } from '../models/llama.js';
import { Llama2cTokenizer } from '../models/llama2c-tokenizer.js';
import type { CausalLM } from '../nn/causal-lm.js';
import { Weights } from '../nn/weights.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { loadFolderTokenizer } from './encoder-folder.js';

/** What a text job needs from a tokenizer. */
export interface TextTokenizer {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  /** `previous` is the token before ids[0] (llama2.c drops a leading space after BOS; HF tokenizers ignore it). */
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean; previous?: number }): string;
  readonly padTokenId?: number;
  readonly eosTokenId?: number;
  /** tokenizer_config.json, for the chat template and the special-token strings. */
  readonly config: Record<string, unknown>;
}

/** A Hugging Face tokenizer (tokenizer.json) as a TextTokenizer. */
export function hfTextTokenizer(t: Tokenizer): TextTokenizer {
  return {
    encode: (text, options) => t.encode(text, { addSpecialTokens: options?.addSpecialTokens ?? true }).ids,
    decode: (ids, options) => t.decode(ids, { skipSpecialTokens: options?.skipSpecialTokens ?? true }),
    padTokenId: t.padTokenId,
    eosTokenId: t.eosTokenId,
    config: { ...t.config, ...Object.fromEntries(Object.entries(t.specialTokens).map(([k, v]) => [`${k}_token`, v])) },
  };
}

/** llama2.c's run.c tokenizer as a TextTokenizer. */
export function llama2cTextTokenizer(t: Llama2cTokenizer): TextTokenizer {
  return {
    encode: (text, options) => t.encode(text, { bos: options?.addSpecialTokens ?? true }),
    decode: (ids, options) => t.decode(ids, { skipSpecialTokens: options?.skipSpecialTokens ?? true, previous: options?.previous }),
    eosTokenId: t.eosTokenId,
    config: { bos_token: '<s>', eos_token: '</s>' },
  };
}

export type DecoderModel = CausalLM & GenerativeModel;

/** A loaded decoder-only model with everything a text job needs. */
export interface TextGenerator {
  /** Where it was loaded from. */
  readonly source: string;
  readonly model: DecoderModel;
  readonly tokenizer: TextTokenizer;
  /** generation_config.json (or the model config's ids) as generate() defaults. */
  readonly defaults: GenerateOptions;
}

/** A Hugging Face config.json → the matching decoder (GPT-2 or a Llama-family model). */
export function decoderFromConfig(config: Record<string, unknown>, weights: Weights, file = 'config.json'): DecoderModel {
  const type = config.model_type;
  if (type === 'gpt2') return new Gpt2Model(parseGpt2Config(config, file), weights);
  if (LLAMA_MODEL_TYPES.includes(type as LlamaModelType)) return new LlamaModel(parseLlamaConfig(config, file), weights);
  throw new UnsupportedError(`${file}: model_type ${JSON.stringify(type)} is not a decoder-only family glassformer generates with; supported: gpt2, ${LLAMA_MODEL_TYPES.join(', ')}`);
}

/** HF `GenerationConfig.from_model_config`: a folder without generation_config.json takes the model config's ids. */
function defaultsFromModelConfig(model: DecoderModel): GenerateOptions {
  const c = model instanceof Gpt2Model ? model.config : (model as LlamaModel).config;
  const out: GenerateOptions = {};
  if (c.bosTokenId !== null) out.bosTokenId = c.bosTokenId;
  if (c.eosTokenId !== null) out.eosTokenId = typeof c.eosTokenId === 'number' ? c.eosTokenId : [...c.eosTokenId];
  if (c.padTokenId !== null) out.padTokenId = c.padTokenId;
  return out;
}

/** Load a model folder saved by Hugging Face `save_pretrained`. */
export async function loadFolderGenerator(fs: FileSystem, dir: string): Promise<TextGenerator> {
  const folder = await openModelFolder(fs, dir);
  const { checkpoint, weightsPath } = folder;
  if (checkpoint === null || weightsPath === null) throw new WeightError(`${dir}: no weights found: expected model.safetensors or model.safetensors.index.json`);
  const model = decoderFromConfig(folder.config.raw, await Weights.fromCheckpoint(checkpoint, weightsPath), folder.configPath);
  const defaults =
    folder.generationConfigPath !== null ? generationOptionsFromJson(folder.generationConfig.raw, folder.generationConfigPath) : defaultsFromModelConfig(model);
  const tokenizer = await loadFolderTokenizer(fs, dir);
  return { source: dir, model, tokenizer: hfTextTokenizer(tokenizer), defaults };
}

/**
 * Load a llama2.c checkpoint and its tokenizer.bin (by default `tokenizer.bin`
 * beside the checkpoint). run.c ends a story at BOS, so BOS counts as an end
 * token besides EOS.
 */
export async function loadLlama2cGenerator(fs: FileSystem, path: string, tokenizerPath?: string): Promise<TextGenerator> {
  const checkpoint = await readLlama2cCheckpoint(fs.source(path));
  const config = parseLlamaConfig(checkpoint.llamaConfig.raw as Record<string, unknown>, path);
  const model = new LlamaModel(config, Weights.from(checkpoint.tensors, path));
  const tokPath = tokenizerPath ?? fs.join(fs.dirname(path), 'tokenizer.bin');
  if (!(await fs.exists(tokPath))) {
    throw new FormatError(tokPath, 'a llama2.c checkpoint needs its tokenizer.bin: none beside the checkpoint; pass its path (--tokenizer)');
  }
  const tokenizer = new Llama2cTokenizer(await readLlama2cTokenizer(fs, tokPath, config.vocabSize));
  return { source: path, model, tokenizer: llama2cTextTokenizer(tokenizer), defaults: { bosTokenId: 1, eosTokenId: [2, 1], padTokenId: 0 } };
}

/** A folder, or a llama2.c `.bin` checkpoint. */
export async function loadTextGenerator(fs: FileSystem, path: string, options: { tokenizer?: string } = {}): Promise<TextGenerator> {
  if (path.endsWith('.bin')) return loadLlama2cGenerator(fs, path, options.tokenizer);
  if (options.tokenizer !== undefined) throw new ConfigError('a separate tokenizer path is only for llama2.c checkpoints; a model folder brings its own');
  return loadFolderGenerator(fs, path);
}

export interface TextGenerationOutput {
  /** The generated continuation (special tokens removed). */
  text: string;
  /** The generated token ids (prompt excluded). */
  ids: number[];
  /** Log-probability of each generated token (greedy and sampling). */
  logprobs?: number[];
  /** Beam search: the sequence's length-normalised score. */
  score?: number;
}

/** Prompts → left-padded ids and mask (HF's padding side for generation), with the model's special tokens. */
export function encodePrompts(g: TextGenerator, prompts: readonly string[], options: GenerateOptions = {}): { inputIds: number[][]; attentionMask: number[][] } {
  const encoded = prompts.map((p) => g.tokenizer.encode(p));
  if (encoded.some((ids) => ids.length === 0)) throw new ConfigError('an empty prompt encodes to no tokens and this tokenizer adds no BOS; give some text');
  const width = Math.max(...encoded.map((ids) => ids.length));
  const pad = options.padTokenId ?? g.defaults.padTokenId ?? g.tokenizer.padTokenId ?? tokenList(options.eosTokenId ?? g.defaults.eosTokenId)[0];
  if (pad === undefined && encoded.some((ids) => ids.length < width)) throw new ConfigError('prompts of different lengths need a pad token id to left-pad them');
  return {
    inputIds: encoded.map((ids) => [...new Array<number>(width - ids.length).fill(pad ?? 0), ...ids]),
    attentionMask: encoded.map((ids) => [...new Array<number>(width - ids.length).fill(0), ...ids.map(() => 1)]),
  };
}

/** Split generate()'s sequences into one output per returned sequence. */
export function outputsOf(g: TextGenerator, result: GenerateResult, promptWidth: number, eos: readonly number[]): TextGenerationOutput[] {
  return result.sequences.map((sequence, i) => {
    const generated = sequence.slice(promptWidth);
    // Drop the padding after an EOS (finished rows are filled with pad).
    const end = generated.findIndex((t) => eos.includes(t));
    const ids = end === -1 ? generated : generated.slice(0, end + 1);
    const out: TextGenerationOutput = { text: g.tokenizer.decode(ids, { previous: sequence[promptWidth - 1] }), ids };
    if (result.tokenLogprobs) out.logprobs = result.tokenLogprobs[i].slice(0, ids.length);
    if (result.sequencesScores) out.score = result.sequencesScores[i];
    return out;
  });
}

/** Generate a continuation of each prompt (several per prompt with numReturnSequences). */
export function generateText(g: TextGenerator, prompts: string | readonly string[], options: GenerateOptions = {}, callbacks: GenerateCallbacks = {}): TextGenerationOutput[] {
  const list = typeof prompts === 'string' ? [prompts] : prompts;
  const inputs = encodePrompts(g, list, options);
  const decode = (ids: number[]) => g.tokenizer.decode(ids);
  const result = generate(g.model, inputs, options, g.defaults, { decode, ...callbacks });
  return outputsOf(g, result, inputs.inputIds[0].length, tokenList(options.eosTokenId ?? g.defaults.eosTokenId));
}

/** Stream the continuation of one prompt, token by token with its text. */
export function streamText(g: TextGenerator, prompt: string, options: GenerateOptions = {}, callbacks: GenerateCallbacks = {}): AsyncGenerator<StreamChunk> {
  const inputs = encodePrompts(g, [prompt], options);
  const previous = inputs.inputIds[0][inputs.inputIds[0].length - 1];
  return streamGenerate(g.model, inputs, options, g.defaults, { ...callbacks, decode: (ids) => g.tokenizer.decode(ids, { previous }) });
}
