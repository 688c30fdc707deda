/**
 * `modelInfo`: what a model folder holds, read from its config, tokenizer and
 * the headers of its safetensors files only (no tensor is loaded, so a 70B
 * model is described in milliseconds). A model's "size" (GPT-2 124M, Llama
 * 7B) is its number of parameters: the sum of the products of the weight
 * shapes; bytes on disk follow from it and the dtype.
 */
import { EntryNotFoundError, FormatError } from '../errors.js';
import { LOAD_DTYPES, predictLoadMemory, type LoadDtype, type LoadMemory } from '../io/load-memory.js';
import { SafetensorsFile, type TensorInfo } from '../io/safetensors.js';
import type { FileSystem } from '../io/source.js';
import { pickleError, SAFETENSORS_INDEX, SAFETENSORS_WEIGHTS, shardsOfIndex } from './files.js';

export type ModelFamily = 'encoder-only' | 'decoder-only' | 'encoder-decoder' | 'unknown';

export interface WeightsInfo {
  /** The safetensors files read (one, or the shards of the index). */
  readonly files: readonly string[];
  readonly tensors: number;
  /** Floating-point elements: the parameters. Integer buffers (e.g. BERT's old `position_ids`) are not parameters. */
  readonly parameters: number;
  /** Parameters per stored dtype (F32, F16, BF16, …). */
  readonly dtypes: Readonly<Record<string, number>>;
  /** Bytes of tensor data in the files. */
  readonly bytes: number;
}

export interface MemoryEstimate {
  /** The weights as glassformer computes with them: f32, 4 bytes per parameter. */
  readonly weightsF32: number;
  /** Keys and values cached for `contextLength` tokens at batch 1 (f32); null when the context is unbounded. */
  readonly kvCache: number | null;
  readonly total: number | null;
  /**
   * Loading, per linearDtype: the weights as held once loaded, and the peak
   * while loading (held + the largest tensor being converted), from the
   * headers alone (io/load-memory.ts).
   */
  readonly load: Readonly<Record<LoadDtype, LoadMemory>>;
}

export interface TokenizerInfo {
  /** BPE, WordPiece, Unigram, WordLevel (tokenizer.json), or the kind the slow-tokenizer files imply. */
  readonly kind: string;
  /** The file the kind was read from. */
  readonly file: string;
  readonly vocabSize: number | null;
  /** Role (bos_token, eos_token, unk_token, …) → token and its id where tokenizer.json gives it. */
  readonly specialTokens: Readonly<Record<string, { readonly token: string; readonly id: number | null }>>;
  /** Every added token marked special in tokenizer.json. */
  readonly addedSpecial: readonly { readonly token: string; readonly id: number }[];
}

export interface ModelInfo {
  readonly dir: string;
  readonly modelType: string | null;
  readonly architectures: readonly string[];
  readonly family: ModelFamily;
  readonly layers: number | null;
  /** Decoder layers of an encoder-decoder model (`layers` counts the encoder's). */
  readonly decoderLayers: number | null;
  readonly hiddenSize: number | null;
  readonly heads: number | null;
  /** Key/value heads: fewer than `heads` under grouped-query attention. */
  readonly kvHeads: number | null;
  readonly headDim: number | null;
  readonly ffnSize: number | null;
  /** Longest input the position scheme allows; null for relative positions (T5). */
  readonly contextLength: number | null;
  readonly contextNote: string;
  readonly vocabSize: number | null;
  /** Token ids the config names (bos, eos, pad, decoder start, …). */
  readonly configTokenIds: Readonly<Record<string, number | readonly number[]>>;
  /** null when the folder holds no safetensors weights; `weightsNote` says what it holds. */
  readonly weights: WeightsInfo | null;
  readonly weightsNote: string;
  readonly memory: MemoryEstimate | null;
  readonly tokenizer: TokenizerInfo | null;
}

type Json = Record<string, unknown>;

