/**
 * BERT (Devlin et al. 2018) and the encoders that share its layout, as
 * Hugging Face `transformers` v4.47 implements them (`modeling_bert.py`,
 * `modeling_roberta.py`; XLM-R is RoBERTa's code):
 *
 *   h₀  = LayerNorm(word[ids] + tokenType[types] + position[pos])
 *   hᵢ  = LayerNorm(x + FFN(x)),  x = LayerNorm(hᵢ₋₁ + SelfAttention(hᵢ₋₁))     (post-norm)
 *   pooled = tanh(dense(h_L[:, 0]))
 *   MLM logits = LayerNorm(act(dense(h_L))) · wordᵀ + bias                      (tied decoder)
 *
 * RoBERTa differs only in its position ids (they start after padding_idx, see
 * `robertaPositionIds`), its weight names (`roberta.`, `lm_head.`) and its
 * classification head (dense → tanh → out_proj on h[:, 0], no pooler).
 * DistilBERT (src/models/distilbert.ts) reuses these blocks under its own names.
 *
 * Sentence encoders (MiniLM, BGE, E5, …) are BertModels saved without the
 * `bert.` prefix; like `from_pretrained`, loading accepts both forms.
 */
import { ConfigError, ShapeError, UnsupportedError, WeightError } from '../errors.js';
import { Checkpoint } from '../io/checkpoint.js';
import { readModelConfig, type BertConfig, type ModelConfig } from '../io/config.js';
import { findWeights } from '../io/model-folder.js';
import type { FileSystem } from '../io/source.js';
import { activation, add, embedding, paddingMask, relu, tanh } from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import { MultiHeadAttention } from '../nn/attention.js';
import { FeedForward } from '../nn/feed-forward.js';
import { noHooks, type HookPoints, hookLogits } from '../nn/hooks.js';
import { LayerNorm, Linear } from '../nn/linear.js';
import { Weights } from '../nn/weights.js';
import { loadDistilBert } from './distilbert.js';

export type { BertConfig } from '../io/config.js';

/** What sits on top of the encoder, as the Hugging Face class names say. */
export type BertHead = 'base' | 'masked-lm' | 'sequence-classification' | 'token-classification';

const HEAD_OF_ARCHITECTURE: Record<string, BertHead> = {
  Model: 'base',
  ForMaskedLM: 'masked-lm',
  ForSequenceClassification: 'sequence-classification',
  ForTokenClassification: 'token-classification',
};

/** The head a checkpoint was saved with, from `architectures` (e.g. "BertForMaskedLM" → masked-lm). */
export function headOfArchitectures(config: BertConfig): BertHead {
  const name = config.architectures[0];
  if (name === undefined) return 'base';
  for (const [suffix, head] of Object.entries(HEAD_OF_ARCHITECTURE)) {
    if (name.endsWith(suffix) && /^(Bert|Roberta|XLMRoberta|DistilBert)/.test(name)) return head;
  }
  throw new UnsupportedError(
    `${config.file}: architecture "${name}" has a head glassformer does not implement; ` +
      `supported: *Model, *ForMaskedLM, *ForSequenceClassification, *ForTokenClassification (pass head: 'base' to load only the encoder)`,
  );
}

/** The inputs of one encoder pass. All are [batch, seq]. */
export interface EncoderInputs {
  inputIds: Tensor;
  /** 1 for real tokens, 0 for padding; all ones when absent. */
  attentionMask?: Tensor;
  /** Segment A (0) / B (1); zeros when absent, as HF's buffered default. */
  tokenTypeIds?: Tensor;
  /** Explicit position ids; else 0..T−1 (BERT) or RoBERTa's padding-offset ids. */
  positionIds?: Tensor;
}

export interface ForwardOptions {
  hooks?: HookPoints;
  /** Keep every hidden state (embedding output and each layer's output), as `output_hidden_states`. */
  outputHiddenStates?: boolean;
  /** Keep every layer's attention probabilities, as `output_attentions`. */
  outputAttentions?: boolean;
}

export interface EncoderOutputs {
  /** [batch, seq, d] */
  lastHiddenState: Tensor;
  /** tanh(dense(h[:, 0])) [batch, d], when the model has a pooler. */
  poolerOutput?: Tensor;
  /** hidden_states.0 (embeddings) … hidden_states.L, when asked for. */
  hiddenStates: Tensor[];
  /** [batch, heads, seq, seq] per layer, when asked for. */
  attentions: Tensor[];
  /** The head's output: MLM [batch, seq, vocab], sequence classes [batch, labels], token classes [batch, seq, labels]. */
  logits?: Tensor;
}

