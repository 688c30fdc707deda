/**
 * Fine-tuning a pretrained folder for a task it was not saved for, as
 * Hugging Face's `AutoModelFor*.from_pretrained` does: the encoder's weights
 * are kept, a head the checkpoint lacks is newly initialised (N(0,
 * initializer_range²) weights, zero biases, unit norm gains — HF's
 * `_init_weights`), weights of a head the task does not use are dropped, and
 * config.json is rewritten for the new head (`architectures`, `id2label`,
 * `label2id`) so the saved folder loads as that task's model.
 */
import { ConfigError, FormatError, UnsupportedError } from '../errors.js';
import { parseModelConfig, type BertConfig } from '../io/config.js';
import type { FileSystem } from '../io/source.js';
import { headOfArchitectures, isBertConfig, loadBert, type BertHead, type EncoderModel } from '../models/bert.js';
import type { Shape, Tensor } from '../tensor/tensor.js';
import { initParameters } from './init.js';

/** Every tensor as an f32 leaf that requires gradients: training runs in f32 whatever the checkpoint's dtype. */
export function trainableCopy(tensors: ReadonlyMap<string, Tensor>): Map<string, Tensor> {
  return new Map([...tensors].map(([name, t]) => [name, t.to('f32').clone().requireGrad()]));
}

