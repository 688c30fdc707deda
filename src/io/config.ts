/**
 * `config.json` → a typed config per model family.
 *
 * Hugging Face saves configs in diff mode (`PretrainedConfig.to_diff_dict`):
 * a key is left out when its value equals the default, and on loading
 * `from_pretrained` passes the remaining keys to the family's `__init__`, so
 * an omitted key takes the default of that `__init__`. The defaults below are
 * those of `transformers` v4.47 (`models/<family>/configuration_<family>.py`;
 * qwen3 arrived later, in v4.51, and uses the defaults it shipped with).
 *
 * Architecture sizes (vocabulary, widths, layer and head counts) are required:
 * `save_pretrained` always writes them, so a config without them was written
 * by hand, and a silent fallback to the sizes of e.g. bert-base would only
 * surface later as a confusing shape error.
 */
import { ConfigError, UnsupportedError } from '../errors.js';
import type { FileSystem } from './source.js';

type Json = Readonly<Record<string, unknown>>;
type TokenIds = number | readonly number[];

/** Reads typed fields out of one JSON object; errors name the file and the field. */
class Fields {
  constructor(
    readonly file: string,
    readonly raw: Json,
  ) {}

  private fail(key: string, expected: string): never {
    throw new ConfigError(`${this.file}: field "${key}" must be ${expected}, found ${JSON.stringify(this.raw[key])}`);
  }

  private value(key: string, fallback: unknown): unknown {
    const v = this.raw[key];
    if (v !== undefined) return v;
    if (fallback === undefined) throw new ConfigError(`${this.file}: required field "${key}" is missing`);
    return fallback;
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined;
  }

  int(key: string, fallback?: number): number {
    const v = this.value(key, fallback);
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) this.fail(key, 'an integer');
    return v;
  }

  count(key: string, fallback?: number): number {
    const v = this.int(key, fallback);
    if (v <= 0) this.fail(key, 'a positive integer');
    return v;
  }

  number(key: string, fallback?: number): number {
    const v = this.value(key, fallback);
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, 'a number');
    return v;
  }

  bool(key: string, fallback?: boolean): boolean {
    const v = this.value(key, fallback);
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }

  string(key: string, fallback?: string): string {
    const v = this.value(key, fallback);
    if (typeof v !== 'string') this.fail(key, 'a string');
    return v;
  }

  /** An optional integer: absent or null mean null unless a default is given. */
  intOrNull(key: string, fallback: number | null = null): number | null {
    const v = this.raw[key];
    if (v === undefined) return fallback;
    if (v === null) return null;
    return this.int(key);
  }

  numberOrNull(key: string, fallback: number | null = null): number | null {
    const v = this.raw[key];
    if (v === undefined) return fallback;
    if (v === null) return null;
    return this.number(key);
  }

  /** A token id or a list of them (e.g. Llama 3's several EOS ids). */
  tokenIds(key: string, fallback: TokenIds | null = null): TokenIds | null {
    const v = this.raw[key];
    if (v === undefined) return fallback;
    if (v === null) return null;
    if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
    if (Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isSafeInteger(x))) return Object.freeze([...v]);
    this.fail(key, 'a token id or a list of token ids');
  }

  intList(key: string): readonly number[] | null {
    const v = this.raw[key];
    if (v === undefined || v === null) return null;
    if (Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isSafeInteger(x))) return Object.freeze([...v]);
    this.fail(key, 'a list of integers');
  }

  intLists(key: string): readonly (readonly number[])[] | null {
    const v = this.raw[key];
    if (v === undefined || v === null) return null;
    if (Array.isArray(v) && v.every((row) => Array.isArray(row) && row.every((x) => typeof x === 'number' && Number.isSafeInteger(x)))) {
      return Object.freeze(v.map((row: number[]) => Object.freeze([...row])));
    }
    this.fail(key, 'a list of lists of token ids');
  }

  object(key: string): Json | null {
    const v = this.raw[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(key, 'an object');
    return v as Json;
  }
}

function requireDivisible(f: Fields, whole: string, wholeValue: number, part: string, partValue: number): void {
  if (wholeValue % partValue !== 0) {
    throw new ConfigError(`${f.file}: "${whole}" (${wholeValue}) must be divisible by "${part}" (${partValue})`);
  }
}

/** Fields every Hugging Face config has (`PretrainedConfig`). */
export interface HfConfigBase {
  /** The file it came from, for error messages. */
  readonly file: string;
  /** The JSON exactly as read. */
  readonly raw: Json;
  readonly architectures: readonly string[];
  readonly vocabSize: number;
  readonly tieWordEmbeddings: boolean;
  readonly isEncoderDecoder: boolean;
  readonly padTokenId: number | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: TokenIds | null;
  readonly decoderStartTokenId: number | null;
  /** Classification labels by class index; HF's default is two, LABEL_0 and LABEL_1. */
  readonly id2label: Readonly<Record<number, string>>;
  readonly numLabels: number;
  /** e.g. "float32", "bfloat16"; null when the file does not say. */
  readonly torchDtype: string | null;
}

