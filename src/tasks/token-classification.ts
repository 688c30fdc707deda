/**
 * Token classification (HF `token-classification` / "ner" pipeline): a label
 * for every token, then word pieces gathered back into words and entities.
 *
 * Aggregation strategies, as transformers v4.47 defines them:
 * - `none`: one result per token (special tokens dropped).
 * - `simple`: tokens grouped into entities by their B-/I- tags.
 * - `first` / `average` / `max`: first the pieces of each word are merged (the
 *   first piece's label; the mean of the pieces' probabilities; the piece with
 *   the highest probability), then words are grouped like `simple`.
 * Entities labelled "O" are left out. Offsets are UTF-16 code units.
 */
import { ConfigError, UnsupportedError } from '../errors.js';
import type { FileSystem } from '../io/source.js';
import { loadBertFolder, type EncoderModel } from '../models/bert.js';
import { labelOf, maxTokens, softmaxRow } from './classify.js';
import { encodeBatch, type EncoderTokenizer } from './text-batch.js';

export type AggregationStrategy = 'none' | 'simple' | 'first' | 'average' | 'max';

export const AGGREGATION_STRATEGIES: readonly AggregationStrategy[] = ['none', 'simple', 'first', 'average', 'max'];

/** One token (`none`), or one grouped entity. */
export interface TokenEntity {
  /** `entity` for tokens (strategy none), `entityGroup` for grouped results. */
  entity?: string;
  entityGroup?: string;
  score: number;
  word: string;
  start: number;
  end: number;
  /** Token position in the encoded input (strategy none only). */
  index?: number;
}

export interface TokenClassificationOptions {
  aggregationStrategy?: AggregationStrategy;
  /** Labels to leave out (default ["O"]). */
  ignoreLabels?: readonly string[];
}

interface PreEntity {
  word: string;
  scores: number[];
  start: number;
  end: number;
  index: number;
  isSubword: boolean;
}

interface WordEntity {
  entity: string;
  score: number;
  word: string;
  start: number;
  end: number;
  index?: number;
}

function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** B-PER → ["B", "PER"]; a label without a B-/I- prefix continues like I-. */
export function bioTag(label: string): [string, string] {
  if (label.startsWith('B-')) return ['B', label.slice(2)];
  if (label.startsWith('I-')) return ['I', label.slice(2)];
  return ['I', label];
}

export class TokenClassifier {
  constructor(
    readonly model: EncoderModel,
    readonly tokenizer: EncoderTokenizer,
  ) {
    if (model.head !== 'token-classification') {
      throw new UnsupportedError(`token classification needs a *ForTokenClassification model; this one has the "${model.head}" head (${model.config.file})`);
    }
  }

  static async fromFolder(fs: FileSystem, dir: string, tokenizer: EncoderTokenizer): Promise<TokenClassifier> {
    return new TokenClassifier(await loadBertFolder(fs, dir), tokenizer);
  }

  /** Token strings back to text, with the tokenizer's decoder (`convert_tokens_to_string`). */
  private tokensToString(tokens: string[]): string {
    const decoder = this.tokenizer.decoder;
    return decoder === null ? tokens.join(' ') : decoder.decodeChain(tokens).join('');
  }

  /** Per real token: its softmax scores, text span and whether it continues the previous word. */
  private preEntities(text: string): PreEntity[] {
    const c = this.model.config;
    const batch = encodeBatch(this.tokenizer, [text], { maxLength: maxTokens(this.model), padId: c.padTokenId ?? 0 });
    const encoding = batch.encodings[0];
    const logits = this.model.forward(batch.inputs).logits; // [1, seq, labels]
    if (!logits) throw new UnsupportedError('the model returned no logits');
    const prefix = (this.tokenizer.model as { continuingSubwordPrefix?: string | null }).continuingSubwordPrefix ?? null;
    const out: PreEntity[] = [];
    encoding.ids.forEach((id, index) => {
      if (encoding.specialTokensMask[index]) return;
      const [start, end] = encoding.offsets[index];
      const wordRef = text.slice(start, end);
      let word = this.tokenizer.idToToken(id) ?? wordRef;
      // A tokenizer with a continuing-subword prefix (##) marks pieces in the token itself; otherwise HF guesses from the text.
      let isSubword = prefix !== null ? word.length !== wordRef.length : start > 0 && !text.slice(start - 1, start + 1).includes(' ');
      if (id === this.tokenizer.unkTokenId) {
        word = wordRef;
        isSubword = false;
      }
      out.push({ word, scores: softmaxRow(logits.at(0).at(index).f32()), start, end, index, isSubword });
    });
    return out;
  }

