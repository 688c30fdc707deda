/**
 * DistilBERT (Sanh et al. 2019): BERT with half the layers, no token-type
 * embeddings and no pooler, distilled from BERT. Its blocks are BERT's
 * (src/models/bert.ts); only the Hugging Face weight names differ
 * (`modeling_distilbert.py` v4.47):
 *
 *   distilbert.embeddings.{word_embeddings,position_embeddings,LayerNorm}
 *   distilbert.transformer.layer.{i}.attention.{q_lin,k_lin,v_lin,out_lin}
 *   distilbert.transformer.layer.{i}.{sa_layer_norm,ffn.lin1,ffn.lin2,output_layer_norm}
 *   vocab_transform, vocab_layer_norm, vocab_projector (tied)     — masked LM
 *   pre_classifier, classifier                                    — sequence classification
 *
 * Sinusoidal position tables (`sinusoidal_pos_embds`) are saved in the
 * checkpoint like learned ones, so both load the same way.
 */
import { activation } from '../ops/index.js';
import type { Tensor } from '../tensor/tensor.js';
import { MultiHeadAttention } from '../nn/attention.js';
import { FeedForward } from '../nn/feed-forward.js';
import { LayerNorm, Linear } from '../nn/linear.js';
import type { Weights } from '../nn/weights.js';
import {
  baseWeights,
  BertEmbeddings,
  BertForMaskedLM,
  BertForSequenceClassification,
  BertForTokenClassification,
  BertLayer,
  BertModel,
  FirstTokenClassifier,
  MaskedLmHead,
  decoderBias,
  tiedDecoder,
  type BertConfig,
  type BertHead,
  type EncoderModel,
} from './bert.js';

/** `embeddings.`: word and position tables, then LayerNorm; no token types. */
function loadEmbeddings(w: Weights, c: BertConfig): BertEmbeddings {
  const d = c.hiddenSize;
  return new BertEmbeddings(
    w.get('word_embeddings.weight', [c.vocabSize, d]),
    w.get('position_embeddings.weight', [c.maxPositionEmbeddings, d]),
    undefined,
    LayerNorm.load(w, 'LayerNorm', d, c.layerNormEps),
    null,
  );
}

/** `transformer.layer.{i}.`: the same post-norm layer as BERT. DistilBERT scales q before q·kᵀ; the product is the same. */
function loadLayer(w: Weights, c: BertConfig): BertLayer {
  const d = c.hiddenSize;
  const a = w.scope('attention');
  const attention = new MultiHeadAttention(
    Linear.load(a, 'q_lin', d, d),
    Linear.load(a, 'k_lin', d, d),
    Linear.load(a, 'v_lin', d, d),
    Linear.load(a, 'out_lin', d, d),
    c.numAttentionHeads,
  );
  const feedForward = new FeedForward(
    Linear.load(w, 'ffn.lin1', d, c.intermediateSize),
    Linear.load(w, 'ffn.lin2', c.intermediateSize, d),
    c.hiddenAct,
  );
  return new BertLayer(attention, LayerNorm.load(w, 'sa_layer_norm', d, c.layerNormEps), feedForward, LayerNorm.load(w, 'output_layer_norm', d, c.layerNormEps));
}

function loadEncoder(w: Weights, c: BertConfig): BertModel {
  const layers = Array.from({ length: c.numHiddenLayers }, (_, i) => loadLayer(w.scope(`transformer.layer.${i}`), c));
  return new BertModel(c, loadEmbeddings(w.scope('embeddings'), c), layers);
}

/** vocab_projector(LayerNorm(act(vocab_transform(h)))), the projector tied to the word embeddings. */
function loadMaskedLmHead(w: Weights, c: BertConfig, wordEmbeddings: Tensor): MaskedLmHead {
  const d = c.hiddenSize;
  return new MaskedLmHead(
    Linear.load(w, 'vocab_transform', d, d),
    activation(c.hiddenAct),
    LayerNorm.load(w, 'vocab_layer_norm', d, c.layerNormEps),
    new Linear(tiedDecoder(w, 'vocab_projector.weight', c, wordEmbeddings), decoderBias(w, ['vocab_projector.bias'], c)),
  );
}

/** Build a DistilBERT with the given head; the encoder's weights may sit under `distilbert.` or at the root. */
export function loadDistilBert(config: BertConfig, w: Weights, head: BertHead): EncoderModel {
  const encoder = loadEncoder(baseWeights(w, 'distilbert'), config);
  switch (head) {
    case 'base':
      return encoder;
    case 'masked-lm':
      return new BertForMaskedLM(encoder, loadMaskedLmHead(w, config, encoder.embeddings.word));
    case 'sequence-classification':
      return new BertForSequenceClassification(encoder, FirstTokenClassifier.loadDistilBert(w, config));
    case 'token-classification':
      return new BertForTokenClassification(encoder, Linear.load(w, 'classifier', config.hiddenSize, config.numLabels));
  }
}