/** Checks an ids-like input and returns it as [batch, seq]. */
function checkIds(name: string, t: Tensor, batch: number, seq: number): Tensor {
  if (t.rank !== 2 || t.shape[0] !== batch || t.shape[1] !== seq) {
    throw new ShapeError(`${name} must be [${batch}, ${seq}] like input_ids, found [${t.shape.join(', ')}]`);
  }
  return t;
}

/**
 * RoBERTa's positions (HF `create_position_ids_from_input_ids`): real tokens
 * count up from padding_idx + 1 and padding tokens sit at padding_idx, so the
 * position table has max_position_embeddings = 512 + 2 rows.
 */
export function robertaPositionIds(inputIds: Tensor, paddingIdx: number): Tensor {
  const [batch, seq] = inputIds.shape;
  const out = new Int32Array(batch * seq);
  for (let b = 0; b < batch; b++) {
    let count = 0;
    for (let t = 0; t < seq; t++) {
      const i = b * seq + t;
      const real = inputIds.data[i] !== paddingIdx;
      if (real) count++;
      out[i] = real ? count + paddingIdx : paddingIdx;
    }
  }
  return new Tensor('i32', [batch, seq], out);
}

/** 0..T−1 for every row (BERT, DistilBERT: padding does not shift positions). */
export function arangePositionIds(batch: number, seq: number): Tensor {
  const out = new Int32Array(batch * seq);
  for (let i = 0; i < out.length; i++) out[i] = i % seq;
  return new Tensor('i32', [batch, seq], out);
}

/**
 * The input representation (Devlin et al. §3.1): the sum of token, segment and
 * learned position embeddings, then LayerNorm. HF adds them in the order
 * (word + tokenType) + position.
 */
export class BertEmbeddings {
  constructor(
    readonly word: Tensor,
    readonly position: Tensor,
    /** Absent in DistilBERT. */
    readonly tokenType: Tensor | undefined,
    readonly norm: LayerNorm,
    /** RoBERTa: positions offset past padding_idx; null: 0..T−1. */
    readonly paddingIdx: number | null,
  ) {}

  /** `embeddings.{word,position,token_type}_embeddings`, `embeddings.LayerNorm` (BERT and RoBERTa names). */
  static load(w: Weights, c: BertConfig): BertEmbeddings {
    const d = c.hiddenSize;
    const word = w.get('word_embeddings.weight', [c.vocabSize, d]);
    const position = w.get('position_embeddings.weight', [c.maxPositionEmbeddings, d]);
    const tokenType = c.typeVocabSize > 0 ? w.get('token_type_embeddings.weight', [c.typeVocabSize, d]) : undefined;
    const norm = LayerNorm.load(w, 'LayerNorm', d, c.layerNormEps);
    const roberta = c.modelType === 'roberta' || c.modelType === 'xlm-roberta';
    if (roberta && c.padTokenId === null) throw new ConfigError(`${c.file}: ${c.modelType} needs "pad_token_id" to number its positions`);
    return new BertEmbeddings(word, position, tokenType, norm, roberta ? c.padTokenId : null);
  }

  positionIds(inputIds: Tensor): Tensor {
    const [batch, seq] = inputIds.shape;
    return this.paddingIdx === null ? arangePositionIds(batch, seq) : robertaPositionIds(inputIds, this.paddingIdx);
  }

  /** ids [batch, seq] → [batch, seq, d]. Hook names: embed, type_embed, pos_embed, ln_embed. */
  forward(inputs: EncoderInputs, hooks: HookPoints): Tensor {
    const ids = inputs.inputIds;
    const [batch, seq] = ids.shape;
    const positions = inputs.positionIds ? checkIds('position_ids', inputs.positionIds, batch, seq) : this.positionIds(ids);
    let maxPosition = 0;
    for (let i = 0; i < positions.size; i++) maxPosition = Math.max(maxPosition, positions.data[i]);
    if (maxPosition >= this.position.shape[0]) {
      throw new ShapeError(
        `position id ${maxPosition} is beyond the ${this.position.shape[0]} learned positions (max_position_embeddings); ` +
          `truncate the input to at most ${this.paddingIdx === null ? this.position.shape[0] : this.position.shape[0] - this.paddingIdx - 1} tokens`,
      );
    }
    let x = hooks.run('embed', embedding(this.word, ids)); // [batch, seq, d]
    if (this.tokenType) {
      const types = inputs.tokenTypeIds ? checkIds('token_type_ids', inputs.tokenTypeIds, batch, seq) : Tensor.zeros([batch, seq], 'i32');
      x = add(x, hooks.run('type_embed', embedding(this.tokenType, types)));
    } else if (inputs.tokenTypeIds && inputs.tokenTypeIds.data.some((v) => v !== 0)) {
      throw new UnsupportedError('token_type_ids were given but this model has no token type embeddings (DistilBERT); leave them out');
    }
    x = add(x, hooks.run('pos_embed', embedding(this.position, positions)));
    return hooks.run('ln_embed', this.norm.forward(x));
  }
}

