/**
 * Fill-mask (HF `fill-mask` pipeline): BERT's masked-language-model objective
 * used as a job. The text holds the tokenizer's mask token ([MASK], <mask>);
 * for each mask the model scores every vocabulary entry; softmax gives
 * probabilities and the top k are returned with the text they would make.
 */
import { ConfigError, UnsupportedError } from '../errors.js';
import type { FileSystem } from '../io/source.js';
import { loadBertFolder, type EncoderModel } from '../models/bert.js';
import { maxTokens, softmaxRow } from './classify.js';
import { encodeBatch, type EncoderTokenizer, type TextInput } from './text-batch.js';

export interface FillMaskCandidate {
  score: number;
  token: number;
  /** The token as text (`decode([token])`). */
  tokenStr: string;
  /** The input with this token in place of the mask (special tokens removed when it is the only mask). */
  sequence: string;
}

export interface FillMaskOptions {
  /** Candidates per mask (default 5, as the HF pipeline). */
  topK?: number;
  /** Only score these tokens (each must be one vocabulary entry). */
  targets?: readonly string[];
}

/** Indices of the k largest values, ties broken by the lower index. */
export function topKIndices(values: ArrayLike<number>, k: number, among?: readonly number[]): number[] {
  const candidates = among ?? Array.from({ length: values.length }, (_, i) => i);
  return [...candidates].sort((a, b) => values[b] - values[a] || a - b).slice(0, k);
}

export class MaskFiller {
  readonly maskTokenId: number;

  constructor(
    readonly model: EncoderModel,
    readonly tokenizer: EncoderTokenizer,
  ) {
    if (model.head !== 'masked-lm') throw new UnsupportedError(`fill-mask needs a *ForMaskedLM model; this one has the "${model.head}" head (${model.config.file})`);
    const id = tokenizer.maskTokenId ?? (typeof model.config.raw.mask_token_id === 'number' ? model.config.raw.mask_token_id : undefined);
    if (id === undefined) throw new ConfigError('fill-mask: the tokenizer names no mask token (tokenizer_config.json / special_tokens_map.json "mask_token")');
    this.maskTokenId = id;
  }

  static async fromFolder(fs: FileSystem, dir: string, tokenizer: EncoderTokenizer): Promise<MaskFiller> {
    return new MaskFiller(await loadBertFolder(fs, dir), tokenizer);
  }

  private targetIds(targets: readonly string[]): number[] {
    return targets.map((t) => {
      const id = this.tokenizer.tokenToId(t);
      if (id === undefined) throw new ConfigError(`fill-mask target "${t}" is not a single token of the vocabulary`);
      return id;
    });
  }

  /** Candidates for each mask in the text (or [text, pair]), in the order the masks appear. */
  fill(text: TextInput, options: FillMaskOptions = {}): FillMaskCandidate[][] {
    const topK = options.topK ?? 5;
    if (!Number.isSafeInteger(topK) || topK < 1) throw new ConfigError(`topK must be a positive integer, found ${topK}`);
    const c = this.model.config;
    const batch = encodeBatch(this.tokenizer, [text], { maxLength: maxTokens(this.model), padId: c.padTokenId ?? 0 });
    const ids = batch.encodings[0].ids;
    const positions = ids.flatMap((id, i) => (id === this.maskTokenId ? [i] : []));
    if (positions.length === 0) {
      const token = this.tokenizer.idToToken(this.maskTokenId);
      throw new ConfigError(`fill-mask: no mask token ${token ?? `(id ${this.maskTokenId})`} in the input ${JSON.stringify(text)}`);
    }
    const logits = this.model.forward(batch.inputs).logits; // [1, seq, vocab]
    if (!logits) throw new UnsupportedError('the model returned no logits');
    const targets = options.targets ? this.targetIds(options.targets) : undefined;
    return positions.map((position) => {
      const row = logits.at(0).at(position).f32();
      const probs = softmaxRow(row);
      return topKIndices(probs, topK, targets).map((token) => {
        const filled = ids.map((id, i) => (i === position ? token : id));
        return {
          score: probs[token],
          token,
          tokenStr: this.tokenizer.decode([token]),
          // HF keeps special tokens when there are several masks, so the other masks stay visible.
          sequence: this.tokenizer.decode(filled, { skipSpecialTokens: positions.length === 1 }),
        };
      });
    });
  }
}

/** Fill the masks of one text with a model and tokenizer in one call. */
export function fillMask(model: EncoderModel, tokenizer: EncoderTokenizer, text: TextInput, options: FillMaskOptions = {}): FillMaskCandidate[][] {
  return new MaskFiller(model, tokenizer).fill(text, options);
}