/** BERT and the encoders that share its layout (RoBERTa, XLM-R, DistilBERT). */
export interface BertConfig extends HfConfigBase {
  readonly modelType: 'bert' | 'roberta' | 'xlm-roberta' | 'distilbert';
  readonly hiddenSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly intermediateSize: number;
  readonly hiddenAct: string;
  readonly maxPositionEmbeddings: number;
  /** 0 for DistilBERT, which has no token-type embeddings. */
  readonly typeVocabSize: number;
  readonly layerNormEps: number;
  readonly positionEmbeddingType: string;
  /** DistilBERT's `sinusoidal_pos_embds`: fixed sinusoidal instead of learned positions. */
  readonly sinusoidalPositions: boolean;
}

export interface Gpt2Config extends HfConfigBase {
  readonly modelType: 'gpt2';
  readonly nEmbd: number;
  readonly nLayer: number;
  readonly nHead: number;
  readonly nPositions: number;
  /** The MLP width; `n_inner: null` means 4 · n_embd. */
  readonly nInner: number;
  readonly activationFunction: string;
  readonly layerNormEpsilon: number;
  readonly scaleAttnWeights: boolean;
  readonly scaleAttnByInverseLayerIdx: boolean;
  readonly reorderAndUpcastAttn: boolean;
}

export type RopeScaling =
  | { readonly type: 'linear'; readonly factor: number }
  | { readonly type: 'dynamic'; readonly factor: number }
  | {
      readonly type: 'llama3';
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositionEmbeddings: number;
    }
  | {
      readonly type: 'yarn';
      readonly factor: number;
      readonly originalMaxPositionEmbeddings: number | null;
      readonly betaFast: number;
      readonly betaSlow: number;
      readonly attentionFactor: number | null;
    };

/** Llama and its close relatives: pre-norm RMSNorm decoders with RoPE, SwiGLU and grouped-query attention. */
export interface LlamaConfig extends HfConfigBase {
  readonly modelType: 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'phi3';
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  /** Grouped-query attention: each KV head serves numAttentionHeads / numKeyValueHeads query heads. */
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  readonly hiddenAct: string;
  readonly maxPositionEmbeddings: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling | null;
  /** Biases on the q, k and v projections (llama: attention_bias; qwen2: always). */
  readonly attentionBias: boolean;
  /** A bias on the output projection o_proj (llama, qwen3: attention_bias; qwen2, mistral, phi3: never). */
  readonly attentionOutputBias: boolean;
  readonly mlpBias: boolean;
  /** Qwen3 normalises q and k per head (RMSNorm over headDim) before RoPE. */
  readonly qkNorm: boolean;
  /** Phi-3 stores q|k|v as one qkv_proj and gate|up as one gate_up_proj. */
  readonly fusedProjections: boolean;
  /** Sliding-window attention width, or null for full causal attention. */
  readonly slidingWindow: number | null;
  /** Qwen2: layers from this index on use the sliding window (when slidingWindow is set). */
  readonly maxWindowLayers: number | null;
}

/** T5, and mT5 (T5 v1.1 layout: gated-gelu, untied head by default). */
export interface T5Config extends HfConfigBase {
  readonly modelType: 't5' | 'mt5';
  readonly dModel: number;
  readonly dKv: number;
  readonly dFf: number;
  readonly numLayers: number;
  readonly numDecoderLayers: number;
  readonly numHeads: number;
  readonly relativeAttentionNumBuckets: number;
  readonly relativeAttentionMaxDistance: number;
  readonly layerNormEpsilon: number;
  /** As written, e.g. "relu" or "gated-gelu". */
  readonly feedForwardProj: string;
  /** "gated-…": wo(act(wi_0 x) * wi_1 x) instead of wo(act(wi x)). */
  readonly isGatedAct: boolean;
  /** The activation; "gated-gelu" means gelu_new (the tanh approximation). */
  readonly denseActFn: string;
  readonly initializerFactor: number;
}