/**
 * One post-norm encoder layer (Vaswani et al. 2017 §3.1, as BERT keeps it):
 * x = LayerNorm(x + SelfAttention(x)); x = LayerNorm(x + FFN(x)).
 */
export class BertLayer {
  private readonly scale: number;

  constructor(
    readonly selfAttention: MultiHeadAttention,
    readonly attentionNorm: LayerNorm,
    readonly feedForward: FeedForward,
    readonly outputNorm: LayerNorm,
  ) {
    this.scale = 1 / Math.sqrt(selfAttention.q.weight.shape[0] / selfAttention.heads);
  }

  /** `encoder.layer.{i}.`: attention.self.{query,key,value}, attention.output.{dense,LayerNorm}, intermediate.dense, output.{dense,LayerNorm}. */
  static load(w: Weights, c: BertConfig): BertLayer {
    const d = c.hiddenSize;
    const self = w.scope('attention.self');
    const attention = new MultiHeadAttention(
      Linear.load(self, 'query', d, d),
      Linear.load(self, 'key', d, d),
      Linear.load(self, 'value', d, d),
      Linear.load(w, 'attention.output.dense', d, d),
      c.numAttentionHeads,
    );
    const feedForward = new FeedForward(
      Linear.load(w, 'intermediate.dense', d, c.intermediateSize),
      Linear.load(w, 'output.dense', c.intermediateSize, d),
      c.hiddenAct,
    );
    return new BertLayer(
      attention,
      LayerNorm.load(w, 'attention.output.LayerNorm', d, c.layerNormEps),
      feedForward,
      LayerNorm.load(w, 'output.LayerNorm', d, c.layerNormEps),
    );
  }

  /**
   * x [batch, seq, d] → [batch, seq, d] and, unless `withPattern` is false
   * (nothing will read it: the fused attention then skips it), the attention
   * pattern [batch, heads, seq, seq].
   */
  forward(x: Tensor, mask: Tensor, hooks: HookPoints, withPattern = true): { out: Tensor; pattern?: Tensor } {
    x = hooks.run('resid_pre', x);
    const attentionOptions = { mask, scale: this.scale, hooks: hooks.scope('attn.') };
    const attention = withPattern ? this.selfAttention.forward(x, attentionOptions) : { out: this.selfAttention.output(x, attentionOptions), pattern: undefined };
    x = hooks.run('ln1', this.attentionNorm.forward(hooks.run('resid_mid', add(x, attention.out))));
    const ff = this.feedForward.forward(x, hooks.scope('mlp.'));
    const out = hooks.run('resid_post', hooks.run('ln2', this.outputNorm.forward(add(x, ff))));
    return { out, pattern: attention.pattern };
  }
}

/** The first token's final hidden state: [batch, seq, d] → [batch, d] (BERT's [CLS], RoBERTa's <s>). */
export function firstToken(h: Tensor): Tensor {
  return h.slice(1, 0, 1).reshape([h.shape[0], h.shape[2]]);
}

/**
 * The bare encoder (HF `BertModel`): embeddings, the layer stack and, when the
 * checkpoint has one, the pooler tanh(dense(h[:, 0])) that BERT's
 * next-sentence objective trained.
 */
export class BertModel {
  readonly head: BertHead = 'base';

  constructor(
    readonly config: BertConfig,
    readonly embeddings: BertEmbeddings,
    readonly layers: readonly BertLayer[],
    readonly pooler?: Linear,
  ) {}

  get bert(): BertModel {
    return this;
  }

