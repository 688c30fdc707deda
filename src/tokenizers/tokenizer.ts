/**
 * The tokenizer pipeline, in the order Hugging Face's `tokenizers` runs it:
 *
 *   text → added tokens cut out → normalizer → pre-tokenizer → model → post-processor
 *
 * and back: ids → token strings → decoder → text (→ transformers' clean-up).
 */
import { ConfigError, UnsupportedError } from '../errors.js';
import { AddedVocabulary, addedTokensFromJson, type AddedToken, type Segment } from './added-tokens.js';
import { cleanUpTokenization, decoderFromJson, type Decoder } from './decoders.js';
import { emptyEncoding, type Encoding } from './encoding.js';
import { asNumber, asObject, asString, JsonPath, optional, type JsonObject } from './json.js';
import { modelFromJson, type Model, type ModelTrace } from './models/index.js';
import { NormalizedString } from './normalized-string.js';
import { normalizerFromJson, type Normalizer } from './normalizers.js';
import { defaultProcess, postProcessorFromJson, type PostProcessor } from './post-processors.js';
import { preTokenizerFromJson, type PreTokenizer } from './pre-tokenizers.js';
import { readSpecialTokens, type SpecialTokenName } from './special-tokens.js';
import { wellFormed } from './unicode.js';
import { pad, paddedLength, truncate, type PaddingOptions, type Side, type TruncationOptions, type TruncationStrategy } from './truncation.js';

export interface TokenizerParts {
  model: Model;
  normalizer: Normalizer | null;
  preTokenizer: PreTokenizer | null;
  postProcessor: PostProcessor | null;
  decoder: Decoder | null;
  addedTokens: AddedToken[];
  /** `tokenizer_config.json` (transformers-level settings), if any. */
  config?: JsonObject;
  specialTokensMap?: JsonObject;
  truncation?: TruncationOptions | null;
  padding?: PaddingOptions | null;
}

export interface EncodeOptions {
  addSpecialTokens?: boolean;
  /** The second sequence of a pair. */
  pair?: string;
}

export interface BatchOptions {
  addSpecialTokens?: boolean;
  padding?: 'longest' | 'max_length' | false;
  paddingSide?: Side;
  maxLength?: number;
  /** true: `longest_first` at `maxLength`. */
  truncation?: boolean | TruncationStrategy;
  /** Which end loses tokens when truncating (transformers' `truncation_side`). */
  truncationSide?: Side;
  padToMultipleOf?: number;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
  /** transformers' `clean_up_tokenization`; defaults to `clean_up_tokenization_spaces` of tokenizer_config.json. */
  cleanUpTokenizationSpaces?: boolean;
}

/** One step of `explain`: an added token found in the text, or a piece of text and what became of it. */
export type ExplainedSegment =
  | { kind: 'added-token'; text: string; id: number; special: boolean }
  | {
      kind: 'text';
      /** The text after the normalizer. */
      normalized: string;
      preTokens: { text: string; trace: ModelTrace; tokens: string[]; ids: number[] }[];
    };

export interface Explanation {
  text: string;
  segments: ExplainedSegment[];
  /** The final encoding, with special tokens added. */
  encoding: Encoding;
}

export interface FromJsonOptions {
  config?: unknown;
  specialTokensMap?: unknown;
  /** Name used in error messages. */
  file?: string;
}

export class Tokenizer {
  readonly model: Model;
  readonly normalizer: Normalizer | null;
  readonly preTokenizer: PreTokenizer | null;
  readonly postProcessor: PostProcessor | null;
  readonly decoder: Decoder | null;
  readonly addedVocabulary: AddedVocabulary;
  readonly config: JsonObject;
  /** bos/eos/unk/sep/pad/cls/mask tokens named by tokenizer_config.json or special_tokens_map.json. */
  readonly specialTokens: Partial<Record<SpecialTokenName, string>>;
  private readonly truncation: TruncationOptions | null;
  private readonly padding: PaddingOptions | null;