/** BART and Marian: post-norm encoder-decoders with learned (BART) or sinusoidal (Marian) positions. */
export interface BartConfig extends HfConfigBase {
  readonly modelType: 'bart' | 'marian';
  readonly dModel: number;
  readonly encoderLayers: number;
  readonly decoderLayers: number;
  readonly encoderAttentionHeads: number;
  readonly decoderAttentionHeads: number;
  readonly encoderFfnDim: number;
  readonly decoderFfnDim: number;
  readonly activationFunction: string;
  readonly maxPositionEmbeddings: number;
  /** Multiply token embeddings by sqrt(d_model). */
  readonly scaleEmbedding: boolean;
  /** A LayerNorm after embedding + position (BART's layernorm_embedding; Marian has none). */
  readonly normalizeEmbedding: boolean;
  readonly positionEmbedding: 'learned' | 'sinusoidal';
  /** BART's learned positions start at row 2 of embed_positions; Marian's at 0. */
  readonly positionOffset: number;
  /** Marian: the target vocabulary when it differs from the source one. */
  readonly decoderVocabSize: number;
  readonly shareEncoderDecoderEmbeddings: boolean;
  readonly forcedBosTokenId: number | null;
  readonly forcedEosTokenId: TokenIds | null;
}

/** The fixture's plain description of torch.nn.Transformer inside an embedding / output wrapper. */
export interface VanillaTransformerConfig {
  readonly modelType: 'vanilla_transformer_2017';
  readonly file: string;
  readonly raw: Json;
  readonly dModel: number;
  readonly nhead: number;
  readonly numEncoderLayers: number;
  readonly numDecoderLayers: number;
  readonly dimFeedforward: number;
  readonly activation: string;
  readonly layerNormEps: number;
  readonly normFirst: boolean;
  readonly finalEncoderLayerNorm: boolean;
  readonly finalDecoderLayerNorm: boolean;
  readonly srcVocabSize: number;
  readonly tgtVocabSize: number;
  readonly maxPositionEmbeddings: number;
  readonly tieEmbeddings: boolean;
  readonly outputProjectionBias: boolean;
  readonly padTokenId: number;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
}

export type ModelConfig = BertConfig | Gpt2Config | LlamaConfig | T5Config | BartConfig | VanillaTransformerConfig;
export type ModelType = ModelConfig['modelType'];

export const MODEL_TYPES: readonly ModelType[] = [
  'bert',
  'roberta',
  'xlm-roberta',
  'distilbert',
  'gpt2',
  'llama',
  'mistral',
  'qwen2',
  'qwen3',
  'phi3',
  't5',
  'mt5',
  'bart',
  'marian',
  'vanilla_transformer_2017',
];

/** The `__init__` defaults of one family that PretrainedConfig fields take. */
interface BaseDefaults {
  vocabSize?: number;
  tieWordEmbeddings?: boolean;
  isEncoderDecoder?: boolean;
  padTokenId?: number | null;
  bosTokenId?: number | null;
  eosTokenId?: number | null;
  decoderStartTokenId?: number | null;
  numLabels?: number;
}

function parseBase(f: Fields, defaults: BaseDefaults, vocabKey = 'vocab_size'): HfConfigBase {
  const architectures = f.raw.architectures;
  if (architectures !== undefined && architectures !== null && !(Array.isArray(architectures) && architectures.every((a) => typeof a === 'string'))) {
    throw new ConfigError(`${f.file}: field "architectures" must be a list of class names, found ${JSON.stringify(architectures)}`);
  }
  const id2label: Record<number, string> = {};
  const labels = f.object('id2label');
  if (labels) {
    for (const [key, label] of Object.entries(labels)) {
      const index = Number(key);
      if (!Number.isSafeInteger(index) || typeof label !== 'string') {
        throw new ConfigError(`${f.file}: field "id2label" must map class indices to names, found ${JSON.stringify(key)}: ${JSON.stringify(label)}`);
      }
      id2label[index] = label;
    }
  } else {
    // PretrainedConfig: num_labels (default 2) labels named LABEL_i.
    const numLabels = f.count('num_labels', defaults.numLabels ?? 2);
    for (let i = 0; i < numLabels; i++) id2label[i] = `LABEL_${i}`;
  }
  const torchDtype = f.raw.torch_dtype;
  return {
    file: f.file,
    raw: f.raw,
    architectures: Object.freeze([...((architectures as string[] | null | undefined) ?? [])]),
    vocabSize: f.count(vocabKey, defaults.vocabSize),
    tieWordEmbeddings: f.bool('tie_word_embeddings', defaults.tieWordEmbeddings ?? true),
    isEncoderDecoder: f.bool('is_encoder_decoder', defaults.isEncoderDecoder ?? false),
    padTokenId: f.intOrNull('pad_token_id', defaults.padTokenId ?? null),
    bosTokenId: f.intOrNull('bos_token_id', defaults.bosTokenId ?? null),
    eosTokenId: f.tokenIds('eos_token_id', defaults.eosTokenId ?? null),
    decoderStartTokenId: f.intOrNull('decoder_start_token_id', defaults.decoderStartTokenId ?? null),
    id2label: Object.freeze(id2label),
    numLabels: Object.keys(id2label).length,
    torchDtype: typeof torchDtype === 'string' ? torchDtype : null,
  };
}