  private aggregateWord(pieces: PreEntity[], strategy: 'first' | 'average' | 'max'): WordEntity {
    const word = this.tokensToString(pieces.map((p) => p.word));
    let scores: number[];
    if (strategy === 'first') {
      scores = pieces[0].scores;
    } else if (strategy === 'max') {
      scores = pieces.reduce((best, p) => (Math.max(...p.scores) > Math.max(...best.scores) ? p : best)).scores;
    } else {
      scores = pieces[0].scores.map((_, j) => pieces.reduce((sum, p) => sum + p.scores[j], 0) / pieces.length);
    }
    const label = argmax(scores);
    return { entity: labelOf(this.model, label), score: scores[label], word, start: pieces[0].start, end: pieces[pieces.length - 1].end };
  }

  private aggregateWords(pre: PreEntity[], strategy: 'first' | 'average' | 'max'): WordEntity[] {
    const words: WordEntity[] = [];
    let group: PreEntity[] = [];
    for (const p of pre) {
      if (group.length > 0 && !p.isSubword) {
        words.push(this.aggregateWord(group, strategy));
        group = [];
      }
      group.push(p);
    }
    if (group.length > 0) words.push(this.aggregateWord(group, strategy));
    return words;
  }

  private groupSubEntities(entities: WordEntity[]): TokenEntity {
    const label = entities[0].entity;
    const dash = label.indexOf('-');
    return {
      entityGroup: dash >= 0 ? label.slice(dash + 1) : label,
      score: entities.reduce((sum, e) => sum + e.score, 0) / entities.length,
      word: this.tokensToString(entities.map((e) => e.word)),
      start: entities[0].start,
      end: entities[entities.length - 1].end,
    };
  }

  /** Adjacent entities with the same tag join unless the next one begins a new entity (B-). */
  private groupEntities(entities: WordEntity[]): TokenEntity[] {
    const groups: TokenEntity[] = [];
    let current: WordEntity[] = [];
    for (const e of entities) {
      if (current.length > 0) {
        const [bi, tag] = bioTag(e.entity);
        const [, lastTag] = bioTag(current[current.length - 1].entity);
        if (tag !== lastTag || bi === 'B') {
          groups.push(this.groupSubEntities(current));
          current = [];
        }
      }
      current.push(e);
    }
    if (current.length > 0) groups.push(this.groupSubEntities(current));
    return groups;
  }

  classify(text: string, options: TokenClassificationOptions = {}): TokenEntity[] {
    const strategy = options.aggregationStrategy ?? 'none';
    if (!AGGREGATION_STRATEGIES.includes(strategy)) {
      throw new ConfigError(`aggregation strategy must be one of ${AGGREGATION_STRATEGIES.join(', ')}, found ${JSON.stringify(strategy)}`);
    }
    const ignore = options.ignoreLabels ?? ['O'];
    const pre = this.preEntities(text);
    if (strategy === 'none') {
      return pre
        .map((p) => {
          const label = argmax(p.scores);
          return { entity: labelOf(this.model, label), score: p.scores[label], index: p.index, word: p.word, start: p.start, end: p.end };
        })
        .filter((e) => !ignore.includes(e.entity));
    }
    const words: WordEntity[] =
      strategy === 'simple'
        ? pre.map((p) => {
            const label = argmax(p.scores);
            return { entity: labelOf(this.model, label), score: p.scores[label], word: p.word, start: p.start, end: p.end };
          })
        : this.aggregateWords(pre, strategy);
    return this.groupEntities(words).filter((e) => !ignore.includes(e.entityGroup as string));
  }
}

/** Label the tokens of one text with a model and tokenizer in one call. */
export function classifyTokens(model: EncoderModel, tokenizer: EncoderTokenizer, text: string, options: TokenClassificationOptions = {}): TokenEntity[] {
  return new TokenClassifier(model, tokenizer).classify(text, options);
}
