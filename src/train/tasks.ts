/**
 * What one training step computes for each kind of job, as Hugging Face's
 * model heads and data collators define it: causal LM (labels are the inputs
 * shifted by one), masked LM (DataCollatorForLanguageModeling's 15% with
 * 80/10/10), sequence classification (cross-entropy, or MSE with one label),
 * and seq2seq with teacher forcing (decoder_input_ids = shift_right(labels)).
 */
import { ShapeError } from '../errors.js';
import type { EncoderModel } from '../models/bert.js';
import type { CausalLM } from '../nn/causal-lm.js';
import type { HookPoints } from '../nn/hooks.js';
import { Tensor } from '../tensor/tensor.js';
import { trainingHooks, type DropoutSite } from './dropout.js';
import { IGNORE_INDEX, crossEntropy, mseLoss } from './losses.js';
import type { Random } from './random.js';
import type { StepLoss } from './trainer.js';

/**
 * Train mode: the dropout a step applies (`dropoutSites(model.config)` for
 * what Hugging Face's `model.train()` does). Without it the step runs as in
 * eval mode, which is also how held-out losses are measured.
 */
export interface TrainingOptions {
  dropout?: readonly DropoutSite[];
}

/** Rows of equal length as an i32 [rows, length] tensor. */
export function idsBatch(rows: readonly (readonly number[])[]): Tensor {
  const width = rows[0]?.length ?? 0;
  if (rows.some((r) => r.length !== width)) throw new ShapeError(`batch rows differ in length: ${rows.map((r) => r.length).join(', ')}`);
  return Tensor.i32(rows.flat(), [rows.length, width]);
}

/** Right-pad rows to the longest with `padId`; returns ids and the attention mask. */
export function padBatch(rows: readonly (readonly number[])[], padId: number, fill = padId): { ids: number[][]; mask: number[][] } {
  const width = Math.max(...rows.map((r) => r.length));
  return {
    ids: rows.map((r) => [...r, ...new Array<number>(width - r.length).fill(fill)]),
    mask: rows.map((r) => [...new Array<number>(r.length).fill(1), ...new Array<number>(width - r.length).fill(0)]),
  };
}

/**
 * HF run_clm's `group_texts`: the token stream cut into blocks of
 * `blockSize` (a remainder shorter than a block is dropped).
 */
export function packBlocks(tokens: readonly number[], blockSize: number): number[][] {
  const blocks: number[][] = [];
  for (let i = 0; i + blockSize <= tokens.length; i += blockSize) blocks.push(tokens.slice(i, i + blockSize));
  return blocks;
}

/**
 * Causal LM loss of a batch of equal-length rows: position t predicts token
 * t + 1 (HF shifts labels inside *ForCausalLM), mean over all predictions.
 */
export function causalLmLoss(model: CausalLM, options: TrainingOptions = {}): (batch: number[][], random?: Random) => StepLoss {
  return (batch, random) => {
    const ids = idsBatch(batch);
    const [rows, seq] = ids.shape;
    const logits = model.forward(ids, { hooks: trainingHooks(options.dropout, random) }).logits.slice(1, 0, seq - 1); // [rows, seq − 1, vocab]
    const labels = idsBatch(batch.map((r) => r.slice(1)));
    return { loss: crossEntropy(logits, labels), tokens: rows * seq };
  };
}

export interface MaskingOptions {
  maskTokenId: number;
  vocabSize: number;
  /** Ids never masked ([CLS], [SEP], [PAD]…). */
  specialIds: ReadonlySet<number>;
  /** Share of tokens to predict (0.15, BERT §3.1). */
  probability?: number;
}

/**
 * DataCollatorForLanguageModeling.torch_mask_tokens: each non-special token
 * is chosen with probability 0.15; of those 80% become [MASK], 10% a random
 * token and 10% stay; labels are the original ids at chosen positions and −100
 * elsewhere. Seeded through `random`.
 */