function parseBert(f: Fields, modelType: BertConfig['modelType']): BertConfig {
  if (modelType === 'distilbert') {
    // DistilBERT names its fields differently (dim, n_layers, ...) and fixes the LayerNorm eps in the model code.
    const base = parseBase(f, { padTokenId: 0 });
    const hiddenSize = f.count('dim');
    const numAttentionHeads = f.count('n_heads');
    requireDivisible(f, 'dim', hiddenSize, 'n_heads', numAttentionHeads);
    return {
      ...base,
      modelType,
      hiddenSize,
      numHiddenLayers: f.count('n_layers'),
      numAttentionHeads,
      intermediateSize: f.count('hidden_dim'),
      hiddenAct: f.string('activation', 'gelu'),
      maxPositionEmbeddings: f.count('max_position_embeddings', 512),
      typeVocabSize: 0,
      layerNormEps: 1e-12,
      positionEmbeddingType: 'absolute',
      sinusoidalPositions: f.bool('sinusoidal_pos_embds', false),
    };
  }
  // RoBERTa and XLM-R differ from BERT only in their special-token defaults.
  const robertaLike = modelType !== 'bert';
  const base = parseBase(f, robertaLike ? { padTokenId: 1, bosTokenId: 0, eosTokenId: 2 } : { padTokenId: 0 });
  const hiddenSize = f.count('hidden_size');
  const numAttentionHeads = f.count('num_attention_heads');
  requireDivisible(f, 'hidden_size', hiddenSize, 'num_attention_heads', numAttentionHeads);
  return {
    ...base,
    modelType,
    hiddenSize,
    numHiddenLayers: f.count('num_hidden_layers'),
    numAttentionHeads,
    intermediateSize: f.count('intermediate_size'),
    hiddenAct: f.string('hidden_act', 'gelu'),
    maxPositionEmbeddings: f.count('max_position_embeddings', 512),
    typeVocabSize: f.int('type_vocab_size', 2),
    layerNormEps: f.number('layer_norm_eps', 1e-12),
    positionEmbeddingType: f.string('position_embedding_type', 'absolute'),
    sinusoidalPositions: false,
  };
}

function parseGpt2(f: Fields): Gpt2Config {
  const base = parseBase(f, { bosTokenId: 50256, eosTokenId: 50256 });
  const nEmbd = f.count('n_embd');
  const nHead = f.count('n_head');
  requireDivisible(f, 'n_embd', nEmbd, 'n_head', nHead);
  return {
    ...base,
    modelType: 'gpt2',
    nEmbd,
    nLayer: f.count('n_layer'),
    nHead,
    nPositions: f.count('n_positions', 1024),
    nInner: f.intOrNull('n_inner') ?? 4 * nEmbd,
    activationFunction: f.string('activation_function', 'gelu_new'),
    layerNormEpsilon: f.number('layer_norm_epsilon', 1e-5),
    scaleAttnWeights: f.bool('scale_attn_weights', true),
    scaleAttnByInverseLayerIdx: f.bool('scale_attn_by_inverse_layer_idx', false),
    reorderAndUpcastAttn: f.bool('reorder_and_upcast_attn', false),
  };
}

function parseRopeScaling(f: Fields, maxPositionEmbeddings: number): RopeScaling | null {
  const scaling = f.object('rope_scaling');
  if (!scaling) return null;
  const s = new Fields(`${f.file} (rope_scaling)`, scaling);
  // Older configs name the kind "type", newer ones "rope_type" (HF copies one to the other).
  const type = s.has('rope_type') ? s.string('rope_type') : s.string('type');
  switch (type) {
    case 'default':
      return null;
    case 'linear':
    case 'dynamic':
      return { type, factor: s.number('factor') };
    case 'llama3':
      return {
        type,
        factor: s.number('factor'),
        lowFreqFactor: s.number('low_freq_factor'),
        highFreqFactor: s.number('high_freq_factor'),
        originalMaxPositionEmbeddings: s.count('original_max_position_embeddings'),
      };
    case 'yarn':
      return {
        type,
        factor: s.number('factor'),
        originalMaxPositionEmbeddings: s.intOrNull('original_max_position_embeddings', maxPositionEmbeddings),
        betaFast: s.number('beta_fast', 32),
        betaSlow: s.number('beta_slow', 1),
        attentionFactor: s.numberOrNull('attention_factor'),
      };
    default:
      throw new UnsupportedError(
        `${f.file}: rope_scaling type "${type}" is not supported; glassformer knows default, linear, dynamic, llama3 and yarn`,
      );
  }
}