  /** BERT/RoBERTa names under `w` (already scoped to `bert.` / `roberta.` when the checkpoint has the prefix). */
  static load(w: Weights, c: BertConfig, options: { pooler?: boolean | 'if-present' } = {}): BertModel {
    if (c.positionEmbeddingType !== 'absolute') {
      throw new UnsupportedError(`${c.file}: position_embedding_type "${c.positionEmbeddingType}" is not supported; only "absolute"`);
    }
    const embeddings = BertEmbeddings.load(w.scope('embeddings'), c);
    const layers = Array.from({ length: c.numHiddenLayers }, (_, i) => BertLayer.load(w.scope(`encoder.layer.${i}`), c));
    const want = options.pooler ?? 'if-present';
    const hasPooler = want === true || (want === 'if-present' && w.has('pooler.dense.weight'));
    const pooler = hasPooler ? Linear.load(w, 'pooler.dense', c.hiddenSize, c.hiddenSize) : undefined;
    return new BertModel(c, embeddings, layers, pooler);
  }

  /** Encode a batch. Hook names: tokens, embed…ln_embed, blocks.{i}.*, pooler. */
  forward(inputs: EncoderInputs, options: ForwardOptions = {}): EncoderOutputs {
    const hooks = options.hooks ?? noHooks;
    const ids = inputs.inputIds;
    if (ids.rank !== 2) throw new ShapeError(`input_ids must be [batch, seq], found [${ids.shape.join(', ')}]`);
    const [batch, seq] = ids.shape;
    const attentionMask = inputs.attentionMask ? checkIds('attention_mask', inputs.attentionMask, batch, seq) : Tensor.full([batch, seq], 1);
    hooks.run('tokens', ids);
    let x = this.embeddings.forward(inputs, hooks); // [batch, seq, d]
    // HF get_extended_attention_mask: (1 − mask) · finfo(f32).min added to every head's scores.
    const mask = paddingMask(attentionMask); // [batch, 1, 1, seq]
    const hiddenStates = options.outputHiddenStates ? [x] : [];
    const attentions: Tensor[] = [];
    this.layers.forEach((layer, i) => {
      const { out, pattern } = layer.forward(x, mask, hooks.scope(`blocks.${i}.`), options.outputAttentions === true);
      x = out;
      if (options.outputHiddenStates) hiddenStates.push(x);
      if (pattern) attentions.push(pattern);
    });
    const poolerOutput = this.pooler ? hooks.run('pooler', tanh(this.pooler.forward(firstToken(x)))) : undefined; // [batch, d]
    return { lastHiddenState: x, poolerOutput, hiddenStates, attentions };
  }
}

/**
 * The masked-language-model head (Devlin et al. §3.1, task 1): transform each
 * hidden state (dense, activation, LayerNorm) and score it against every word
 * embedding. The decoder weight is tied to the word embeddings and not saved.
 */
export class MaskedLmHead {
  constructor(
    readonly dense: Linear,
    readonly act: (x: Tensor) => Tensor,
    readonly norm: LayerNorm,
    readonly decoder: Linear,
  ) {}

  /** BERT: `cls.predictions.transform.{dense,LayerNorm}`, `cls.predictions.bias`; activation hidden_act. */
  static loadBert(w: Weights, c: BertConfig, wordEmbeddings: Tensor): MaskedLmHead {
    const p = w.scope('cls.predictions');
    const d = c.hiddenSize;
    return new MaskedLmHead(
      Linear.load(p, 'transform.dense', d, d),
      activation(c.hiddenAct),
      LayerNorm.load(p, 'transform.LayerNorm', d, c.layerNormEps),
      new Linear(tiedDecoder(p, 'decoder.weight', c, wordEmbeddings), decoderBias(p, ['bias', 'decoder.bias'], c)),
    );
  }

  /** RoBERTa: `lm_head.{dense,layer_norm,bias}`; RobertaLMHead applies exact GELU whatever hidden_act says. */
  static loadRoberta(w: Weights, c: BertConfig, wordEmbeddings: Tensor): MaskedLmHead {
    const p = w.scope('lm_head');
    const d = c.hiddenSize;
    return new MaskedLmHead(
      Linear.load(p, 'dense', d, d),
      activation('gelu'),
      LayerNorm.load(p, 'layer_norm', d, c.layerNormEps),
      new Linear(tiedDecoder(p, 'decoder.weight', c, wordEmbeddings), decoderBias(p, ['bias', 'decoder.bias'], c)),
    );
  }

  /** [batch, seq, d] → logits [batch, seq, vocab]. Hook names: mlm.transform, logits. */
  forward(h: Tensor, hooks: HookPoints): Tensor {
    const transformed = hooks.run('mlm.transform', this.norm.forward(this.act(this.dense.forward(h))));
    return hookLogits(hooks, this.decoder.forward(transformed));
  }
}

