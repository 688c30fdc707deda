/**
 * Sentence-embedding training (Reimers & Gurevych 2019; the in-batch
 * negatives loss of sentence-transformers' MultipleNegativesRankingLoss,
 * Henderson et al. 2017): mean-pool the encoder's last hidden states over real
 * tokens, L2-normalise, and train each anchor to pick its own positive among
 * every positive in the batch: cross-entropy over scale · cos(anchor, positive).
 */
import type { BertModel } from '../models/bert.js';
import type { HookPoints } from '../nn/hooks.js';
import { matmul, normalizeL2, scale } from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import { crossEntropy } from './losses.js';
import type { Random } from './random.js';
import { trainingHooks } from './dropout.js';
import { idsBatch, padBatch, type TrainingOptions } from './tasks.js';
import type { StepLoss } from './trainer.js';

/** Mean of the last hidden states over real tokens, L2-normalised: [rows, d]. */
export function meanPooledEmbeddings(encoder: BertModel, rows: readonly (readonly number[])[], padId: number, hooks?: HookPoints): Tensor {
  const { ids, mask } = padBatch(rows, padId);
  const hidden = encoder.forward({ inputIds: idsBatch(ids), attentionMask: idsBatch(mask) }, { hooks }).lastHiddenState; // [rows, seq, d]
  const [count, seq, d] = hidden.shape;
  // Mean pooling as one product: each row's weights are mask / (number of real tokens).
  const weights = new Float32Array(count * seq);
  mask.forEach((m, r) => {
    const real = m.reduce((a, b) => a + b, 0);
    m.forEach((v, j) => (weights[r * seq + j] = v / real));
  });
  const pooled = matmul(new Tensor('f32', [count, 1, seq], weights), hidden).reshape([count, d]); // [rows, d]
  return normalizeL2(pooled);
}

export interface Pair {
  anchor: number[];
  positive: number[];
}

/** MultipleNegativesRankingLoss with sentence-transformers' default scale 20. */
export function inBatchNegativesLoss(encoder: BertModel, padId: number, similarityScale = 20, options: TrainingOptions = {}): (batch: Pair[], random?: Random) => StepLoss {
  return (batch, random) => {
    // Each pass draws its own masks, as the two sentence-transformers forward passes do.
    const anchors = meanPooledEmbeddings(encoder, batch.map((p) => p.anchor), padId, trainingHooks(options.dropout, random));
    const positives = meanPooledEmbeddings(encoder, batch.map((p) => p.positive), padId, trainingHooks(options.dropout, random));
    const scores = scale(matmul(anchors, positives, { transposeB: true }), similarityScale); // [batch, batch]
    const labels = Tensor.i32(batch.map((_, i) => i));
    return { loss: crossEntropy(scores, labels), tokens: batch.reduce((n, p) => n + p.anchor.length + p.positive.length, 0) };
  };
}