/** v4.47 `__init__` defaults of the Llama-like families that differ between them. */
const LLAMA_FAMILY_DEFAULTS: Record<
  LlamaConfig['modelType'],
  { maxPositionEmbeddings: number; rmsNormEps: number; bosTokenId: number | null; eosTokenId: number | null; padTokenId: number | null }
> = {
  llama: { maxPositionEmbeddings: 2048, rmsNormEps: 1e-6, bosTokenId: 1, eosTokenId: 2, padTokenId: null },
  mistral: { maxPositionEmbeddings: 4096 * 32, rmsNormEps: 1e-6, bosTokenId: 1, eosTokenId: 2, padTokenId: null },
  qwen2: { maxPositionEmbeddings: 32768, rmsNormEps: 1e-6, bosTokenId: null, eosTokenId: null, padTokenId: null },
  qwen3: { maxPositionEmbeddings: 32768, rmsNormEps: 1e-6, bosTokenId: null, eosTokenId: null, padTokenId: null },
  phi3: { maxPositionEmbeddings: 4096, rmsNormEps: 1e-5, bosTokenId: 1, eosTokenId: 32000, padTokenId: 32000 },
};

function parseLlama(f: Fields, modelType: LlamaConfig['modelType']): LlamaConfig {
  const defaults = LLAMA_FAMILY_DEFAULTS[modelType];
  // Unlike PretrainedConfig (true), every Llama-like family defaults to an untied lm_head.
  const base = parseBase(f, { tieWordEmbeddings: false, bosTokenId: defaults.bosTokenId, eosTokenId: defaults.eosTokenId, padTokenId: defaults.padTokenId });
  const hiddenSize = f.count('hidden_size');
  const numAttentionHeads = f.count('num_attention_heads');
  const numKeyValueHeads = f.intOrNull('num_key_value_heads') ?? numAttentionHeads;
  if (numKeyValueHeads <= 0) throw new ConfigError(`${f.file}: field "num_key_value_heads" must be a positive integer, found ${numKeyValueHeads}`);
  requireDivisible(f, 'num_attention_heads', numAttentionHeads, 'num_key_value_heads', numKeyValueHeads);
  // qwen2 and phi3 have no head_dim field in v4.47; qwen3 (v4.51) defaults it to 128; llama and mistral take it when given.
  const explicitHeadDim = modelType === 'qwen2' || modelType === 'phi3' ? null : f.intOrNull('head_dim', modelType === 'qwen3' ? 128 : null);
  if (explicitHeadDim === null) requireDivisible(f, 'hidden_size', hiddenSize, 'num_attention_heads', numAttentionHeads);
  const headDim = explicitHeadDim ?? hiddenSize / numAttentionHeads;
  const maxPositionEmbeddings = f.count('max_position_embeddings', defaults.maxPositionEmbeddings);
  const declaredBias = modelType === 'llama' || modelType === 'qwen3' ? f.bool('attention_bias', false) : false;
  const slidingWindow =
    modelType === 'mistral'
      ? f.intOrNull('sliding_window', 4096)
      : modelType === 'phi3'
        ? f.intOrNull('sliding_window')
        : modelType === 'qwen2' || modelType === 'qwen3'
          ? f.bool('use_sliding_window', false)
            ? f.intOrNull('sliding_window', 4096)
            : null
          : null;
  return {
    ...base,
    modelType,
    hiddenSize,
    intermediateSize: f.count('intermediate_size'),
    numHiddenLayers: f.count('num_hidden_layers'),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    hiddenAct: f.string('hidden_act', 'silu'),
    maxPositionEmbeddings,
    rmsNormEps: f.number('rms_norm_eps', defaults.rmsNormEps),
    ropeTheta: f.number('rope_theta', 10000),
    ropeScaling: parseRopeScaling(f, maxPositionEmbeddings),
    attentionBias: modelType === 'qwen2' ? true : declaredBias,
    attentionOutputBias: declaredBias,
    mlpBias: modelType === 'llama' ? f.bool('mlp_bias', false) : false,
    qkNorm: modelType === 'qwen3',
    fusedProjections: modelType === 'phi3',
    slidingWindow,
    maxWindowLayers: modelType === 'qwen2' || modelType === 'qwen3' ? f.int('max_window_layers', 28) : null,
  };
}