const ENCODER_ONLY = new Set([
  'bert', 'roberta', 'xlm-roberta', 'distilbert', 'albert', 'electra', 'deberta', 'deberta-v2', 'mpnet', 'camembert',
  'modernbert', 'nomic_bert', 'xlm', 'ernie', 'rembert', 'roformer', 'megatron-bert', 'bge-m3',
]);
const DECODER_ONLY = new Set([
  'gpt2', 'llama', 'mistral', 'mixtral', 'qwen2', 'qwen2_moe', 'qwen3', 'qwen3_moe', 'gemma', 'gemma2', 'gemma3_text', 'phi', 'phi3',
  'gpt_neo', 'gpt_neox', 'gptj', 'opt', 'bloom', 'falcon', 'codegen', 'starcoder2', 'gpt_bigcode', 'olmo', 'olmo2', 'stablelm',
  'cohere', 'smollm3', 'granite', 'mpt', 'ctrl', 'openai-gpt', 'llama2c',
]);
const ENCODER_DECODER = new Set([
  't5', 'mt5', 'umt5', 'bart', 'mbart', 'marian', 'pegasus', 'blenderbot', 'blenderbot-small', 'led', 'longt5', 'fsmt', 'prophetnet',
  'm2m_100', 'nllb-moe', 'bigbird_pegasus', 'plbart', 'vanilla_transformer_2017',
]);

/** Relative-position models: attention has no fixed longest input. */
const RELATIVE_POSITIONS = new Set(['t5', 'mt5', 'umt5', 'longt5']);

/** RoBERTa-style models number positions from pad_token_id + 1, so two of max_position_embeddings are never used. */
const OFFSET_POSITIONS = new Set(['roberta', 'xlm-roberta', 'camembert']);

const TOKEN_ID_FIELDS = ['bos_token_id', 'eos_token_id', 'pad_token_id', 'unk_token_id', 'sep_token_id', 'cls_token_id', 'mask_token_id', 'decoder_start_token_id', 'forced_eos_token_id'];
const SPECIAL_ROLES = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'];