  constructor(parts: TokenizerParts) {
    this.model = parts.model;
    this.normalizer = parts.normalizer;
    this.preTokenizer = parts.preTokenizer;
    this.postProcessor = parts.postProcessor;
    this.decoder = parts.decoder;
    this.addedVocabulary = new AddedVocabulary(parts.addedTokens, parts.normalizer);
    this.config = parts.config ?? {};
    this.specialTokens = readSpecialTokens(this.config, parts.specialTokensMap ?? {});
    this.truncation = parts.truncation ?? null;
    this.padding = parts.padding ?? null;
  }

  /** Builds a tokenizer from a parsed `tokenizer.json` (and, optionally, the transformers config files). */
  static fromJSON(json: unknown, options: FromJsonOptions = {}): Tokenizer {
    const where = new JsonPath(options.file ?? 'tokenizer.json', '');
    const obj = asObject(json, where);
    if (obj.model === undefined) where.at('model').fail('the model object', undefined);
    const component = <T>(key: string, read: (v: unknown, at: JsonPath) => T): T | null =>
      obj[key] === undefined || obj[key] === null ? null : read(obj[key], where.at(key));
    return new Tokenizer({
      model: modelFromJson(obj.model, where.at('model')),
      normalizer: component('normalizer', normalizerFromJson),
      preTokenizer: component('pre_tokenizer', preTokenizerFromJson),
      postProcessor: component('post_processor', postProcessorFromJson),
      decoder: component('decoder', decoderFromJson),
      addedTokens: component('added_tokens', addedTokensFromJson) ?? [],
      truncation: component('truncation', readTruncation),
      padding: component('padding', readPadding),
      config: options.config === undefined ? undefined : asObject(options.config, new JsonPath('tokenizer_config.json', '')),
      specialTokensMap:
        options.specialTokensMap === undefined ? undefined : asObject(options.specialTokensMap, new JsonPath('special_tokens_map.json', '')),
    });
  }

  /** Vocabulary size including added tokens (transformers' `len(tokenizer)`). */
  get vocabSize(): number {
    const vocab = this.model.vocab();
    let extra = 0;
    for (const t of this.addedVocabulary.tokens) if (!vocab.has(t.content)) extra++;
    return vocab.size + extra;
  }

  tokenToId(token: string): number | undefined {
    return this.addedVocabulary.idOf(token) ?? this.model.tokenToId(token);
  }

  idToToken(id: number): string | undefined {
    return this.addedVocabulary.byIdOf(id)?.content ?? this.model.idToToken(id);
  }

  private specialId(name: SpecialTokenName): number | undefined {
    const token = this.specialTokens[name];
    return token === undefined ? undefined : this.tokenToId(token);
  }

  get bosTokenId(): number | undefined { return this.specialId('bos'); }
  get eosTokenId(): number | undefined { return this.specialId('eos'); }
  get padTokenId(): number | undefined { return this.specialId('pad'); }
  get unkTokenId(): number | undefined { return this.specialId('unk'); }
  get clsTokenId(): number | undefined { return this.specialId('cls'); }
  get sepTokenId(): number | undefined { return this.specialId('sep'); }
  get maskTokenId(): number | undefined { return this.specialId('mask'); }

  /** Added tokens cut out, then the text between them normalized. */
  private segments(text: string): Segment[] {
    // The Rust library receives UTF-8, in which a lone surrogate has already become U+FFFD.
    return this.addedVocabulary.extractAndNormalize(new NormalizedString(wellFormed(text)));
  }

  private preTokens(segment: NormalizedString): NormalizedString[] {
    return this.preTokenizer === null ? [segment] : this.preTokenizer.split(segment);
  }

