/**
 * From text to the tensors an encoder takes: tokenize each text (or text
 * pair), truncate to the model's length, right-pad the batch and build the
 * attention mask, as a Hugging Face tokenizer called with
 * `padding=True, truncation=True, max_length=…` does for BERT-like models.
 */
import { ShapeError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import type { EncoderInputs } from '../models/bert.js';
import type { Encoding, Tokenizer } from '../tokenizers/index.js';

export type TextEncoding = Encoding;

/** What the jobs use of glassformer's `Tokenizer` (a structural type, so a test or another tokenizer can stand in). */
export type EncoderTokenizer = Pick<Tokenizer, 'encodeBatch' | 'decode' | 'tokenToId' | 'idToToken' | 'maskTokenId' | 'unkTokenId' | 'model' | 'decoder'>;

/** A batch ready for the encoder, with the encodings kept for offsets and tokens. */
export interface TextBatch {
  inputs: Required<Pick<EncoderInputs, 'inputIds' | 'attentionMask' | 'tokenTypeIds'>>;
  encodings: TextEncoding[];
  /** Real tokens per row. */
  lengths: number[];
}

export type TextInput = string | readonly [string, string];

export interface EncodeBatchOptions {
  /** Longest sequence the model accepts, special tokens included. */
  maxLength: number;
  padId: number;
}

/** Tokenize, truncate and right-pad a batch; rows longer than maxLength lose tokens from the end. */
export function encodeBatch(tokenizer: EncoderTokenizer, texts: readonly TextInput[], options: EncodeBatchOptions): TextBatch {
  if (texts.length === 0) throw new ShapeError('encodeBatch: no texts given');
  // As transformers' fast tokenizers do, the call's settings replace tokenizer.json's own truncation and padding.
  const encodings = tokenizer.encodeBatch(
    texts.map((t) => (typeof t === 'string' ? t : [t[0], t[1]])),
    { addSpecialTokens: true, padding: false, truncation: true, maxLength: options.maxLength },
  );
  return padEncodings(encodings, options.padId);
}

/** Right-pad encodings to the longest one: pad id, type 0, mask 0. */
export function padEncodings(encodings: TextEncoding[], padId: number): TextBatch {
  const batch = encodings.length;
  const seq = Math.max(...encodings.map((e) => e.ids.length));
  const ids = new Int32Array(batch * seq).fill(padId);
  const mask = new Int32Array(batch * seq);
  const types = new Int32Array(batch * seq);
  encodings.forEach((e, b) => {
    ids.set(e.ids, b * seq);
    types.set(e.typeIds, b * seq);
    mask.fill(1, b * seq, b * seq + e.ids.length);
  });
  return {
    inputs: {
      inputIds: new Tensor('i32', [batch, seq], ids),
      attentionMask: new Tensor('i32', [batch, seq], mask),
      tokenTypeIds: new Tensor('i32', [batch, seq], types),
    },
    encodings,
    lengths: encodings.map((e) => e.ids.length),
  };
}

/** Split `items` into consecutive chunks of at most `size`. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1) throw new ShapeError(`batch size must be a positive integer, found ${size}`);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
