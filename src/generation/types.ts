import type { Tensor } from '../tensor/tensor.js';

/**
 * The seam between a model and the decoding loop. Decoder-only and
 * encoder-decoder models both generate "one token at a time until the end
 * token": the loop only needs the next-token logits of each row, and a way to
 * keep or reorder rows (beam search, finished rows).
 */
export interface DecodingSession {
  /**
   * Feed tokens to every row: the first call gets the whole prompt (decoder-only)
   * or the decoder start ids (encoder-decoder), [rows, n]; later calls one token
   * per row, [rows, 1]. Returns the logits of each row's last position, [rows, vocab].
   * The session keeps its own KV cache, attention mask and position ids.
   * The logits may lie in the session's own buffers, which its next call
   * (step, reorder, truncate) overwrites, so that decoding allocates nothing
   * per token: copy what is kept longer (generate() copies each row into its
   * scores before the next step, and `rowsOf` for outputLogits).
   */
  step(ids: readonly (readonly number[])[]): Tensor;
  /** Keep rows `indices`, in that order (row i becomes old row indices[i]). */
  reorder(indices: readonly number[]): void;
}

/** What a generate() call gives a model to start a session. */
export interface SessionInputs {
  /** Prompt ids (decoder-only, left-padded) or encoder input ids (encoder-decoder), [batch, seq]. */
  inputIds: readonly (readonly number[])[];
  /** 1 for real tokens, 0 for padding, [batch, seq]. */
  attentionMask: readonly (readonly number[])[];
  /** Each input row repeated this many times in a row (beam search, several return sequences). */
  expandBy: number;
}

/** A model that can generate. */
export interface GenerativeModel {
  readonly isEncoderDecoder: boolean;
  readonly vocabSize: number;
  startSession(inputs: SessionInputs): DecodingSession;
}
