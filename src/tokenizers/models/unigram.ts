/**
 * Unigram language model (Kudo 2018, "Subword Regularization"): each piece has a
 * log-probability; the segmentation is the one with the highest total score, found
 * by Viterbi over the positions of the word. A character no piece covers costs the
 * lowest piece score minus 10 (SentencePiece's unknown penalty) and becomes the
 * unknown token; consecutive unknowns fuse into one.
 */
import { ConfigError } from '../../errors.js';
import { byteToken } from './bpe.js';
import type { Model, ModelToken, ModelTrace } from './model.js';

const UNKNOWN_PENALTY = 10;

interface TrieNode {
  children: Map<number, TrieNode>;
  /** Vocabulary id of the piece ending here, or -1. */
  id: number;
}

export class UnigramModel implements Model {
  readonly type = 'Unigram';
  private readonly vocabMap = new Map<string, number>();
  private readonly root: TrieNode = { children: new Map(), id: -1 };
  private readonly unknownScore: number;
  private readonly cache = new Map<string, ModelToken[]>();

  constructor(
    private readonly pieces: [string, number][],
    readonly unkId: number | null,
    readonly byteFallback: boolean,
    readonly fuseUnk: boolean,
    file: string,
  ) {
    let minScore = Infinity;
    pieces.forEach(([piece, score], id) => {
      this.vocabMap.set(piece, id);
      minScore = Math.min(minScore, score);
      let node = this.root;
      for (let i = 0; i < piece.length; i++) {
        const code = piece.charCodeAt(i);
        let child = node.children.get(code);
        if (child === undefined) {
          child = { children: new Map(), id: -1 };
          node.children.set(code, child);
        }
        node = child;
      }
      node.id = id;
    });
    if (unkId !== null && (unkId < 0 || unkId >= pieces.length)) {
      throw new ConfigError(`${file}: model.unk_id ${unkId} is outside the vocabulary (size ${pieces.length})`);
    }
    this.unknownScore = minScore - UNKNOWN_PENALTY;
  }

  tokenToId(token: string): number | undefined {
    return this.vocabMap.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.pieces[id]?.[0];
  }

  vocab(): ReadonlyMap<string, number> {
    return this.vocabMap;
  }

  /**
   * Viterbi: best[end] holds the best score of a segmentation of word[0, end), the
   * start of its last piece and that piece's id.
   */
  private viterbi(word: string): { spans: [number, number, number][]; score: number } {
    const n = word.length;
    const bestScore = new Float64Array(n + 1);
    const bestStart = new Int32Array(n + 1).fill(-1);
    const bestId = new Int32Array(n + 1);
    bestStart[0] = 0;
    for (let start = 0; start < n; ) {
      const width = (word.codePointAt(start) as number) > 0xffff ? 2 : 1;
      const base = bestScore[start];
      let hasSingleChar = false;
      let node: TrieNode | undefined = this.root;
      for (let end = start; end < n; ) {
        node = node.children.get(word.charCodeAt(end));
        end++;
        if (node === undefined) break;
        if (node.id >= 0) {
          const candidate = base + this.pieces[node.id][1];
          if (bestStart[end] < 0 || candidate > bestScore[end]) {
            bestScore[end] = candidate;
            bestStart[end] = start;
            bestId[end] = node.id;
          }
          if (end - start === width) hasSingleChar = true;
        }
      }
      if (!hasSingleChar) {
        const end = start + width;
        const candidate = base + this.unknownScore;
        if (bestStart[end] < 0 || candidate > bestScore[end]) {
          bestScore[end] = candidate;
          bestStart[end] = start;
          bestId[end] = this.unkId ?? -1;
        }
      }
      start += width;
    }
    const spans: [number, number, number][] = [];
    for (let end = n; end > 0; end = bestStart[end]) spans.push([bestStart[end], end, bestId[end]]);
    spans.reverse();
    return { spans, score: bestScore[n] };
  }

  /** Turns Viterbi spans into tokens: unknown runs fused, then (with byte_fallback) spelled as byte tokens. */
  private toTokens(word: string, spans: [number, number, number][]): ModelToken[] {
    const pieces: ModelToken[] = [];
    for (const [start, end, id] of spans) {
      const isUnknown = id < 0 || id === this.unkId;
      const last = pieces[pieces.length - 1];
      if (isUnknown && this.fuseUnk && last !== undefined && last.id === -1 && last.end === start) {
        last.end = end;
        last.value = word.slice(last.start, end);
      } else {
        pieces.push({ id: isUnknown ? -1 : id, value: word.slice(start, end), start, end });
      }
    }
    return pieces.flatMap((piece) => (piece.id >= 0 ? [piece] : this.unknownTokens(piece)));
  }

  /** An uncovered span: byte tokens (each with the span's offsets) if the vocabulary has them all, else the unknown token. */
  private unknownTokens(span: ModelToken): ModelToken[] {
    if (this.byteFallback) {
      const ids = [...new TextEncoder().encode(span.value)].map((b) => this.vocabMap.get(byteToken(b)));
      if (ids.every((id) => id !== undefined)) {
        return ids.map((id) => ({ id: id as number, value: this.pieces[id as number][0], start: span.start, end: span.end }));
      }
    }
    if (this.unkId === null) throw new ConfigError(`Unigram model has no unk_id but ${JSON.stringify(span.value)} is not covered by any piece`);
    return [{ ...span, id: this.unkId }];
  }

  tokenize(word: string): ModelToken[] {
    if (word.length === 0) return [];
    const cached = this.cache.get(word);
    if (cached !== undefined) return cached;
    const tokens = this.toTokens(word, this.viterbi(word).spans);
    if (this.cache.size < 10_000) this.cache.set(word, tokens);
    return tokens;
  }

  trace(word: string): ModelTrace {
    const { spans, score } = this.viterbi(word);
    return {
      model: 'Unigram',
      pieces: spans.map(([start, end, id]) => ({
        piece: word.slice(start, end),
        score: id >= 0 && id !== this.unkId ? this.pieces[id][1] : null,
      })),
      score,
    };
  }
}
