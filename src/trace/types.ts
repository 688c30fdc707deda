/**
 * What the tracing layer needs from a model. Each family has an adapter in
 * `adapters/` that wraps its model class: run one forward pass with hooks
 * attached, say which stacks of layers it has, and read a residual stream out
 * to the vocabulary (final norm, then unembedding) for the logit lens.
 */
import type { DecodingSession, SessionInputs } from '../generation/types.js';
import type { HookPoints } from '../nn/hooks.js';
import type { Tensor } from '../tensor/tensor.js';

/** Encoder-only (BERT), decoder-only (GPT-2, Llama) or encoder-decoder (T5, BART, Marian, the 2017 Transformer). */
export type ModelFamily = 'encoder' | 'decoder' | 'encoder-decoder';

/** Token ids of one forward pass, as plain rows so that a trace file can record them. */
export interface TraceInputs {
  /** The encoder input (encoder-only, encoder-decoder) or the prompt (decoder-only), [batch][seq]. */
  inputIds: number[][];
  /** 1 for real tokens, 0 for padding; all ones when absent. */
  attentionMask?: number[][];
  /** Encoder-decoder only: the decoder's ids, teacher-forced, starting with the decoder start token. */
  decoderInputIds?: number[][];
  /** BERT segment ids; zeros when absent. */
  tokenTypeIds?: number[][];
}

/** One stack of layers and the hook prefix its names carry. */
export interface StackDescription {
  /** '' for a single-stack model, 'encoder.' / 'decoder.' for encoder-decoders. */
  prefix: '' | 'encoder.' | 'decoder.';
  layers: number;
  heads: number;
  /** Key/value heads (fewer than `heads` with grouped-query attention). */
  kvHeads: number;
  dModel: number;
  dHead: number;
  /** Decoder stacks of encoder-decoders attend to the encoder output: `blocks.{i}.cross_attn.*`. */
  crossAttention: boolean;
  /** Queries see only earlier positions. */
  causal: boolean;
  /** Which input feeds this stack. */
  input: 'inputIds' | 'decoderInputIds';
}

export interface SpecialTokens {
  bos?: number;
  eos?: number[];
  pad?: number;
  /** Encoder-decoders: the first decoder token. */
  decoderStart?: number;
}

/** A tokenizer-independent description of a model: what a trace file records about it. */
export interface ModelDescription {
  family: ModelFamily;
  /** config.json `model_type`. */
  modelType: string;
  /** One line for people, e.g. "the 2017 Transformer: post-norm, sinusoidal positions". */
  summary: string;
  /** Where the layer norms sit: before each sublayer (pre) or after each residual add (post). */
  norm: 'pre' | 'post';
  /** How positions enter: added vectors (sinusoidal, learned), rotated q/k (rotary), or a bias on the scores (relative-bias). */
  positions: 'sinusoidal' | 'learned' | 'rotary' | 'relative-bias';
  /** Size of the (output) token vocabulary. */
  vocabSize: number;
  stacks: StackDescription[];
  /** The stack whose residual stream is read out to the vocabulary; null when the model has no language-model head. */
  lensStack: StackDescription['prefix'] | null;
  specialTokens: SpecialTokens;
  /** Sequence-classification heads: the label of each class (config.json id2label); the logits are then [batch, labels]. */
  labels?: string[];
}

/** The final normalisation before the unembedding. */
export interface FinalNorm {
  kind: 'layer' | 'rms';
  weight: Tensor;
  bias?: Tensor;
  eps: number;
}

/**
 * Read a residual stream out to the vocabulary. `linear` is norm → ×scale → W_U·x + b
 * (GPT-2, Llama, T5, BART, the 2017 Transformer), which direct logit attribution
 * can take apart term by term; `head` is any other function (BERT's MLM head
 * has a dense layer and a GELU before its unembedding).
 */
export type ReadOut =
  | {
      kind: 'linear';
      /** null when the stack ends without a norm (post-norm BART, Marian). */
      norm: FinalNorm | null;
      /** [vocab, d] */
      weight: Tensor;
      /** [vocab] */
      bias?: Tensor;
      /** Multiplies the normalised stream before the unembedding (tied T5: d^-0.5); 1 otherwise. */
      scale: number;
    }
  | { kind: 'head'; describe: string; apply(residual: Tensor): Tensor };

/** What the tracing layer needs from a model (see `adapters/` for each family). */
export interface TraceableModel {
  readonly description: ModelDescription;
  /**
   * One forward pass; every intermediate passes through `hooks` under the
   * names of docs/trace.md. Returns the logits ([batch, seq, vocab]; for an
   * encoder-decoder, over the decoder positions) or, without a head, the final
   * hidden state.
   */
  run(inputs: TraceInputs, hooks: HookPoints): Tensor;
  /** How the lens stack's residual stream becomes logits; null when the model has no language-model head. */
  readonly readOut: ReadOut | null;
  /**
   * A KV-cached decoding session whose every step passes through `hooks`
   * (decoder-only models). Without it a generation trace re-runs the whole
   * forward pass at each step.
   */
  startSession?(inputs: SessionInputs, hooks: HookPoints): DecodingSession;
}