/** With tie_word_embeddings (the default) HF points the decoder at the word embeddings, saved or not. */
export function tiedDecoder(w: Weights, name: string, c: BertConfig, wordEmbeddings: Tensor): Tensor {
  if (c.tieWordEmbeddings) return wordEmbeddings;
  return w.get(name, [c.vocabSize, c.hiddenSize]);
}

/** The decoder bias is saved under the first name; older checkpoints also (or only) have the second. */
export function decoderBias(w: Weights, names: readonly string[], c: BertConfig): Tensor {
  for (const name of names) if (w.has(name)) return w.get(name, [c.vocabSize]);
  return w.get(names[0], [c.vocabSize]);
}

/** A sequence-classification head: the encoder outputs → logits [batch, labels]. */
export interface SequenceClassifier {
  forward(out: EncoderOutputs, hooks: HookPoints): Tensor;
}

/** BERT: `classifier` on the pooler output (dropout is the identity at inference). */
export class PooledClassifier implements SequenceClassifier {
  constructor(readonly classifier: Linear) {}

  forward(out: EncoderOutputs, hooks: HookPoints): Tensor {
    if (!out.poolerOutput) throw new WeightError('BertForSequenceClassification needs the pooler (bert.pooler.dense), which the checkpoint lacks');
    return hookLogits(hooks, this.classifier.forward(out.poolerOutput));
  }
}

/** RoBERTa (`RobertaClassificationHead`): out_proj(tanh(dense(h[:, 0]))); the encoder has no pooler. */
export class FirstTokenClassifier implements SequenceClassifier {
  constructor(
    readonly dense: Linear,
    readonly act: (x: Tensor) => Tensor,
    readonly outProj: Linear,
  ) {}

  static loadRoberta(w: Weights, c: BertConfig): FirstTokenClassifier {
    const d = c.hiddenSize;
    return new FirstTokenClassifier(Linear.load(w, 'classifier.dense', d, d), tanh, Linear.load(w, 'classifier.out_proj', d, c.numLabels));
  }

  /** DistilBERT: classifier(ReLU(pre_classifier(h[:, 0]))). */
  static loadDistilBert(w: Weights, c: BertConfig): FirstTokenClassifier {
    const d = c.hiddenSize;
    return new FirstTokenClassifier(Linear.load(w, 'pre_classifier', d, d), relu, Linear.load(w, 'classifier', d, c.numLabels));
  }

  forward(out: EncoderOutputs, hooks: HookPoints): Tensor {
    const pooled = hooks.run('pooler', this.act(this.dense.forward(firstToken(out.lastHiddenState)))); // [batch, d]
    return hookLogits(hooks, this.outProj.forward(pooled));
  }
}

/** Any model of this family: the encoder and, per its head, logits. */
export interface EncoderModel {
  readonly config: BertConfig;
  readonly head: BertHead;
  readonly bert: BertModel;
  forward(inputs: EncoderInputs, options?: ForwardOptions): EncoderOutputs;
}

export class BertForMaskedLM implements EncoderModel {
  readonly head: BertHead = 'masked-lm';

  constructor(
    readonly bert: BertModel,
    readonly lmHead: MaskedLmHead,
  ) {}

  get config(): BertConfig {
    return this.bert.config;
  }

  forward(inputs: EncoderInputs, options: ForwardOptions = {}): EncoderOutputs {
    const out = this.bert.forward(inputs, options);
    return { ...out, logits: this.lmHead.forward(out.lastHiddenState, options.hooks ?? noHooks) };
  }
}

export class BertForSequenceClassification implements EncoderModel {
  readonly head: BertHead = 'sequence-classification';

  constructor(
    readonly bert: BertModel,
    readonly classifier: SequenceClassifier,
  ) {}

  get config(): BertConfig {
    return this.bert.config;
  }

  forward(inputs: EncoderInputs, options: ForwardOptions = {}): EncoderOutputs {
    const out = this.bert.forward(inputs, options);
    return { ...out, logits: this.classifier.forward(out, options.hooks ?? noHooks) };
  }
}

/** A label per token: `classifier` on every final hidden state → [batch, seq, labels]. */
export class BertForTokenClassification implements EncoderModel {
  readonly head: BertHead = 'token-classification';

  constructor(
    readonly bert: BertModel,
    readonly classifier: Linear,
  ) {}

  get config(): BertConfig {
    return this.bert.config;
  }

