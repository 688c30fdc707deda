/**
 * Text classification (HF `text-classification` pipeline): a text, or a pair
 * such as premise/hypothesis, through a *ForSequenceClassification model, then
 * softmax over the classes (sigmoid for multi-label models or a single output),
 * labelled by config `id2label`.
 */
import { ConfigError, UnsupportedError } from '../errors.js';
import type { FileSystem } from '../io/source.js';
import { loadBertFolder, type EncoderModel } from '../models/bert.js';
import { chunks, encodeBatch, type EncoderTokenizer, type TextInput } from './text-batch.js';

export interface LabelScore {
  label: string;
  score: number;
}

export type ScoreFunction = 'softmax' | 'sigmoid' | 'none';

export interface ClassifyOptions {
  /** Labels per input, best first: a number, or 'all' (default 1, as the HF pipeline). */
  topK?: number | 'all';
  /** Default: sigmoid for problem_type multi_label_classification or a single label, else softmax (HF's rule). */
  functionToApply?: ScoreFunction;
  batchSize?: number;
}

/** Softmax of one row in float64, max-subtracted. */
export function softmaxRow(logits: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  const exps = Array.from(logits, (x) => Math.exp(x - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

export function sigmoidRow(logits: ArrayLike<number>): number[] {
  return Array.from(logits, (x) => 1 / (1 + Math.exp(-x)));
}

/** The score function HF's pipeline picks for a model config. */
export function defaultScoreFunction(model: EncoderModel): ScoreFunction {
  const problemType = model.config.raw.problem_type;
  if (problemType === 'multi_label_classification' || model.config.numLabels === 1) return 'sigmoid';
  return 'softmax';
}

export function applyScoreFunction(logits: ArrayLike<number>, fn: ScoreFunction): number[] {
  if (fn === 'softmax') return softmaxRow(logits);
  if (fn === 'sigmoid') return sigmoidRow(logits);
  if (fn === 'none') return Array.from(logits);
  throw new ConfigError(`functionToApply must be softmax, sigmoid or none, found ${JSON.stringify(fn)}`);
}

export function labelOf(model: EncoderModel, index: number): string {
  return model.config.id2label[index] ?? `LABEL_${index}`;
}

/** Labels sorted best first, cut to topK. */
export function rankLabels(model: EncoderModel, scores: readonly number[], topK: number | 'all'): LabelScore[] {
  if (topK !== 'all' && (!Number.isSafeInteger(topK) || topK < 1)) throw new ConfigError(`topK must be a positive integer or 'all', found ${topK}`);
  const ranked = scores.map((score, i) => ({ label: labelOf(model, i), score, i })).sort((a, b) => b.score - a.score || a.i - b.i);
  return ranked.slice(0, topK === 'all' ? ranked.length : topK).map(({ label, score }) => ({ label, score }));
}

export class TextClassifier {
  constructor(
    readonly model: EncoderModel,
    readonly tokenizer: EncoderTokenizer,
  ) {
    if (model.head !== 'sequence-classification') {
      throw new UnsupportedError(`text classification needs a *ForSequenceClassification model; this one has the "${model.head}" head (${model.config.file})`);
    }
  }

  static async fromFolder(fs: FileSystem, dir: string, tokenizer: EncoderTokenizer): Promise<TextClassifier> {
    return new TextClassifier(await loadBertFolder(fs, dir), tokenizer);
  }

  /** Raw class logits per input, [inputs][labels]. */
  logits(inputs: readonly TextInput[], batchSize = 32): number[][] {
    const c = this.model.config;
    const out: number[][] = [];
    for (const batch of chunks(inputs, batchSize)) {
      const encoded = encodeBatch(this.tokenizer, batch, { maxLength: maxTokens(this.model), padId: c.padTokenId ?? 0 });
      const logits = this.model.forward(encoded.inputs).logits; // [batch, labels]
      if (!logits) throw new UnsupportedError('the model returned no logits');
      for (let b = 0; b < batch.length; b++) out.push(Array.from(logits.at(b).f32()));
    }
    return out;
  }

  /** One text, or a [text, pair] tuple → its labels, best first. */
  classify(input: TextInput, options: ClassifyOptions = {}): LabelScore[] {
    return this.classifyBatch([input], options)[0];
  }

  /** Many inputs (texts or [text, pair] tuples) → one label list each, batched. */
  classifyBatch(inputs: readonly TextInput[], options: ClassifyOptions = {}): LabelScore[][] {
    const fn = options.functionToApply ?? defaultScoreFunction(this.model);
    return this.logits(inputs, options.batchSize).map((row) => rankLabels(this.model, applyScoreFunction(row, fn), options.topK ?? 1));
  }
}

/** Tokens per input the model's position table allows. */
export function maxTokens(model: EncoderModel): number {
  const c = model.config;
  const roberta = c.modelType === 'roberta' || c.modelType === 'xlm-roberta';
  return roberta ? c.maxPositionEmbeddings - (c.padTokenId ?? 1) - 1 : c.maxPositionEmbeddings;
}

/** Classify with a model and tokenizer in one call. */
export function classify(model: EncoderModel, tokenizer: EncoderTokenizer, input: TextInput, options: ClassifyOptions = {}): LabelScore[] {
  return new TextClassifier(model, tokenizer).classify(input, options);
}