function parseT5(f: Fields, modelType: T5Config['modelType']): T5Config {
  const mt5 = modelType === 'mt5';
  const base = parseBase(f, { isEncoderDecoder: true, padTokenId: 0, eosTokenId: 1, tieWordEmbeddings: !mt5, decoderStartTokenId: mt5 ? 0 : null });
  const feedForwardProj = f.string('feed_forward_proj', mt5 ? 'gated-gelu' : 'relu');
  // T5Config.__init__: "gated-<act>" or "<act>"; anything else is refused there too.
  const parts = feedForwardProj.split('-');
  const isGatedAct = parts[0] === 'gated';
  if ((parts.length > 1 && !isGatedAct) || parts.length > 2) {
    throw new ConfigError(`${f.file}: field "feed_forward_proj" must be "<act>" or "gated-<act>" (e.g. "relu", "gated-gelu"), found "${feedForwardProj}"`);
  }
  const numLayers = f.count('num_layers');
  return {
    ...base,
    modelType,
    dModel: f.count('d_model'),
    dKv: f.count('d_kv'),
    dFf: f.count('d_ff'),
    numLayers,
    numDecoderLayers: f.intOrNull('num_decoder_layers') ?? numLayers,
    numHeads: f.count('num_heads'),
    relativeAttentionNumBuckets: f.count('relative_attention_num_buckets', 32),
    relativeAttentionMaxDistance: f.count('relative_attention_max_distance', 128),
    layerNormEpsilon: f.number('layer_norm_epsilon', 1e-6),
    feedForwardProj,
    isGatedAct,
    // Kept for backward compatibility in HF: "gated-gelu" means the tanh approximation.
    denseActFn: feedForwardProj === 'gated-gelu' ? 'gelu_new' : parts[parts.length - 1],
    initializerFactor: f.number('initializer_factor', 1),
  };
}

function parseBart(f: Fields, modelType: BartConfig['modelType']): BartConfig {
  const marian = modelType === 'marian';
  const base = parseBase(
    f,
    marian
      ? { isEncoderDecoder: true, padTokenId: 58100, eosTokenId: 0, decoderStartTokenId: 58100 }
      : { isEncoderDecoder: true, padTokenId: 1, bosTokenId: 0, eosTokenId: 2, decoderStartTokenId: 2, numLabels: 3 },
  );
  const dModel = f.count('d_model');
  const encoderAttentionHeads = f.count('encoder_attention_heads');
  const decoderAttentionHeads = f.count('decoder_attention_heads');
  requireDivisible(f, 'd_model', dModel, 'encoder_attention_heads', encoderAttentionHeads);
  requireDivisible(f, 'd_model', dModel, 'decoder_attention_heads', decoderAttentionHeads);
  return {
    ...base,
    modelType,
    dModel,
    encoderLayers: f.count('encoder_layers'),
    decoderLayers: f.count('decoder_layers'),
    encoderAttentionHeads,
    decoderAttentionHeads,
    encoderFfnDim: f.count('encoder_ffn_dim'),
    decoderFfnDim: f.count('decoder_ffn_dim'),
    activationFunction: f.string('activation_function', 'gelu'),
    maxPositionEmbeddings: f.count('max_position_embeddings', 1024),
    scaleEmbedding: f.bool('scale_embedding', false),
    normalizeEmbedding: !marian,
    positionEmbedding: marian ? 'sinusoidal' : 'learned',
    positionOffset: marian ? 0 : 2,
    decoderVocabSize: marian ? (f.intOrNull('decoder_vocab_size') ?? base.vocabSize) : base.vocabSize,
    shareEncoderDecoderEmbeddings: marian ? f.bool('share_encoder_decoder_embeddings', true) : true,
    // Configs from before forced_bos_token_id existed say force_bos_token_to_be_generated; BartConfig maps it to bos.
    forcedBosTokenId:
      f.intOrNull('forced_bos_token_id') ?? (!marian && f.bool('force_bos_token_to_be_generated', false) ? base.bosTokenId : null),
    forcedEosTokenId: f.tokenIds('forced_eos_token_id', marian ? 0 : 2),
  };
}

function parseVanilla(f: Fields): VanillaTransformerConfig {
  const dModel = f.count('d_model');
  const nhead = f.count('nhead');
  requireDivisible(f, 'd_model', dModel, 'nhead', nhead);
  return {
    modelType: 'vanilla_transformer_2017',
    file: f.file,
    raw: f.raw,
    dModel,
    nhead,
    numEncoderLayers: f.count('num_encoder_layers'),
    numDecoderLayers: f.count('num_decoder_layers'),
    dimFeedforward: f.count('dim_feedforward'),
    // The remaining defaults are torch.nn.Transformer's.
    activation: f.string('activation', 'relu'),
    layerNormEps: f.number('layer_norm_eps', 1e-5),
    normFirst: f.bool('norm_first', false),
    finalEncoderLayerNorm: f.bool('final_encoder_layer_norm', true),
    finalDecoderLayerNorm: f.bool('final_decoder_layer_norm', true),
    srcVocabSize: f.count('src_vocab_size'),
    tgtVocabSize: f.count('tgt_vocab_size'),
    maxPositionEmbeddings: f.count('max_position_embeddings'),
    tieEmbeddings: f.bool('tie_embeddings', false),
    outputProjectionBias: f.bool('output_projection_bias', true),
    padTokenId: f.int('pad_token_id'),
    bosTokenId: f.int('bos_token_id'),
    eosTokenId: f.int('eos_token_id'),
  };
}