async function readJson(fs: FileSystem, path: string): Promise<Json> {
  const text = await fs.readText(path);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new FormatError(path, `not valid JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new FormatError(path, 'must hold a JSON object');
  return parsed as Json;
}

async function readJsonIfPresent(fs: FileSystem, path: string): Promise<Json | null> {
  return (await fs.exists(path)) ? readJson(fs, path) : null;
}

/** The first of several spellings of a field that is a positive integer (HF families name the same size differently). */
function firstCount(config: Json, keys: readonly string[]): number | null {
  for (const key of keys) {
    const v = config[key];
    if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) return v;
  }
  return null;
}

export function familyOf(config: Json): ModelFamily {
  const type = typeof config.model_type === 'string' ? config.model_type : '';
  if (config.is_encoder_decoder === true || ENCODER_DECODER.has(type)) return 'encoder-decoder';
  if (DECODER_ONLY.has(type)) return 'decoder-only';
  if (ENCODER_ONLY.has(type)) return 'encoder-only';
  const architectures = Array.isArray(config.architectures) ? config.architectures.filter((a): a is string => typeof a === 'string') : [];
  if (architectures.some((a) => /ForConditionalGeneration$|MTModel$|Seq2Seq/.test(a))) return 'encoder-decoder';
  if (architectures.some((a) => /ForCausalLM$|LMHeadModel$/.test(a))) return 'decoder-only';
  if (architectures.some((a) => /ForMaskedLM$|ForSequenceClassification$|ForTokenClassification$|ForQuestionAnswering$|Model$/.test(a))) return 'encoder-only';
  return 'unknown';
}

function contextOf(config: Json, modelType: string): { contextLength: number | null; contextNote: string } {
  if (RELATIVE_POSITIONS.has(modelType)) {
    return { contextLength: null, contextNote: 'relative position buckets: no fixed limit (T5 was pre-trained on 512 tokens)' };
  }
  const found = firstCount(config, ['max_position_embeddings', 'n_positions', 'n_ctx', 'max_sequence_length', 'seq_length']);
  if (found === null) return { contextLength: null, contextNote: 'the config names no maximum position' };
  if (OFFSET_POSITIONS.has(modelType)) {
    const pad = typeof config.pad_token_id === 'number' ? config.pad_token_id : 1;
    return { contextLength: found - pad - 1, contextNote: `max_position_embeddings ${found} minus the ${pad + 1} offset positions RoBERTa reserves` };
  }
  return { contextLength: found, contextNote: 'from the learned or rotary position limit in config.json' };
}

function tokenIdsOf(config: Json): Record<string, number | readonly number[]> {
  const out: Record<string, number | readonly number[]> = {};
  for (const key of TOKEN_ID_FIELDS) {
    const v = config[key];
    if (typeof v === 'number' || (Array.isArray(v) && v.every((x) => typeof x === 'number'))) out[key.replace(/_token_id$/, '')] = v as number | number[];
  }
  return out;
}

async function openWeights(fs: FileSystem, dir: string, names: ReadonlySet<string>): Promise<{ files: string[]; headers: TensorInfo[]; perFile: TensorInfo[][] } | null> {
  let files: string[];
  if (names.has(SAFETENSORS_WEIGHTS)) files = [SAFETENSORS_WEIGHTS];
  else if (names.has(SAFETENSORS_INDEX)) {
    const indexPath = fs.join(dir, SAFETENSORS_INDEX);
    files = shardsOfIndex(await fs.readText(indexPath), indexPath);
    for (const shard of files) {
      if (!(await fs.exists(fs.join(dir, shard)))) {
        throw new EntryNotFoundError(`${indexPath}: names the shard ${shard}, which is not in the folder`, { modelId: dir, file: shard });
      }
    }
  } else return null;
  const perFile: TensorInfo[][] = [];
  for (const file of files) {
    const opened = await SafetensorsFile.open(fs.source(fs.join(dir, file)));
    perFile.push([...opened.header.tensors.values()]);
  }
  return { files, headers: perFile.flat(), perFile };
}

function isFloat(dtype: string): boolean {
  return dtype.startsWith('F') || dtype === 'BF16';
}

function summarizeWeights(files: string[], headers: readonly TensorInfo[]): WeightsInfo {
  let parameters = 0;
  let bytes = 0;
  const dtypes: Record<string, number> = {};
  for (const t of headers) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    bytes += t.dataOffsets[1] - t.dataOffsets[0];
    if (!isFloat(t.dtype)) continue;
    parameters += count;
    dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + count;
  }
  return { files, tensors: headers.length, parameters, dtypes, bytes };
}

/** Keys and values at f32 for every cached position: decoder self-attention, plus cross-attention over an encoder output as long. */
function kvCacheBytes(info: Pick<ModelInfo, 'family' | 'layers' | 'decoderLayers' | 'heads' | 'kvHeads' | 'headDim' | 'contextLength'>): number | null {
  if (info.family === 'encoder-only') return 0;
  const { contextLength, kvHeads, headDim } = info;
  if (contextLength === null || kvHeads === null || headDim === null) return null;
  const perLayer = 2 * kvHeads * headDim * contextLength * 4;
  if (info.family === 'encoder-decoder') {
    const layers = info.decoderLayers ?? info.layers;
    return layers === null ? null : 2 * layers * perLayer;
  }
  return info.layers === null ? null : info.layers * perLayer;
}

function tokenString(value: unknown): string | null {
  if (typeof value === 'string') return value;
  const content = (value as { content?: unknown } | null)?.content;
  return typeof content === 'string' ? content : null;
}

function vocabCount(vocab: unknown): number | null {
  if (Array.isArray(vocab)) return vocab.length;
  if (typeof vocab === 'object' && vocab !== null) return Object.keys(vocab).length;
  return null;
}

async function tokenizerInfo(fs: FileSystem, dir: string, names: ReadonlySet<string>): Promise<TokenizerInfo | null> {
  const tokenizerConfig = await readJsonIfPresent(fs, fs.join(dir, 'tokenizer_config.json'));
  const specialMap = await readJsonIfPresent(fs, fs.join(dir, 'special_tokens_map.json'));
  const idOf = new Map<string, number>();
  const addedSpecial: { token: string; id: number }[] = [];
  let kind: string | null = null;
  let file = '';
  let vocabSize: number | null = null;
  if (names.has('tokenizer.json')) {
    const path = fs.join(dir, 'tokenizer.json');
    const tokenizer = await readJson(fs, path);
    const model = (tokenizer.model ?? {}) as Json;
    kind = typeof model.type === 'string' ? model.type : 'BPE';
    file = 'tokenizer.json';
    const added = Array.isArray(tokenizer.added_tokens) ? (tokenizer.added_tokens as Json[]) : [];
    for (const a of added) {
      if (typeof a.content !== 'string' || typeof a.id !== 'number') continue;
      idOf.set(a.content, a.id);
      if (a.special === true) addedSpecial.push({ token: a.content, id: a.id });
    }
    const base = vocabCount(model.vocab);
    if (base !== null) {
      const vocab = model.vocab;
      const inVocab = (token: string): boolean => (Array.isArray(vocab) ? false : Object.hasOwn(vocab as object, token));
      vocabSize = base + added.filter((a) => typeof a.content === 'string' && !inVocab(a.content)).length;
      if (!Array.isArray(vocab)) for (const [token, id] of Object.entries(vocab as Record<string, unknown>)) if (typeof id === 'number' && !idOf.has(token)) idOf.set(token, id);
    }
  } else {
    const slow: [RegExp, string][] = [
      [/^vocab\.txt$/, 'WordPiece'],
      [/^merges\.txt$/, 'BPE'],
      [/^(spiece\.model|sentencepiece\.bpe\.model|tokenizer\.model|[^/]+\.spm)$/, 'SentencePiece'],
    ];
    for (const [pattern, name] of slow) {
      const match = [...names].find((n) => pattern.test(n));
      if (match) {
        kind = name;
        file = match;
        break;
      }
    }
  }
  if (kind === null) return null;
  const specialTokens: Record<string, { token: string; id: number | null }> = {};
  for (const role of SPECIAL_ROLES) {
    const token = tokenString(specialMap?.[role]) ?? tokenString(tokenizerConfig?.[role]);
    if (token !== null) specialTokens[role] = { token, id: idOf.get(token) ?? null };
  }
  return { kind, file, vocabSize, specialTokens, addedSpecial };
}

async function listNames(fs: FileSystem, dir: string): Promise<Set<string>> {
  const names = new Set<string>();
  for (const name of await fs.list(dir)) names.add(name);
  return names;
}

/**
 * Describe the model in `dir` (a folder with config.json). `fs` defaults to
 * the Node file system; a browser passes its own.
 */
export async function modelInfo(dir: string, fs?: FileSystem): Promise<ModelInfo> {
  const files = fs ?? (await import('../io/node-fs.js')).nodeFileSystem;
  const configPath = files.join(dir, 'config.json');
  if (!(await files.exists(configPath))) {
    throw new EntryNotFoundError(`${dir}: no config.json; a Hugging Face model folder starts with its config.json`, { modelId: dir, file: 'config.json' });
  }
  const config = await readJson(files, configPath);
  const names = await listNames(files, dir);
  const modelType = typeof config.model_type === 'string' ? config.model_type : null;
  const family = familyOf(config);
  const encoderDecoder = family === 'encoder-decoder';
  const layers = firstCount(config, encoderDecoder ? ['encoder_layers', 'num_layers', 'num_encoder_layers', 'num_hidden_layers'] : ['num_hidden_layers', 'n_layer', 'num_layers']);
  const decoderLayers = encoderDecoder ? (firstCount(config, ['decoder_layers', 'num_decoder_layers']) ?? layers) : null;
  const hiddenSize = firstCount(config, ['hidden_size', 'n_embd', 'd_model', 'dim']);
  const heads = firstCount(config, ['num_attention_heads', 'n_head', 'num_heads', 'decoder_attention_heads', 'encoder_attention_heads', 'nhead']);
  const kvHeads = firstCount(config, ['num_key_value_heads', 'n_kv_heads', 'multi_query_group_num']) ?? heads;
  const headDim = firstCount(config, ['head_dim', 'd_kv']) ?? (hiddenSize !== null && heads !== null ? hiddenSize / heads : null);
  const nEmbd = firstCount(config, ['n_embd']);
  const ffnSize =
    firstCount(config, ['intermediate_size', 'n_inner', 'd_ff', 'encoder_ffn_dim', 'ffn_dim', 'dim_feedforward']) ?? (modelType === 'gpt2' && nEmbd !== null ? 4 * nEmbd : null);
  const { contextLength, contextNote } = contextOf(config, modelType ?? '');
  const vocabSize = firstCount(config, ['vocab_size', 'tgt_vocab_size', 'padded_vocab_size']);
  const opened = await openWeights(files, dir, names);
  const weights = opened ? summarizeWeights(opened.files, opened.headers) : null;
  let weightsNote: string;
  if (weights) weightsNote = `safetensors: ${weights.files.join(', ')}`;
  else {
    const pickles = [...names].filter((n) => /^pytorch_model.*\.bin$/.test(n));
    weightsNote = pickles.length > 0 ? `no safetensors weights: ${pickleError(dir, pickles).message}` : `no weights in this folder (no ${SAFETENSORS_WEIGHTS} or ${SAFETENSORS_INDEX})`;
  }
  const shape = { family, layers, decoderLayers, heads, kvHeads, headDim, contextLength };
  let memory: MemoryEstimate | null = null;
  if (weights) {
    const weightsF32 = weights.parameters * 4;
    const kvCache = kvCacheBytes(shape);
    memory = { weightsF32, kvCache, total: kvCache === null ? null : weightsF32 + kvCache, load: predictLoadMemory(opened?.perFile ?? [], modelType, { tieWordEmbeddings: config.tie_word_embeddings !== false }) };
  }
  return {
    dir,
    modelType,
    architectures: Array.isArray(config.architectures) ? config.architectures.filter((a): a is string => typeof a === 'string') : [],
    ...shape,
    hiddenSize,
    ffnSize,
    contextNote,
    vocabSize,
    configTokenIds: tokenIdsOf(config),
    weights,
    weightsNote,
    memory,
    tokenizer: await tokenizerInfo(files, dir, names),
  };
}

/** 124439808 → "124.44M"; the unit a model's size is quoted in. */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(2)}K`;
  return String(n);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** What the peak adds to the loaded weights, per linearDtype that converts at all, with the tensor that sizes it. */
function conversionBuffers(load: Readonly<Record<LoadDtype, LoadMemory>>): string {
  const parts = LOAD_DTYPES.filter((d) => load[d].transientTensor !== null).map((d) => `${formatBytes(load[d].transient)} (${d}, sized by ${load[d].transientTensor})`);
  return parts.length === 0 ? 'none: every tensor is read straight into the memory it is kept in' : parts.join(', ');
}

/** The report `glassformer info` prints. */
export function formatModelInfo(info: ModelInfo): string {
  const lines: [string, string][] = [];
  const add = (key: string, value: string | number | null): void => void lines.push([key, value === null ? '—' : String(value)]);
  add('folder', info.dir);
  add('model type', info.modelType);
  add('architectures', info.architectures.join(', ') || null);
  add('family', info.family);
  add(info.family === 'encoder-decoder' ? 'layers (enc/dec)' : 'layers', info.family === 'encoder-decoder' ? `${info.layers ?? '?'} / ${info.decoderLayers ?? '?'}` : info.layers);
  add('hidden size', info.hiddenSize);
  add('attention heads', info.heads === null ? null : info.kvHeads !== info.heads ? `${info.heads} (${info.kvHeads} key/value heads: grouped-query)` : info.heads);
  add('head dim', info.headDim);
  add('feed-forward size', info.ffnSize);
  add('context length', info.contextLength === null ? `none (${info.contextNote})` : info.contextLength);
  add('vocab size', info.vocabSize);
  const w = info.weights;
  if (w) {
    add('parameters', `${formatCount(w.parameters)} (${w.parameters.toLocaleString('en-US')}): a model's "size" is this count`);
    add('dtypes', Object.entries(w.dtypes).map(([d, n]) => `${d} ${formatCount(n)}`).join(', '));
    add('weights on disk', `${formatBytes(w.bytes)} in ${w.files.join(', ')} (${w.tensors} tensors)`);
  } else add('weights', info.weightsNote);
  const m = info.memory;
  if (m) {
    add('memory to run', m.total === null ? `${formatBytes(m.weightsF32)} weights in f32 + KV cache (unbounded context)` : `${formatBytes(m.total)}`);
    add('  weights (f32)', formatBytes(m.weightsF32));
    add(
      '  KV cache',
      info.family === 'encoder-only'
        ? 'none: an encoder reads its whole input at once and caches nothing'
        : m.kvCache === null
          ? 'grows with the input: no fixed context'
          : `${formatBytes(m.kvCache)} for ${info.contextLength} tokens at batch 1`,
    );
    add('memory to load', LOAD_DTYPES.map((d) => `≈ ${formatBytes(m.load[d].resident)} (${d})`).join(', '));
    add('  peak while loading', LOAD_DTYPES.map((d) => `≈ ${formatBytes(m.load[d].peak)} (${d})`).join(', '));
    add('  conversion buffers', conversionBuffers(m.load));
  }
  const t = info.tokenizer;
  add('tokenizer', t ? `${t.kind} (${t.file}${t.vocabSize === null ? '' : `, ${t.vocabSize} tokens`})` : 'none in this folder');
  if (t) {
    const special = Object.entries(t.specialTokens).map(([role, s]) => `${role.replace(/_token$/, '')} ${s.token}${s.id === null ? '' : ` (${s.id})`}`);
    add('special tokens', special.join(', ') || (t.addedSpecial.map((s) => `${s.token} (${s.id})`).join(', ') || null));
  }
  const ids = Object.entries(info.configTokenIds).map(([k, v]) => `${k} ${Array.isArray(v) ? `[${v.join(', ')}]` : v}`);
  if (ids.length > 0) add('config token ids', ids.join(', '));
  const width = Math.max(...lines.map(([k]) => k.length));
  return lines.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}
