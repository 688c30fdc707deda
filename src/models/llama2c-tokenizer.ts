/**
 * The tokenizer of llama2.c's run.c over a tokenizer.bin vocabulary (a
 * sentencepiece BPE vocabulary exported with one merge score per piece):
 *
 * encode: prepend " " (sentencepiece's dummy prefix), map each UTF-8 character
 *   to its piece or, when it has none, to its bytes' `<0xHH>` tokens (id byte + 3),
 *   then repeatedly merge the adjacent pair whose merged piece has the highest score.
 * decode: a piece right after BOS drops its leading space; `<0xHH>` pieces are raw bytes.
 *
 * Pieces are compared as bytes (one char per byte), exactly as run.c compares C strings.
 */
import type { Llama2cTokenizer as Llama2cVocabulary } from '../io/llama2c.js';

const BOS = 1;
const EOS = 2;
/** run.c's byte fallback: byte b is token b + 3 (after <unk>, <s>, </s>). */
const BYTE_OFFSET = 3;

function binary(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

export interface Llama2cEncodeOptions {
  /** Prepend BOS (run.c: true for prompts). */
  bos?: boolean;
  /** Append EOS. */
  eos?: boolean;
}

export interface Llama2cDecodeOptions {
  /** Leave out BOS and EOS (default true). */
  skipSpecialTokens?: boolean;
  /** The token before ids[0], for the after-BOS rule when decoding a continuation. */
  previous?: number;
}

export class Llama2cTokenizer {
  readonly bosTokenId = BOS;
  readonly eosTokenId = EOS;
  private readonly pieces: string[];
  private readonly ids = new Map<string, number>();

  constructor(readonly vocabulary: Llama2cVocabulary) {
    this.pieces = vocabulary.pieces.map(binary);
    // run.c looks pieces up with bsearch over a sorted copy; with duplicates the lowest id is as good as any.
    this.pieces.forEach((p, id) => {
      if (!this.ids.has(p)) this.ids.set(p, id);
    });
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  /** Text → token ids, as run.c's `encode`. */
  encode(text: string, options: Llama2cEncodeOptions = {}): number[] {
    const tokens: number[] = [];
    if (options.bos ?? true) tokens.push(BOS);
    if (text.length > 0) {
      const space = this.ids.get(' ');
      if (space !== undefined) tokens.push(space);
    }
    // One UTF-8 character at a time; characters without a piece fall back to byte tokens.
    for (const char of text) {
      const bytes = new TextEncoder().encode(char);
      const id = this.ids.get(binary(bytes));
      if (id !== undefined) tokens.push(id);
      else for (const b of bytes) tokens.push(b + BYTE_OFFSET);
    }
    this.mergePairs(tokens);
    if (options.eos) tokens.push(EOS);
    return tokens;
  }

  /** Merge the best-scoring adjacent pair until no pair forms a piece (score-greedy BPE). */
  private mergePairs(tokens: number[]): void {
    for (;;) {
      let bestScore = -1e10;
      let bestId = -1;
      let bestIndex = -1;
      for (let i = 0; i + 1 < tokens.length; i++) {
        const id = this.ids.get(this.pieces[tokens[i]] + this.pieces[tokens[i + 1]]);
        if (id !== undefined && this.vocabulary.scores[id] > bestScore) {
          bestScore = this.vocabulary.scores[id];
          bestId = id;
          bestIndex = i;
        }
      }
      if (bestIndex === -1) return;
      tokens.splice(bestIndex, 2, bestId);
    }
  }

  /** The bytes one token prints after `previous`, as run.c's `decode`. */
  pieceBytes(previous: number | undefined, token: number): number[] {
    let piece = this.pieces[token] ?? '';
    if (previous === BOS && piece.startsWith(' ')) piece = piece.slice(1);
    const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
    if (byte) return [parseInt(byte[1], 16)];
    return Array.from(piece, (c) => c.charCodeAt(0));
  }

  /** Token ids → text (UTF-8 of the concatenated piece bytes). */
  decode(ids: readonly number[], options: Llama2cDecodeOptions = {}): string {
    const skip = options.skipSpecialTokens ?? true;
    const bytes: number[] = [];
    let previous = options.previous;
    for (const id of ids) {
      if (!(skip && (id === BOS || id === EOS))) bytes.push(...this.pieceBytes(previous, id));
      previous = id;
    }
    return new TextDecoder().decode(Uint8Array.from(bytes));
  }
}
