/**
 * Shapes the public fixtures do not exercise (the hidden fixture set has other
 * shapes): heads narrower than d_model / heads, more decoder than encoder
 * layers, other bucket settings, different encoder/decoder heads and widths,
 * scaled embeddings, an untied head, odd widths, Marian's separate target
 * vocabulary. Random weights; the checks are the model's own invariants:
 * the cached decoder equals the teacher-forced one, and padding a batch
 * changes nothing for the real tokens.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BartModel, parseBartConfig } from '../../src/models/bart.js';
import { parseT5Config, T5Model } from '../../src/models/t5.js';
import { idsTensor, type EncoderDecoderModel } from '../../src/nn/encoder-decoder-cache.js';
import { Weights } from '../../src/nn/weights.js';
import { Tensor } from '../../src/tensor/tensor.js';

function randomWeights(shapes: Record<string, number[]>, seed: number): Map<string, Tensor> {
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
  const out = new Map<string, Tensor>();
  for (const [name, shape] of Object.entries(shapes)) {
    const size = shape.reduce((a, b) => a * b, 1);
    const scale = name.endsWith('norm.weight') || name.includes('layer_norm') ? 0 : 1 / Math.sqrt(shape[shape.length - 1]);
    out.set(name, new Tensor('f32', shape, Float32Array.from({ length: size }, () => (scale === 0 ? 1 + 0.2 * next() : 2 * scale * next()))));
  }
  return out;
}

function t5Shapes(c: { vocab: number; d: number; dKv: number; heads: number; dFf: number; encoderLayers: number; decoderLayers: number; buckets: number }): Record<string, number[]> {
  const inner = c.heads * c.dKv;
  const s: Record<string, number[]> = { 'shared.weight': [c.vocab, c.d], 'lm_head.weight': [c.vocab, c.d] };
  for (const [stack, layers] of [['encoder', c.encoderLayers], ['decoder', c.decoderLayers]] as const) {
    s[`${stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight`] = [c.buckets, c.heads];
    s[`${stack}.final_layer_norm.weight`] = [c.d];
    for (let i = 0; i < layers; i++) {
      const attentions = stack === 'encoder' ? ['layer.0.SelfAttention'] : ['layer.0.SelfAttention', 'layer.1.EncDecAttention'];
      for (const a of attentions) {
        for (const p of ['q', 'k', 'v']) s[`${stack}.block.${i}.${a}.${p}.weight`] = [inner, c.d];
        s[`${stack}.block.${i}.${a}.o.weight`] = [c.d, inner];
      }
      const ff = attentions.length;
      for (let l = 0; l <= ff; l++) s[`${stack}.block.${i}.layer.${l}.layer_norm.weight`] = [c.d];
      s[`${stack}.block.${i}.layer.${ff}.DenseReluDense.wi_0.weight`] = [c.dFf, c.d];
      s[`${stack}.block.${i}.layer.${ff}.DenseReluDense.wi_1.weight`] = [c.dFf, c.d];
      s[`${stack}.block.${i}.layer.${ff}.DenseReluDense.wo.weight`] = [c.d, c.dFf];
    }
  }
  return s;
}

interface BartShape {
  vocab: number;
  decoderVocab: number;
  d: number;
  encoderFfn: number;
  decoderFfn: number;
  encoderLayers: number;
  decoderLayers: number;
  positions?: number;
  shared: boolean;
  untied: boolean;
}

function bartShapes(c: BartShape): Record<string, number[]> {
  const s: Record<string, number[]> = { final_logits_bias: [1, c.decoderVocab] };
  if (c.shared) s['model.shared.weight'] = [c.vocab, c.d];
  else {
    s['model.encoder.embed_tokens.weight'] = [c.vocab, c.d];
    s['model.decoder.embed_tokens.weight'] = [c.decoderVocab, c.d];
  }
  if (c.untied) s['lm_head.weight'] = [c.decoderVocab, c.d];
  const linear = (name: string, from: number, to: number) => {
    s[`${name}.weight`] = [to, from];
    s[`${name}.bias`] = [to];
  };
  const norm = (name: string) => {
    s[`${name}.weight`] = [c.d];
    s[`${name}.bias`] = [c.d];
  };
  for (const [stack, layers, ffn] of [['encoder', c.encoderLayers, c.encoderFfn], ['decoder', c.decoderLayers, c.decoderFfn]] as const) {
    const m = `model.${stack}`;
    if (c.positions !== undefined) {
      s[`${m}.embed_positions.weight`] = [c.positions + 2, c.d];
      norm(`${m}.layernorm_embedding`);
    }
    for (let i = 0; i < layers; i++) {
      const l = `${m}.layers.${i}`;
      const attentions = stack === 'encoder' ? ['self_attn'] : ['self_attn', 'encoder_attn'];
      for (const a of attentions) {
        for (const p of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) linear(`${l}.${a}.${p}`, c.d, c.d);
        norm(`${l}.${a}_layer_norm`);
      }
      linear(`${l}.fc1`, c.d, ffn);
      linear(`${l}.fc2`, ffn, c.d);
      norm(`${l}.final_layer_norm`);
    }
  }
  return s;
}

const maxAbsDiff = (a: Tensor, b: Tensor) => {
  assert.deepEqual(a.shape, b.shape);
  const y = b.f32();
  return a.f32().reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
};

/** Teacher-forced logits equal step-by-step cached logits; a row alone equals the same row in a padded batch. */
function checkInvariants(model: EncoderDecoderModel, vocab: number, start: number, pad: number) {
  const source = [
    [5, 9, 13, 2, 7, 11, 3],
    [8, 4, 6, 1, 0, 0, 0],
  ].map((row) => row.map((t) => (t === 0 ? pad : (t * 7) % vocab)));
  const mask = [
    [1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 0, 0, 0],
  ];
  const decoderIds = [
    [start, 3, 14, 9, 1],
    [start, 12, 2, 2, 6],
  ];
  const encoder = model.encode(idsTensor(source), idsTensor(mask));
  const full = model.decode(idsTensor(decoderIds), model.startCache(encoder.output, idsTensor(mask))).logits; // [2, 5, vocab]
  const cache = model.startCache(encoder.output, idsTensor(mask));
  for (let k = 0; k < decoderIds[0].length; k++) {
    const step = model.decode(idsTensor(decoderIds.map((row) => [row[k]])), cache).logits;
    assert.ok(maxAbsDiff(step, full.slice(1, k, k + 1)) < 1e-5, `cached step ${k} equals the teacher-forced position`);
  }
  const aloneSource = [source[1].slice(0, 4)];
  const aloneMask = [[1, 1, 1, 1]];
  const aloneEncoder = model.encode(idsTensor(aloneSource), idsTensor(aloneMask));
  const alone = model.decode(idsTensor([decoderIds[1]]), model.startCache(aloneEncoder.output, idsTensor(aloneMask))).logits;
  assert.ok(maxAbsDiff(alone, full.slice(0, 1, 2)) < 1e-5, 'padding the source changes nothing for the real tokens');
  assert.equal(full.shape[2], vocab);
}

