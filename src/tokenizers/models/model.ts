/** What every tokenization model (BPE, WordPiece, Unigram) offers the pipeline. */

/** One token of a pre-token: its id, its vocabulary string and its [start, end) in the pre-token (UTF-16 units). */
export interface ModelToken {
  id: number;
  value: string;
  start: number;
  end: number;
}

/** What the model did to one pre-token, for `Tokenizer.explain`. */
export type ModelTrace =
  | { model: 'BPE'; cached: false; initial: string[]; merges: BpeMergeStep[]; ignoredMerges: boolean }
  | { model: 'WordPiece'; pieces: string[]; unknown: boolean; tooLong: boolean }
  | { model: 'Unigram'; pieces: { piece: string; score: number | null }[]; score: number };

export interface BpeMergeStep {
  rank: number;
  left: string;
  right: string;
  merged: string;
}

export interface Model {
  readonly type: 'BPE' | 'WordPiece' | 'Unigram';
  tokenize(word: string): ModelToken[];
  trace(word: string): ModelTrace;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  /** The vocabulary: token string to id. */
  vocab(): ReadonlyMap<string, number>;
}