  /** Encodes one sequence without special tokens; every token has type id `typeId`. */
  private encodeSequence(text: string, typeId: number): Encoding {
    const e = emptyEncoding();
    const push = (id: number, token: string, offsets: [number, number]): void => {
      e.ids.push(id);
      e.tokens.push(token);
      e.offsets.push(offsets);
    };
    for (const segment of this.segments(text)) {
      if (segment.token !== null) {
        push(segment.token.id, segment.ns.text, segment.ns.originalSpan(0, segment.ns.length));
        continue;
      }
      for (const word of this.preTokens(segment.ns)) {
        for (const t of this.model.tokenize(word.text)) push(t.id, t.value, word.originalSpan(t.start, t.end));
      }
    }
    e.typeIds = e.ids.map(() => typeId);
    e.attentionMask = e.ids.map(() => 1);
    e.specialTokensMask = e.ids.map(() => 0);
    return e;
  }

  private postProcess(a: Encoding, b: Encoding | null, addSpecialTokens: boolean, truncation: TruncationOptions | null): Encoding {
    let [ta, tb] = [a, b];
    if (truncation !== null) {
      const added = addSpecialTokens && this.postProcessor !== null ? this.postProcessor.addedTokens(b !== null) : 0;
      [ta, tb] = truncate(a, b, added, truncation);
    }
    return this.postProcessor === null ? defaultProcess(ta, tb) : this.postProcessor.process(ta, tb, addSpecialTokens);
  }

  /** Encodes a text (or a pair with `pair`), with the model's special tokens unless `addSpecialTokens` is false. */
  encode(text: string, options: EncodeOptions = {}): Encoding {
    const addSpecialTokens = options.addSpecialTokens ?? true;
    const a = this.encodeSequence(text, 0);
    const b = options.pair === undefined ? null : this.encodeSequence(options.pair, 1);
    const encoding = this.postProcess(a, b, addSpecialTokens, this.truncation);
    if (this.padding === null) return encoding;
    return pad(encoding, paddedLength([encoding], this.padding), this.padding);
  }

  /** Encodes many texts (or [text, pair] tuples), with optional truncation and padding. */
  encodeBatch(inputs: (string | [string, string])[], options: BatchOptions = {}): Encoding[] {
    const addSpecialTokens = options.addSpecialTokens ?? true;
    let truncation = this.truncation;
    if (options.truncation !== undefined && options.truncation !== false) {
      if (options.maxLength === undefined) throw new ConfigError('encodeBatch: truncation needs maxLength');
      truncation = {
        maxLength: options.maxLength,
        strategy: options.truncation === true ? 'longest_first' : options.truncation,
        direction: options.truncationSide ?? (this.config.truncation_side === 'left' ? 'left' : 'right'),
      };
    } else if (options.truncation === false) {
      truncation = null;
    }
    const encodings = inputs.map((input) => {
      const [text, pair] = typeof input === 'string' ? [input, null] : input;
      const a = this.encodeSequence(text, 0);
      const b = pair === null ? null : this.encodeSequence(pair, 1);
      return this.postProcess(a, b, addSpecialTokens, truncation);
    });
    const padding = this.batchPadding(options);
    if (padding === null) return encodings;
    const length = paddedLength(encodings, padding);
    return encodings.map((e) => pad(e, length, padding));
  }

  private batchPadding(options: BatchOptions): PaddingOptions | null {
    if (options.padding === false) return null;
    if (options.padding === undefined) return this.padding;
    // Rust's padding default is `[PAD]`; it applies when the config names no pad token.
    const padToken = this.specialTokens.pad ?? this.padding?.padToken ?? (this.tokenToId('[PAD]') === undefined ? undefined : '[PAD]');
    const padId = padToken === undefined ? undefined : this.tokenToId(padToken);
    if (padToken === undefined || padId === undefined) {
      throw new ConfigError('encodeBatch: padding needs a pad token, but tokenizer_config.json / special_tokens_map.json name none in the vocabulary');
    }
    return {
      strategy: options.padding,
      maxLength: options.maxLength,
      side: options.paddingSide ?? this.configPaddingSide(),
      padId,
      padToken,
      padTypeId: this.padding?.padTypeId ?? 0,
      padToMultipleOf: options.padToMultipleOf,
    };
  }