test('T5 v1.1 shapes: d_kv·heads ≠ d_model, more decoder layers, 8 buckets up to distance 6', () => {
  const shape = { vocab: 50, d: 24, dKv: 5, heads: 3, dFf: 40, encoderLayers: 2, decoderLayers: 3, buckets: 8 };
  const config = parseT5Config({
    model_type: 't5',
    vocab_size: 50,
    d_model: 24,
    d_kv: 5,
    num_heads: 3,
    d_ff: 40,
    num_layers: 2,
    num_decoder_layers: 3,
    relative_attention_num_buckets: 8,
    relative_attention_max_distance: 6,
    feed_forward_proj: 'gated-gelu',
    tie_word_embeddings: false,
  });
  const weights = Weights.from(randomWeights(t5Shapes(shape), 3), 'random t5');
  const model = new T5Model(config, weights);
  assert.deepEqual(weights.unused(), [], 'every checkpoint tensor has its place');
  checkInvariants(model, 50, 0, 0);
});

test('BART shapes: different encoder/decoder heads and widths, scaled embeddings, an untied head', () => {
  const shape: BartShape = { vocab: 60, decoderVocab: 60, d: 24, encoderFfn: 40, decoderFfn: 56, encoderLayers: 1, decoderLayers: 3, positions: 32, shared: true, untied: true };
  const config = parseBartConfig({
    model_type: 'bart',
    vocab_size: 60,
    d_model: 24,
    encoder_attention_heads: 4,
    decoder_attention_heads: 2,
    encoder_ffn_dim: 40,
    decoder_ffn_dim: 56,
    encoder_layers: 1,
    decoder_layers: 3,
    max_position_embeddings: 32,
    scale_embedding: true,
    tie_word_embeddings: false,
    activation_function: 'gelu_new',
  });
  const weights = Weights.from(randomWeights(bartShapes(shape), 5), 'random bart');
  const model = new BartModel(config, weights);
  assert.deepEqual(weights.unused(), [], 'every checkpoint tensor has its place');
  checkInvariants(model, 60, 2, 1);
});

test('Marian shapes: odd width (sinusoids sin ⌈d/2⌉ | cos ⌊d/2⌋), separate source and target vocabularies', () => {
  const shape: BartShape = { vocab: 70, decoderVocab: 40, d: 25, encoderFfn: 30, decoderFfn: 30, encoderLayers: 2, decoderLayers: 2, shared: false, untied: false };
  const config = parseBartConfig({
    model_type: 'marian',
    vocab_size: 70,
    decoder_vocab_size: 40,
    share_encoder_decoder_embeddings: false,
    d_model: 25,
    encoder_attention_heads: 5,
    decoder_attention_heads: 5,
    encoder_ffn_dim: 30,
    decoder_ffn_dim: 30,
    encoder_layers: 2,
    decoder_layers: 2,
    max_position_embeddings: 16,
    scale_embedding: true,
    activation_function: 'swish',
    pad_token_id: 39,
    decoder_start_token_id: 39,
  });
  const weights = Weights.from(randomWeights(bartShapes(shape), 9), 'random marian');
  const model = new BartModel(config, weights);
  assert.deepEqual(weights.unused(), [], 'every checkpoint tensor has its place');
  assert.equal(model.vocabSize, 40);
  checkInvariants(model, 40, 39, 39);
});