  forward(inputs: EncoderInputs, options: ForwardOptions = {}): EncoderOutputs {
    const out = this.bert.forward(inputs, options);
    return { ...out, logits: hookLogits(options.hooks ?? noHooks, this.classifier.forward(out.lastHiddenState)) };
  }
}

/**
 * The base model's weights: under `prefix.` in a checkpoint saved from a head
 * class, at the root in one saved from the bare model (sentence-transformers).
 * HF's `from_pretrained` accepts both through `base_model_prefix`.
 */
export function baseWeights(w: Weights, prefix: string, probe = 'embeddings.word_embeddings.weight'): Weights {
  if (w.has(`${prefix}.${probe}`)) return w.scope(prefix);
  if (w.has(probe)) return w;
  throw new WeightError(`checkpoint has neither "${prefix}.${probe}" nor "${probe}": it is not a ${prefix} encoder`);
}

export interface LoadOptions {
  /** Which head to build; by default the one `architectures` names. */
  head?: BertHead;
}

function loadBertLike(config: BertConfig, w: Weights, head: BertHead): EncoderModel {
  const roberta = config.modelType !== 'bert';
  const base = baseWeights(w, roberta ? 'roberta' : 'bert');
  switch (head) {
    case 'base':
      return BertModel.load(base, config);
    case 'masked-lm': {
      // HF's *ForMaskedLM build the encoder without a pooler.
      const bert = BertModel.load(base, config, { pooler: false });
      const lm = roberta ? MaskedLmHead.loadRoberta(w, config, bert.embeddings.word) : MaskedLmHead.loadBert(w, config, bert.embeddings.word);
      return new BertForMaskedLM(bert, lm);
    }
    case 'sequence-classification':
      return roberta
        ? new BertForSequenceClassification(BertModel.load(base, config, { pooler: false }), FirstTokenClassifier.loadRoberta(w, config))
        : new BertForSequenceClassification(
            BertModel.load(base, config, { pooler: true }),
            new PooledClassifier(Linear.load(w, 'classifier', config.hiddenSize, config.numLabels)),
          );
    case 'token-classification':
      return new BertForTokenClassification(
        BertModel.load(base, config, { pooler: false }),
        Linear.load(w, 'classifier', config.hiddenSize, config.numLabels),
      );
  }
}

export function isBertConfig(config: ModelConfig): config is BertConfig {
  return config.modelType === 'bert' || config.modelType === 'roberta' || config.modelType === 'xlm-roberta' || config.modelType === 'distilbert';
}

/** Build an encoder from a parsed config and its checkpoint tensors (by Hugging Face name). */
export function loadBert(
  source: { config: ModelConfig; weights: ReadonlyMap<string, Tensor> | Weights; weightsName?: string },
  options: LoadOptions = {},
): EncoderModel {
  const { config } = source;
  if (!isBertConfig(config)) {
    throw new UnsupportedError(`${'file' in config ? config.file : 'config'}: model_type "${config.modelType}" is not an encoder of the BERT family`);
  }
  const w = source.weights instanceof Weights ? source.weights : Weights.from(source.weights, source.weightsName ?? 'checkpoint');
  const head = options.head ?? headOfArchitectures(config);
  return config.modelType === 'distilbert' ? loadDistilBert(config, w, head) : loadBertLike(config, w, head);
}

/** The checkpoint of a model folder, opened (header only): model.safetensors, or the shards model.safetensors.index.json lists. */
export async function openFolderCheckpoint(fs: FileSystem, dir: string): Promise<{ checkpoint: Checkpoint; file: string }> {
  const file = await findWeights(fs, dir, true);
  return { checkpoint: await Checkpoint.open(fs, file), file };
}

/** Every tensor of a model folder, read now (training copies them all). */
export async function readFolderWeights(fs: FileSystem, dir: string): Promise<{ weights: Map<string, Tensor>; file: string }> {
  const { checkpoint, file } = await openFolderCheckpoint(fs, dir);
  return { weights: await checkpoint.loadAll(), file };
}

/** Load an encoder from a Hugging Face model folder (config.json + model.safetensors, or sharded). */
export async function loadBertFolder(fs: FileSystem, dir: string, options: LoadOptions = {}): Promise<EncoderModel> {
  const config = await readModelConfig(fs, fs.join(dir, 'config.json'));
  const { checkpoint, file } = await openFolderCheckpoint(fs, dir);
  return loadBert({ config, weights: await Weights.fromCheckpoint(checkpoint, file), weightsName: file }, options);
}