function asObject(file: string, json: unknown): Json {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError(`${file}: must be a JSON object, found ${json === null ? 'null' : Array.isArray(json) ? 'an array' : typeof json}`);
  }
  return json as Json;
}

function parseJsonText(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${file}: not valid JSON (${(error as Error).message})`);
  }
}

/** Parse the JSON object of a config.json; `file` names it in errors. */
export function parseModelConfig(json: unknown, file = 'config.json'): ModelConfig {
  const f = new Fields(file, asObject(file, json));
  const modelType = f.string('model_type');
  switch (modelType) {
    case 'bert':
    case 'roberta':
    case 'xlm-roberta':
    case 'distilbert':
      return parseBert(f, modelType);
    case 'gpt2':
      return parseGpt2(f);
    case 'llama':
    case 'mistral':
    case 'qwen2':
    case 'qwen3':
    case 'phi3':
      return parseLlama(f, modelType);
    case 't5':
    case 'mt5':
      return parseT5(f, modelType);
    case 'bart':
    case 'marian':
      return parseBart(f, modelType);
    case 'vanilla_transformer_2017':
      return parseVanilla(f);
    default:
      throw new UnsupportedError(`${file}: model_type "${modelType}" is not supported; glassformer runs ${MODEL_TYPES.join(', ')}`);
  }
}

/** A JSON file's value; a ConfigError names the file when it is not JSON. */
export async function readConfigJson(fs: FileSystem, path: string): Promise<unknown> {
  return parseJsonText(path, await fs.readText(path));
}

export async function readModelConfig(fs: FileSystem, path: string): Promise<ModelConfig> {
  return parseModelConfig(await readConfigJson(fs, path), path);
}

/**
 * generation_config.json: how `generate()` decodes. Every field has the
 * default of `transformers.GenerationConfig` v4.47; token ids default to null
 * (the model config supplies them when the file does not).
 */
export interface GenerationConfig {
  readonly file: string;
  readonly raw: Json;
  readonly maxLength: number;
  readonly maxNewTokens: number | null;
  readonly minLength: number;
  readonly minNewTokens: number | null;
  /** Beam search: true stops once numBeams hypotheses finish; false uses a heuristic; "never" waits for no better candidate. */
  readonly earlyStopping: boolean | 'never';
  readonly maxTime: number | null;
  readonly stopStrings: readonly string[] | null;
  readonly doSample: boolean;
  readonly numBeams: number;
  readonly numBeamGroups: number;
  readonly penaltyAlpha: number | null;
  readonly useCache: boolean;
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly minP: number | null;
  readonly typicalP: number;
  readonly epsilonCutoff: number;
  readonly etaCutoff: number;
  readonly diversityPenalty: number;
  readonly repetitionPenalty: number;
  readonly encoderRepetitionPenalty: number;
  readonly lengthPenalty: number;
  readonly noRepeatNgramSize: number;
  readonly encoderNoRepeatNgramSize: number;
  readonly badWordsIds: readonly (readonly number[])[] | null;
  readonly renormalizeLogits: boolean;
  readonly forcedBosTokenId: number | null;
  readonly forcedEosTokenId: TokenIds | null;
  readonly removeInvalidValues: boolean;
  /** [start index, decay factor]. */
  readonly exponentialDecayLengthPenalty: readonly [number, number] | null;
  readonly suppressTokens: readonly number[] | null;
  readonly beginSuppressTokens: readonly number[] | null;
  /** [generation step, token id] pairs. */
  readonly forcedDecoderIds: readonly (readonly number[])[] | null;
  readonly guidanceScale: number | null;
  readonly numReturnSequences: number;
  readonly outputScores: boolean;
  readonly outputLogits: boolean;
  readonly returnDictInGenerate: boolean;
  readonly padTokenId: number | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: TokenIds | null;
  readonly decoderStartTokenId: TokenIds | null;
}

function parseEarlyStopping(f: Fields): boolean | 'never' {
  const v = f.raw.early_stopping;
  if (v === undefined) return false;
  if (v === true || v === false || v === 'never') return v;
  throw new ConfigError(`${f.file}: field "early_stopping" must be true, false or "never", found ${JSON.stringify(v)}`);
}

function parseStopStrings(f: Fields): readonly string[] | null {
  const v = f.raw.stop_strings;
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return [v];
  if (Array.isArray(v) && v.every((s) => typeof s === 'string')) return Object.freeze([...v]);
  throw new ConfigError(`${f.file}: field "stop_strings" must be a string or a list of strings, found ${JSON.stringify(v)}`);
}

/** Parse a generation_config.json object; also takes a model config.json, reading only its generation keys (HF `from_model_config`). */
export function parseGenerationConfig(json: unknown, file = 'generation_config.json'): GenerationConfig {
  const f = new Fields(file, asObject(file, json));
  const decay = f.raw.exponential_decay_length_penalty;
  if (decay !== undefined && decay !== null && !(Array.isArray(decay) && decay.length === 2 && decay.every((x) => typeof x === 'number'))) {
    throw new ConfigError(`${file}: field "exponential_decay_length_penalty" must be [start_index, decay_factor], found ${JSON.stringify(decay)}`);
  }
  return {
    file,
    raw: f.raw,
    maxLength: f.int('max_length', 20),
    maxNewTokens: f.intOrNull('max_new_tokens'),
    minLength: f.int('min_length', 0),
    minNewTokens: f.intOrNull('min_new_tokens'),
    earlyStopping: parseEarlyStopping(f),
    maxTime: f.numberOrNull('max_time'),
    stopStrings: parseStopStrings(f),
    doSample: f.bool('do_sample', false),
    numBeams: f.count('num_beams', 1),
    numBeamGroups: f.count('num_beam_groups', 1),
    penaltyAlpha: f.numberOrNull('penalty_alpha'),
    useCache: f.bool('use_cache', true),
    temperature: f.number('temperature', 1),
    topK: f.int('top_k', 50),
    topP: f.number('top_p', 1),
    minP: f.numberOrNull('min_p'),
    typicalP: f.number('typical_p', 1),
    epsilonCutoff: f.number('epsilon_cutoff', 0),
    etaCutoff: f.number('eta_cutoff', 0),
    diversityPenalty: f.number('diversity_penalty', 0),
    repetitionPenalty: f.number('repetition_penalty', 1),
    encoderRepetitionPenalty: f.number('encoder_repetition_penalty', 1),
    lengthPenalty: f.number('length_penalty', 1),
    noRepeatNgramSize: f.int('no_repeat_ngram_size', 0),
    encoderNoRepeatNgramSize: f.int('encoder_no_repeat_ngram_size', 0),
    badWordsIds: f.intLists('bad_words_ids'),
    renormalizeLogits: f.bool('renormalize_logits', false),
    forcedBosTokenId: f.intOrNull('forced_bos_token_id'),
    forcedEosTokenId: f.tokenIds('forced_eos_token_id'),
    removeInvalidValues: f.bool('remove_invalid_values', false),
    exponentialDecayLengthPenalty: Array.isArray(decay) ? [decay[0] as number, decay[1] as number] : null,
    suppressTokens: f.intList('suppress_tokens'),
    beginSuppressTokens: f.intList('begin_suppress_tokens'),
    forcedDecoderIds: f.intLists('forced_decoder_ids'),
    guidanceScale: f.numberOrNull('guidance_scale'),
    numReturnSequences: f.count('num_return_sequences', 1),
    outputScores: f.bool('output_scores', false),
    outputLogits: f.bool('output_logits', false),
    returnDictInGenerate: f.bool('return_dict_in_generate', false),
    padTokenId: f.intOrNull('pad_token_id'),
    bosTokenId: f.intOrNull('bos_token_id'),
    eosTokenId: f.tokenIds('eos_token_id'),
    decoderStartTokenId: f.tokenIds('decoder_start_token_id'),
  };
}

export async function readGenerationConfig(fs: FileSystem, path: string): Promise<GenerationConfig> {
  return parseGenerationConfig(parseJsonText(path, await fs.readText(path)), path);
}

/**
 * The generation config HF derives when a folder has no generation_config.json
 * (`GenerationConfig.from_model_config`): the generation keys of config.json,
 * with the special-token ids the model config resolved from its family defaults.
 */
export function generationConfigFromModelConfig(config: ModelConfig): GenerationConfig {
  const tokens: Record<string, unknown> = {};
  if (config.modelType === 'vanilla_transformer_2017') {
    Object.assign(tokens, { pad_token_id: config.padTokenId, bos_token_id: config.bosTokenId, eos_token_id: config.eosTokenId, decoder_start_token_id: config.bosTokenId });
  } else {
    Object.assign(tokens, {
      pad_token_id: config.padTokenId,
      bos_token_id: config.bosTokenId,
      eos_token_id: config.eosTokenId,
      decoder_start_token_id: config.decoderStartTokenId,
    });
    if (config.modelType === 'bart' || config.modelType === 'marian') {
      Object.assign(tokens, { forced_bos_token_id: config.forcedBosTokenId, forced_eos_token_id: config.forcedEosTokenId });
    }
  }
  return parseGenerationConfig({ ...config.raw, ...tokens }, config.file);
}
