/**
 * Reading the residual stream in the vocabulary's terms.
 *
 * The logit lens (nostalgebraist 2020, "interpreting GPT: the logit lens"):
 * pass each layer's residual stream through the model's own final norm and
 * unembedding, and see which tokens it already predicts.
 *
 * Direct logit attribution (Elhage et al. 2021, "A Mathematical Framework for
 * Transformer Circuits"): in a pre-norm model the final residual stream is the
 * sum of the embeddings and every attention and MLP output, so with the final
 * norm's scale frozen at its value on this input (as TransformerLens's
 * `apply_ln_to_stack` does) the logit of a token splits exactly into one term
 * per component plus the biases.
 */
import { ShapeError, UnsupportedError } from '../errors.js';
import { layerNorm, linear, rmsNorm, scale as scaleBy } from '../ops/index.js';
import type { Tensor } from '../tensor/tensor.js';
import { ActivationCache } from './cache.js';
import { runWithCache } from './run.js';
import type { ReadOut, StackDescription, TraceableModel, TraceInputs } from './types.js';

/** Final norm then unembedding: [..., d] → [..., vocab]. */
export function applyReadOut(readOut: ReadOut, residual: Tensor): Tensor {
  if (readOut.kind === 'head') return readOut.apply(residual);
  let x = residual;
  if (readOut.norm) {
    x = readOut.norm.kind === 'layer' ? layerNorm(x, readOut.norm.weight, readOut.norm.bias, readOut.norm.eps) : rmsNorm(x, readOut.norm.weight, readOut.norm.eps);
  }
  if (readOut.scale !== 1) x = scaleBy(x, readOut.scale);
  return linear(x, readOut.weight, readOut.bias);
}

export interface TokenProbability {
  id: number;
  prob: number;
  logit: number;
}