export function maskTokens(rows: readonly (readonly number[])[], random: Random, o: MaskingOptions): { inputs: number[][]; labels: number[][] } {
  const p = o.probability ?? 0.15;
  const inputs = rows.map((r) => [...r]);
  const labels = rows.map((r) => r.map(() => IGNORE_INDEX));
  rows.forEach((row, i) => {
    row.forEach((id, j) => {
      if (o.specialIds.has(id) || random.next() >= p) return;
      labels[i][j] = id;
      const u = random.next();
      if (u < 0.8) inputs[i][j] = o.maskTokenId;
      else if (u < 0.9) inputs[i][j] = random.int(o.vocabSize);
    });
  });
  return { inputs, labels };
}

/** Masked LM loss of a BERT-family *ForMaskedLM on padded rows. */
export function maskedLmLoss(model: EncoderModel, padId: number, masking: MaskingOptions, options: TrainingOptions = {}): (batch: number[][], random: Random) => StepLoss {
  return (batch, random) => {
    const padded = padBatch(batch, padId);
    const { inputs, labels } = maskTokens(padded.ids, random, { ...masking, specialIds: new Set([...masking.specialIds, padId]) });
    const logits = model.forward({ inputIds: idsBatch(inputs), attentionMask: idsBatch(padded.mask) }, { hooks: trainingHooks(options.dropout, random) }).logits;
    if (!logits) throw new ShapeError('maskedLmLoss: the model has no masked-LM head');
    return { loss: crossEntropy(logits, idsBatch(labels)), tokens: batch.reduce((n, r) => n + r.length, 0) };
  };
}

export interface ClassificationExample {
  ids: number[];
  /** A class index, or a target value when the model has one label (regression, as HF's problem_type). */
  label: number;
}

/** Sequence classification loss: cross-entropy over num_labels classes, MSE when there is one label (HF). */
export function classificationLoss(model: EncoderModel, padId: number, options: TrainingOptions = {}): (batch: ClassificationExample[], random?: Random) => StepLoss {
  return (batch, random) => {
    const padded = padBatch(
      batch.map((e) => e.ids),
      padId,
    );
    const logits = model.forward({ inputIds: idsBatch(padded.ids), attentionMask: idsBatch(padded.mask) }, { hooks: trainingHooks(options.dropout, random) }).logits;
    if (!logits) throw new ShapeError('classificationLoss: the model has no classification head');
    const numLabels = logits.shape[logits.rank - 1];
    const loss =
      numLabels === 1
        ? mseLoss(logits.reshape([batch.length]), Tensor.f32(batch.map((e) => e.label)))
        : crossEntropy(logits, Tensor.i32(batch.map((e) => e.label)));
    return { loss, tokens: batch.reduce((n, e) => n + e.ids.length, 0) };
  };
}

/**
 * HF's `shift_tokens_right`: the decoder reads [start] + labels[:-1], with
 * −100 (ignored label positions) replaced by the pad id.
 */
export function shiftRight(labels: readonly number[], decoderStartTokenId: number, padId: number): number[] {
  return [decoderStartTokenId, ...labels.slice(0, -1)].map((id) => (id === IGNORE_INDEX ? padId : id));
}

/** An encoder-decoder with a teacher-forced forward pass (T5, BART, the 2017 Transformer). */
export interface Seq2SeqLM {
  forward(ids: Tensor, attentionMask: Tensor, decoderIds: Tensor, hooks?: HookPoints): { decoder: { logits: Tensor } };
}

export interface Seq2SeqExample {
  source: number[];
  /** The target ids, ending with EOS. */
  target: number[];
}

/** Seq2seq loss with teacher forcing: padded targets become −100 so they take no part. */
export function seq2seqLoss(model: Seq2SeqLM, o: { padId: number; decoderStartTokenId: number } & TrainingOptions): (batch: Seq2SeqExample[], random?: Random) => StepLoss {
  return (batch, random) => {
    const source = padBatch(
      batch.map((e) => e.source),
      o.padId,
    );
    const labels = padBatch(
      batch.map((e) => e.target),
      o.padId,
      IGNORE_INDEX,
    ).ids;
    const decoderIds = labels.map((l) => shiftRight(l, o.decoderStartTokenId, o.padId));
    const { decoder } = model.forward(idsBatch(source.ids), idsBatch(source.mask), idsBatch(decoderIds), trainingHooks(o.dropout, random));
    return { loss: crossEntropy(decoder.logits, idsBatch(labels)), tokens: batch.reduce((n, e) => n + e.source.length + e.target.length, 0) };
  };
}