  private configPaddingSide(): Side {
    return this.config.padding_side === 'left' ? 'left' : 'right';
  }

  /** The cleanup default: tokenizer_config.json's flag, else transformers' class default (true only for BERT's WordPiece). */
  get cleanUpTokenizationSpaces(): boolean {
    const flag = this.config.clean_up_tokenization_spaces;
    if (typeof flag === 'boolean') return flag;
    return this.model.type === 'WordPiece';
  }

  /** Ids back to text: token strings through the decoder, then transformers' optional clean-up. */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const skip = options.skipSpecialTokens ?? false;
    const tokens: string[] = [];
    for (const id of ids) {
      const token = this.idToToken(id);
      if (token === undefined) continue;
      if (skip && this.addedVocabulary.isSpecial(token)) continue;
      tokens.push(token);
    }
    const text = this.decoder === null ? tokens.join(' ') : this.decoder.decodeChain(tokens).join('');
    return options.cleanUpTokenizationSpaces ?? this.cleanUpTokenizationSpaces ? cleanUpTokenization(text) : text;
  }

  /** Every step of encoding `text`: added tokens, normalized text, pre-tokens and what the model did to each. */
  explain(text: string, options: EncodeOptions = {}): Explanation {
    const segments: ExplainedSegment[] = this.segments(text).map((segment): ExplainedSegment => {
      if (segment.token !== null) {
        return { kind: 'added-token', text: segment.ns.text, id: segment.token.id, special: segment.token.special };
      }
      return {
        kind: 'text',
        normalized: segment.ns.text,
        preTokens: this.preTokens(segment.ns).map((word) => {
          const tokens = this.model.tokenize(word.text);
          return { text: word.text, trace: this.model.trace(word.text), tokens: tokens.map((t) => t.value), ids: tokens.map((t) => t.id) };
        }),
      };
    });
    return { text, segments, encoding: this.encode(text, options) };
  }
}

function readTruncation(value: unknown, where: JsonPath): TruncationOptions {
  const obj = asObject(value, where);
  const stride = optional(obj, 'stride', where, asNumber) ?? 0;
  if (stride !== 0) throw new UnsupportedError(`${where.file}: truncation.stride is ${stride}; overflowing windows are not supported`);
  const strategies: Record<string, TruncationStrategy> = { LongestFirst: 'longest_first', OnlyFirst: 'only_first', OnlySecond: 'only_second' };
  const strategyName = optional(obj, 'strategy', where, asString) ?? 'LongestFirst';
  const strategy = strategies[strategyName];
  if (strategy === undefined) where.at('strategy').fail(Object.keys(strategies).join(' or '), strategyName);
  const direction = optional(obj, 'direction', where, asString) ?? 'Right';
  return { maxLength: optional(obj, 'max_length', where, asNumber) ?? 512, strategy, direction: direction === 'Left' ? 'left' : 'right' };
}

function readPadding(value: unknown, where: JsonPath): PaddingOptions {
  const obj = asObject(value, where);
  const strategy = obj.strategy ?? 'BatchLongest';
  let fixed: number | undefined;
  if (strategy !== 'BatchLongest') {
    const fixedObj = asObject(strategy, where.at('strategy'));
    fixed = asNumber(fixedObj.Fixed, where.at('strategy').at('Fixed'));
  }
  return {
    strategy: fixed === undefined ? 'longest' : 'max_length',
    maxLength: fixed,
    side: obj.direction === 'Left' ? 'left' : 'right',
    padId: optional(obj, 'pad_id', where, asNumber) ?? 0,
    padTypeId: optional(obj, 'pad_type_id', where, asNumber) ?? 0,
    padToken: optional(obj, 'pad_token', where, asString) ?? '[PAD]',
    padToMultipleOf: optional(obj, 'pad_to_multiple_of', where, asNumber),
  };
}
