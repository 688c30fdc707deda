/**
 * Training losses with their gradients, in PyTorch's conventions (the ones
 * Hugging Face's models use): mean over the counted targets.
 */
import { ShapeError } from '../errors.js';
import { needsGrad, record } from '../tensor/autograd.js';
import { Tensor, sizeOf } from '../tensor/tensor.js';

/** Hugging Face marks positions that take no part in the loss (padding, unmasked tokens in MLM) with −100. */
export const IGNORE_INDEX = -100;

export interface CrossEntropyOptions {
  /** Labels equal to this are skipped (torch's ignore_index, −100 by default). */
  ignoreIndex?: number;
  /**
   * Label smoothing ε (Szegedy et al. 2016, as torch.nn.CrossEntropyLoss): the
   * target is (1 − ε)·one-hot + ε/vocab.
   */
  labelSmoothing?: number;
}

/**
 * Cross-entropy of logits [..., classes] against integer labels [...], averaged
 * over the labels that are not ignored. Returns a scalar tensor; 0 when every
 * label is ignored, as no position counts.
 */
export function crossEntropy(logits: Tensor, labels: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const ignore = options.ignoreIndex ?? IGNORE_INDEX;
  const eps = options.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps <= 1)) throw new ShapeError(`crossEntropy: labelSmoothing must be in [0, 1], got ${eps}`);
  const classes = logits.shape[logits.rank - 1];
  const rows = logits.size / classes;
  if (labels.size !== rows || sizeOf(logits.shape.slice(0, -1)) !== labels.size) {
    throw new ShapeError(`crossEntropy: labels ${labels} do not match the leading axes of logits ${logits}`);
  }
  const x = logits.f32();
  const y = labels.data;
  const probs = new Float32Array(x.length);
  let total = 0;
  let counted = 0;
  for (let r = 0; r < rows; r++) {
    const label = y[r];
    if (label === ignore) continue;
    if (!Number.isInteger(label) || label < 0 || label >= classes) {
      throw new ShapeError(`crossEntropy: label ${label} at position ${r} is outside [0, ${classes}) and is not the ignore index ${ignore}`);
    }
    const row = r * classes;
    let max = -Infinity;
    for (let j = 0; j < classes; j++) if (x[row + j] > max) max = x[row + j];
    let sum = 0;
    let sumLogits = 0;
    for (let j = 0; j < classes; j++) {
      const e = Math.exp(x[row + j] - max);
      probs[row + j] = e;
      sum += e;
      sumLogits += x[row + j];
    }
    const logZ = max + Math.log(sum);
    const inv = 1 / sum;
    for (let j = 0; j < classes; j++) probs[row + j] *= inv;
    // The mean of −log p over all classes, for label smoothing.
    const meanNegLogP = logZ - sumLogits / classes;
    total += (1 - eps) * (logZ - x[row + label]) + eps * meanNegLogP;
    counted++;
  }
  const loss = new Tensor('f32', [], new Float32Array([counted === 0 ? 0 : total / counted]));
  if (!needsGrad(logits)) return loss;
  // d/dlogits = (softmax − target) / counted, target = (1 − ε)·one-hot + ε/classes.
  return record(loss, 'crossEntropy', [logits], (g) => {
    const dx = new Float32Array(x.length);
    if (counted === 0) return [dx];
    const s = g[0] / counted;
    for (let r = 0; r < rows; r++) {
      const label = y[r];
      if (label === ignore) continue;
      const row = r * classes;
      for (let j = 0; j < classes; j++) dx[row + j] = s * (probs[row + j] - eps / classes);
      dx[row + label] -= s * (1 - eps);
    }
    return [dx];
  });
}

/** Mean squared error, mean over all elements (torch.nn.MSELoss). */
export function mseLoss(prediction: Tensor, target: Tensor): Tensor {
  if (prediction.size !== target.size) throw new ShapeError(`mseLoss: prediction ${prediction} and target ${target} differ in size`);
  const p = prediction.f32();
  const t = target.f32();
  let sum = 0;
  for (let i = 0; i < p.length; i++) sum += (p[i] - t[i]) ** 2;
  const loss = new Tensor('f32', [], new Float32Array([sum / p.length]));
  if (!needsGrad(prediction, target)) return loss;
  return record(loss, 'mseLoss', [prediction, target], (g) => {
    const dp = new Float32Array(p.length);
    for (let i = 0; i < p.length; i++) dp[i] = (2 * g[0] * (p[i] - t[i])) / p.length;
    return [dp, target.requiresGrad ? dp.map((v) => -v) : undefined];
  });
}