/** Softmax of one row of logits, computed in float64. */
export function softmaxRow(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  const out = new Float64Array(logits.length);
  if (max === -Infinity) return out;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += out[i] = Math.exp(logits[i] - max);
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/** The k most probable tokens of one row of logits, most probable first (ties: lower id first); −∞ (banned) tokens are never listed. */
export function topTokens(logits: ArrayLike<number>, k: number): TokenProbability[] {
  const probs = softmaxRow(logits);
  const order = Array.from({ length: logits.length }, (_, i) => i).filter((i) => logits[i] !== -Infinity);
  order.sort((a, b) => logits[b] - logits[a] || a - b);
  return order.slice(0, Math.min(k, order.length)).map((id) => ({ id, prob: probs[id], logit: logits[id] }));
}

/** Row `b`, position `t` of a [batch, seq, n] tensor. */
export function rowAt(t: Tensor, b: number, pos: number): Float32Array {
  const [batch, seq, n] = t.shape;
  if (t.rank !== 3 || b < 0 || b >= batch || pos < 0 || pos >= seq) {
    throw new ShapeError(`row ${b}, position ${pos} is outside ${t} (expected [batch, seq, n])`);
  }
  return t.f32().subarray((b * seq + pos) * n, (b * seq + pos + 1) * n);
}

function lensStack(model: TraceableModel): { readOut: ReadOut; stack: StackDescription } {
  const d = model.description;
  const stack = d.stacks.find((s) => s.prefix === d.lensStack);
  if (!model.readOut || !stack) {
    throw new UnsupportedError(`${d.modelType}: the model has no language-model head (${d.summary}), so its residual stream cannot be read out to tokens`);
  }
  return { readOut: model.readOut, stack };
}

function cacheOf(model: TraceableModel, source: TraceInputs | ActivationCache, names: (name: string) => boolean): ActivationCache {
  return source instanceof ActivationCache ? source : runWithCache(model, source, { names }).cache;
}

export interface LensLayer {
  /** 'embeddings' for the stream entering layer 0, else 'layer i' (the stream leaving layer i). */
  label: string;
  /** The hook name read. */
  name: string;
  /** Top tokens at each position of the chosen batch row. */
  positions: TokenProbability[][];
}

export interface LogitLens {
  stack: StackDescription['prefix'];
  row: number;
  layers: LensLayer[];
}

export interface LogitLensOptions {
  /** Tokens per position (default 5). */
  k?: number;
  /** Batch row (default 0). */
  row?: number;
}

/**
 * The logit lens over the lens stack: the stream entering layer 0 and leaving
 * each layer, read out through the final norm and unembedding. The last entry
 * equals the model's own prediction.
 */
export function logitLens(model: TraceableModel, source: TraceInputs | ActivationCache, options: LogitLensOptions = {}): LogitLens {
  const { readOut, stack } = lensStack(model);
  const p = stack.prefix;
  const wanted = [`${p}blocks.0.resid_pre`, ...Array.from({ length: stack.layers }, (_, i) => `${p}blocks.${i}.resid_post`)];
  const cache = cacheOf(model, source, (n) => wanted.includes(n));
  const k = options.k ?? 5;
  const row = options.row ?? 0;
  const layers = wanted.map((name, i): LensLayer => {
    const logits = applyReadOut(readOut, cache.get(name)); // [batch, seq, vocab]
    const seq = logits.shape[1];
    return {
      label: i === 0 ? 'embeddings' : `layer ${i - 1}`,
      name,
      positions: Array.from({ length: seq }, (_, t) => topTokens(rowAt(logits, row, t), k)),
    };
  });
  return { stack: p, row, layers };
}

export interface AttributionComponent {
  /** The hook name whose output this is. */
  name: string;
  /** 'embeddings', 'L0 attn', 'L0 cross-attn', 'L0 mlp', … */
  label: string;
  /** Its share of the token's logit. */
  value: number;
}

export interface LogitAttribution {
  token: number;
  position: number;
  row: number;
  components: AttributionComponent[];
  /** The constant part: the final norm's bias and the unembedding bias, through the unembedding. */
  bias: number;
  /** Σ components + bias. */
  sum: number;
  /** The model's logit for `token` at `position`. */
  logit: number;
  /** True when sum = logit by construction (pre-norm models); see `note`. */
  exact: boolean;
  note: string;
}

const PRE_NORM_NOTE = 'pre-norm: the final residual stream is the sum of these components, so they add up to the logit';
const POST_NORM_NOTE =
  'post-norm: every residual add is followed by a LayerNorm that re-centres and re-scales the whole stream, ' +
  'so a component\'s output reaches the end only through later norms; each value is the component\'s direction read ' +
  'through the final read-out with its scale frozen, which shows what it writes towards but not its share of the logit, ' +
  'and the values do not add up to the logit';

/** The components whose outputs are added into the lens stack's residual stream, in order. */
export function residualComponents(stack: StackDescription): { name: string; label: string }[] {
  const p = stack.prefix;
  const out = [{ name: `${p}blocks.0.resid_pre`, label: 'embeddings' }];
  for (let i = 0; i < stack.layers; i++) {
    out.push({ name: `${p}blocks.${i}.attn.out`, label: `L${i} attn` });
    if (stack.crossAttention) out.push({ name: `${p}blocks.${i}.cross_attn.out`, label: `L${i} cross-attn` });
    out.push({ name: `${p}blocks.${i}.mlp.out`, label: `L${i} mlp` });
  }
  return out;
}

export interface AttributionOptions {
  token: number;
  position: number;
  row?: number;
}

/**
 * Direct logit attribution of `token`'s logit at `position` to the embeddings
 * and to each layer's attention and MLP output.
 */
export function directLogitAttribution(model: TraceableModel, source: TraceInputs | ActivationCache, options: AttributionOptions): LogitAttribution {
  const { readOut, stack } = lensStack(model);
  if (readOut.kind !== 'linear') {
    throw new UnsupportedError(
      `${model.description.modelType}: direct logit attribution needs a read-out that is linear after the final norm; this model's is ${readOut.describe}`,
    );
  }
  const row = options.row ?? 0;
  const components = residualComponents(stack);
  const finalName = `${stack.prefix}blocks.${stack.layers - 1}.resid_post`;
  const wanted = new Set([...components.map((c) => c.name), finalName]);
  const cache = cacheOf(model, source, (n) => wanted.has(n));
  const [vocab, d] = readOut.weight.shape;
  const { token, position } = options;
  if (!Number.isInteger(token) || token < 0 || token >= vocab) throw new ShapeError(`attribution: token ${token} is outside the vocabulary of ${vocab}`);

  const final = rowAt(cache.get(finalName), row, position);
  const norm = readOut.norm;
  const centre = norm?.kind === 'layer';
  const mean = (x: Float32Array): number => (centre ? x.reduce((a, v) => a + v, 0) / d : 0);
  // The final norm's scale on this input, frozen: √(var + ε) (LayerNorm) or √(mean x² + ε) (RMSNorm).
  let frozen = 1;
  if (norm) {
    const m = mean(final);
    let ss = 0;
    for (let j = 0; j < d; j++) ss += (final[j] - m) ** 2;
    frozen = Math.sqrt(ss / d + norm.eps);
  }
  const w = readOut.weight.f32().subarray(token * d, (token + 1) * d);
  const gain = norm?.weight.f32();
  const direction = Float64Array.from(w, (v, j) => (v * (gain ? gain[j] : 1) * readOut.scale) / frozen);

  const values: AttributionComponent[] = components.map(({ name, label }) => {
    const c = rowAt(cache.get(name), row, position);
    const m = mean(c);
    let value = 0;
    for (let j = 0; j < d; j++) value += (c[j] - m) * direction[j];
    return { name, label, value };
  });
  let bias = readOut.bias ? readOut.bias.f32()[token] : 0;
  const normBias = norm?.bias?.f32();
  if (normBias) for (let j = 0; j < d; j++) bias += normBias[j] * w[j] * readOut.scale;
  const logits = applyReadOut(readOut, cache.get(finalName));
  const logit = rowAt(logits, row, position)[token];
  const sum = values.reduce((a, c) => a + c.value, bias);
  const exact = model.description.norm === 'pre';
  return { token, position, row, components: values, bias, sum, logit, exact, note: exact ? PRE_NORM_NOTE : POST_NORM_NOTE };
}