/** The objects of a JSON-lines file (blank lines skipped); errors name the file and line. */
export async function readJsonLines(fs: FileSystem, path: string): Promise<Record<string, unknown>[]> {
  const records: Record<string, unknown>[] = [];
  (await fs.readText(path)).split('\n').forEach((text, i) => {
    if (text.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new FormatError(path, `line ${i + 1} is not JSON (${(error as Error).message})`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new FormatError(path, `line ${i + 1} must be a JSON object, found ${text.slice(0, 60)}`);
    records.push(value as Record<string, unknown>);
  });
  if (records.length === 0) throw new FormatError(path, 'no examples (the file has no non-empty line)');
  return records;
}

function stringField(record: Record<string, unknown>, field: string, path: string, line: number, optional = false): string | undefined {
  const value = record[field];
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'string') throw new FormatError(path, `example ${line}: field "${field}" must be a string, found ${JSON.stringify(value)}`);
  return value;
}

/** One labelled text: {"text": …, "text_pair"?: …, "label": "positive" | 1}. */
export interface LabelledText {
  text: string;
  textPair?: string;
  label: string | number;
}

export function labelledTexts(records: readonly Record<string, unknown>[], path: string): LabelledText[] {
  return records.map((r, i) => {
    const label = r.label;
    if (typeof label !== 'string' && !(typeof label === 'number' && Number.isInteger(label) && label >= 0)) {
      throw new FormatError(path, `example ${i + 1}: field "label" must be a class name or a non-negative integer, found ${JSON.stringify(label)}`);
    }
    return { text: stringField(r, 'text', path, i + 1)!, textPair: stringField(r, 'text_pair', path, i + 1, true), label };
  });
}

/** One source and target text: {"source": …, "target": …}. */
export interface TextPair {
  source: string;
  target: string;
}

export function textPairs(records: readonly Record<string, unknown>[], path: string): TextPair[] {
  return records.map((r, i) => ({ source: stringField(r, 'source', path, i + 1)!, target: stringField(r, 'target', path, i + 1)! }));
}

/** Two texts that belong together (a question and its answer, neighbouring sentences): {"anchor": …, "positive": …}. */
export function anchorPositives(records: readonly Record<string, unknown>[], path: string): { anchor: string; positive: string }[] {
  return records.map((r, i) => ({ anchor: stringField(r, 'anchor', path, i + 1)!, positive: stringField(r, 'positive', path, i + 1)! }));
}

/** A BERT-family encoder set up for a task, with the parameters to train under the names the saved folder uses. */
export interface EncoderTaskSetup {
  model: EncoderModel;
  params: Map<string, Tensor>;
  /** config.json for the saved folder. */
  config: Record<string, unknown>;
  /** Tensors this setup initialised because the checkpoint lacked them (HF logs the same list). */
  newlyInitialized: string[];
}

/** HF's class-name stem and base_model_prefix per model_type. */
const FAMILY: Record<BertConfig['modelType'], { stem: string; prefix: string }> = {
  bert: { stem: 'Bert', prefix: 'bert' },
  roberta: { stem: 'Roberta', prefix: 'roberta' },
  'xlm-roberta': { stem: 'XLMRoberta', prefix: 'roberta' },
  distilbert: { stem: 'DistilBert', prefix: 'distilbert' },
};

/** Tensor names of each head, by model_type family, with their shapes for a width d, vocabulary v and l labels. */
function headShapes(c: BertConfig, head: BertHead, labels: number): Map<string, Shape> {
  const d = c.hiddenSize;
  const linear = (name: string, out: number, inFeatures: number): [string, Shape][] => [
    [`${name}.weight`, [out, inFeatures]],
    [`${name}.bias`, [out]],
  ];
  const norm = (name: string): [string, Shape][] => [
    [`${name}.weight`, [d]],
    [`${name}.bias`, [d]],
  ];
  const family = c.modelType === 'distilbert' ? 'distilbert' : c.modelType === 'bert' ? 'bert' : 'roberta';
  if (head === 'masked-lm') {
    if (family === 'bert') return new Map([...linear('cls.predictions.transform.dense', d, d), ...norm('cls.predictions.transform.LayerNorm'), ['cls.predictions.bias', [c.vocabSize]]]);
    if (family === 'roberta') return new Map([...linear('lm_head.dense', d, d), ...norm('lm_head.layer_norm'), ['lm_head.bias', [c.vocabSize]]]);
    return new Map([...linear('vocab_transform', d, d), ...norm('vocab_layer_norm'), ['vocab_projector.bias', [c.vocabSize]]]);
  }
  if (head === 'sequence-classification') {
    if (family === 'bert') return new Map([...linear('bert.pooler.dense', d, d), ...linear('classifier', labels, d)]);
    if (family === 'roberta') return new Map([...linear('classifier.dense', d, d), ...linear('classifier.out_proj', labels, d)]);
    return new Map([...linear('pre_classifier', d, d), ...linear('classifier', labels, d)]);
  }
  throw new UnsupportedError(`fine-tuning for the ${head} head is not offered; use masked-lm or sequence-classification`);
}

/** Names of every head's tensors, to drop those the new head does not use. */
const HEAD_TENSOR = /^(cls\.|lm_head\.|vocab_(transform|layer_norm|projector)\.|classifier\.|pre_classifier\.)/;

interface EncoderCheckpoint {
  raw: Record<string, unknown>;
  file: string;
  tensors: ReadonlyMap<string, Tensor>;
}

function parseEncoderConfig(raw: Record<string, unknown>, file: string): BertConfig {
  const config = parseModelConfig(raw, file);
  if (!isBertConfig(config)) {
    throw new UnsupportedError(`${file}: model_type "${config.modelType}" cannot be fine-tuned for this task; it needs a BERT-family encoder (bert, roberta, xlm-roberta, distilbert)`);
  }
  return config;
}

/**
 * The checkpoint's tensors with the base model under HF's base_model_prefix
 * (a bare BertModel saves them at the root), the tensors of other heads
 * dropped, and `head`'s tensors initialised where missing.
 */
function encoderWithHead(c: EncoderCheckpoint, config: BertConfig, head: BertHead, labels: number, keepHead: boolean, seed: number): { params: Map<string, Tensor>; newlyInitialized: string[] } {
  const { prefix } = FAMILY[config.modelType];
  const bare = !c.tensors.has(`${prefix}.embeddings.word_embeddings.weight`);
  const shapes = headShapes(config, head, labels);
  const params = new Map<string, Tensor>();
  for (const [name, t] of trainableCopy(c.tensors)) {
    if (HEAD_TENSOR.test(name) && !(keepHead && shapes.has(name))) continue;
    params.set(bare && !HEAD_TENSOR.test(name) ? `${prefix}.${name}` : name, t);
  }
  const missing = new Map([...shapes].filter(([name]) => !params.has(name)));
  const initializerRange = typeof c.raw.initializer_range === 'number' ? c.raw.initializer_range : 0.02;
  for (const [name, t] of initParameters(missing, { std: initializerRange, seed })) params.set(name, t);
  return { params, newlyInitialized: [...missing.keys()] };
}

/**
 * A masked-LM model from a BERT-family folder: its own MLM head when it was
 * saved with one, else a new head (the decoder stays tied to the word embeddings).
 */
export function maskedLmSetup(c: EncoderCheckpoint, seed: number): EncoderTaskSetup {
  const config = parseEncoderConfig(c.raw, c.file);
  const has = headOfArchitectures(config) === 'masked-lm';
  const { params, newlyInitialized } = encoderWithHead(c, config, 'masked-lm', 0, has, seed);
  const raw = { ...c.raw, architectures: [`${FAMILY[config.modelType].stem}ForMaskedLM`] };
  const model = loadBert({ config: parseModelConfig(raw, c.file), weights: params, weightsName: c.file }, { head: 'masked-lm' });
  return { model, params, config: raw, newlyInitialized };
}

/** The classes of a classification run: index of each example's label, and the config's id2label. */
export interface LabelSet {
  id2label: Record<string, string>;
  indexOf(label: string | number): number;
}

/**
 * Class indices for the examples' labels. Against a folder saved with a
 * classification head its id2label decides (names, or indices below
 * num_labels); otherwise names are sorted into classes 0…n−1, and integer
 * labels are the class indices themselves (num_labels = largest + 1).
 */
export function labelSet(labels: readonly (string | number)[], existing: Readonly<Record<number, string>> | undefined, file: string): LabelSet {
  if (existing) {
    const byName = new Map(Object.entries(existing).map(([i, name]) => [name, Number(i)]));
    const count = byName.size;
    const indexOf = (label: string | number): number => {
      const index = typeof label === 'number' ? (label < count ? label : undefined) : byName.get(label);
      if (index === undefined) {
        throw new ConfigError(`${file}: label ${JSON.stringify(label)} is not one of the head's classes (${[...byName.keys()].join(', ')}); pass newHead (--new-head) to train a new classification head`);
      }
      return index;
    };
    labels.forEach(indexOf);
    return { id2label: Object.fromEntries(Object.entries(existing)), indexOf };
  }
  if (labels.every((l) => typeof l === 'number')) {
    const count = Math.max(...(labels as number[])) + 1;
    return { id2label: Object.fromEntries(Array.from({ length: count }, (_, i) => [String(i), `LABEL_${i}`])), indexOf: (l) => l as number };
  }
  if (labels.some((l) => typeof l === 'number')) throw new ConfigError(`${file}: labels mix class names and integers; use one or the other`);
  const names = [...new Set(labels as string[])].sort();
  const index = new Map(names.map((name, i) => [name, i]));
  return { id2label: Object.fromEntries(names.map((name, i) => [String(i), name])), indexOf: (l) => index.get(l as string)! };
}

/**
 * A sequence classifier from a BERT-family folder for these labels: its own
 * head when it has one whose classes cover them (unless `newHead`), else a new
 * head with one output per class.
 */
export function classificationSetup(c: EncoderCheckpoint, labels: readonly (string | number)[], options: { seed: number; newHead?: boolean }): EncoderTaskSetup & { labels: LabelSet } {
  const config = parseEncoderConfig(c.raw, c.file);
  const keep = headOfArchitectures(config) === 'sequence-classification' && !options.newHead;
  const set = labelSet(labels, keep ? config.id2label : undefined, c.file);
  const count = Object.keys(set.id2label).length;
  if (count < 2 && !keep) throw new ConfigError(`${c.file}: the examples have one class; a classifier needs at least two`);
  const { params, newlyInitialized } = encoderWithHead(c, config, 'sequence-classification', count, keep, options.seed);
  const raw: Record<string, unknown> = {
    ...c.raw,
    architectures: [`${FAMILY[config.modelType].stem}ForSequenceClassification`],
    id2label: set.id2label,
    label2id: Object.fromEntries(Object.entries(set.id2label).map(([i, name]) => [name, Number(i)])),
  };
  delete raw.num_labels;
  const model = loadBert({ config: parseModelConfig(raw, c.file), weights: params, weightsName: c.file }, { head: 'sequence-classification' });
  return { model, params, config: raw, newlyInitialized, labels: set };
}
