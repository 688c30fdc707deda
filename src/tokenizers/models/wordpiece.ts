/**
 * WordPiece (Wu et al. 2016, Google's NMT system; used by BERT): greedy
 * longest-match-first. From the start of the word take the longest vocabulary
 * entry, then continue with `##`-prefixed entries; if some position has no match,
 * the whole word becomes the unknown token.
 */
import { ConfigError } from '../../errors.js';
import type { Model, ModelToken, ModelTrace } from './model.js';

const CACHE_CAPACITY = 10_000;
const CACHE_MAX_WORD = 64;

export class WordPieceModel implements Model {
  readonly type = 'WordPiece';
  private readonly vocabR: string[] = [];
  private readonly maxTokenLength: number;
  // Words repeat; their pieces are cached (bounded) as BPE's are.
  private readonly cache = new Map<string, ModelToken[]>();

  constructor(
    private readonly vocabMap: Map<string, number>,
    readonly unkToken: string,
    readonly continuingSubwordPrefix: string,
    readonly maxInputCharsPerWord: number,
    private readonly file: string,
  ) {
    let longest = 0;
    for (const [token, id] of vocabMap) {
      this.vocabR[id] = token;
      longest = Math.max(longest, token.length);
    }
    this.maxTokenLength = longest;
  }

  tokenToId(token: string): number | undefined {
    return this.vocabMap.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.vocabR[id];
  }

  vocab(): ReadonlyMap<string, number> {
    return this.vocabMap;
  }

  private unknown(word: string): ModelToken[] {
    const id = this.vocabMap.get(this.unkToken);
    if (id === undefined) throw new ConfigError(`${this.file}: model.unk_token ${JSON.stringify(this.unkToken)} is not in the vocabulary`);
    return [{ id, value: this.unkToken, start: 0, end: word.length }];
  }

  private tooLong(word: string): boolean {
    let chars = 0;
    for (let i = 0; i < word.length; i++) {
      const c = word.charCodeAt(i);
      if (c < 0xdc00 || c > 0xdfff) chars++;
    }
    return chars > this.maxInputCharsPerWord;
  }

  /** The greedy pieces of `word`, or null when some position matches nothing. */
  private pieces(word: string): ModelToken[] | null {
    const tokens: ModelToken[] = [];
    let start = 0;
    while (start < word.length) {
      const prefix = start > 0 ? this.continuingSubwordPrefix : '';
      let end = Math.min(word.length, start + this.maxTokenLength);
      let found: ModelToken | null = null;
      while (end > start) {
        const piece = prefix + word.slice(start, end);
        const id = this.vocabMap.get(piece);
        if (id !== undefined) {
          found = { id, value: piece, start, end };
          break;
        }
        const low = word.charCodeAt(end - 1);
        end -= low >= 0xdc00 && low <= 0xdfff && end - 2 >= start ? 2 : 1;
      }
      if (found === null) return null;
      tokens.push(found);
      start = found.end;
    }
    return tokens;
  }

  tokenize(word: string): ModelToken[] {
    const cached = this.cache.get(word);
    if (cached !== undefined) return cached;
    const tokens = this.tooLong(word) ? this.unknown(word) : (this.pieces(word) ?? this.unknown(word));
    if (this.cache.size < CACHE_CAPACITY && word.length <= CACHE_MAX_WORD) this.cache.set(word, tokens);
    return tokens;
  }

  trace(word: string): ModelTrace {
    const tooLong = this.tooLong(word);
    const pieces = tooLong ? null : this.pieces(word);
    return {
      model: 'WordPiece',
      pieces: (pieces ?? this.unknown(word)).map((t) => t.value),
      unknown: pieces === null,
      tooLong,
    };
  }
}
