import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, UnsupportedError } from '../../src/errors.js';
import {
  generationConfigFromModelConfig,
  parseGenerationConfig,
  parseModelConfig,
  type BartConfig,
  type BertConfig,
  type Gpt2Config,
  type LlamaConfig,
  type ModelConfig,
  type T5Config,
  type VanillaTransformerConfig,
} from '../../src/io/config.js';
import { loadGenerationConfig, loadModelConfig } from '../../src/io/node.js';
import { HF_FAMILIES, HF_TINY, SHARED } from './shared.js';

function as<T extends ModelConfig>(config: ModelConfig, modelType: T['modelType']): T {
  assert.equal(config.modelType, modelType);
  return config as T;
}

test('every fixture config.json parses to its family with the sizes of the public set', async () => {
  for (const family of [...HF_FAMILIES, 'vanilla']) {
    const config = await loadModelConfig(join(HF_TINY, family, 'config.json'));
    assert.equal(config.file, join(HF_TINY, family, 'config.json'));
    assert.equal(config.raw.model_type, config.modelType);
    if (config.modelType !== 'vanilla_transformer_2017') assert.equal(config.vocabSize, 128, family);
  }
});

test('bert: fields, defaults and the label map', async () => {
  const c = as<BertConfig>(await loadModelConfig(join(HF_TINY, 'bert', 'config.json')), 'bert');
  assert.deepEqual(
    [c.hiddenSize, c.numHiddenLayers, c.numAttentionHeads, c.intermediateSize, c.maxPositionEmbeddings, c.typeVocabSize],
    [32, 2, 4, 64, 64, 2],
  );
  assert.equal(c.hiddenAct, 'gelu');
  assert.equal(c.layerNormEps, 1e-12);
  assert.equal(c.padTokenId, 0);
  assert.equal(c.tieWordEmbeddings, true, 'omitted: the PretrainedConfig default');
  assert.equal(c.isEncoderDecoder, false);
  assert.deepEqual(c.architectures, ['BertForMaskedLM']);
  assert.equal(c.numLabels, 2);
  const cls = as<BertConfig>(await loadModelConfig(join(HF_TINY, 'bert', 'classification', 'config.json')), 'bert');
  assert.equal(cls.numLabels, 3);
  assert.equal(cls.id2label[2], 'LABEL_2');
});

test('all-MiniLM-L6-v2 config (saved by transformers 4.8) parses as BERT', async () => {
  const c = as<BertConfig>(await loadModelConfig(join(SHARED, 'models', 'tokenizer-only', 'all-MiniLM-L6-v2', 'config.json')), 'bert');
  assert.deepEqual([c.vocabSize, c.hiddenSize, c.numHiddenLayers, c.numAttentionHeads, c.intermediateSize], [30522, 384, 6, 12, 1536]);
  assert.equal(c.maxPositionEmbeddings, 512);
});

test('gpt2: n_inner null means 4 · n_embd', async () => {
  const c = as<Gpt2Config>(await loadModelConfig(join(HF_TINY, 'gpt2', 'config.json')), 'gpt2');
  assert.deepEqual([c.nEmbd, c.nLayer, c.nHead, c.nPositions, c.nInner], [32, 2, 4, 64, 128]);
  assert.equal(c.activationFunction, 'gelu_new');
  assert.equal(c.layerNormEpsilon, 1e-5);
  assert.deepEqual([c.bosTokenId, c.eosTokenId, c.padTokenId], [127, 127, 0]);
  assert.equal(c.tieWordEmbeddings, true);
});

test('llama: grouped-query heads, RoPE and an untied head', async () => {
  const c = as<LlamaConfig>(await loadModelConfig(join(HF_TINY, 'llama', 'config.json')), 'llama');
  assert.deepEqual([c.hiddenSize, c.numAttentionHeads, c.numKeyValueHeads, c.headDim, c.intermediateSize], [32, 4, 2, 8, 64]);
  assert.equal(c.ropeTheta, 10000);
  assert.equal(c.ropeScaling, null);
  assert.equal(c.rmsNormEps, 1e-6);
  assert.equal(c.tieWordEmbeddings, false);
  assert.equal(c.attentionBias, false);
  assert.deepEqual([c.bosTokenId, c.eosTokenId], [1, 2]);
});

test('llama-like defaults: omitted keys take the family defaults, not PretrainedConfig ones', () => {
  const minimal = { hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 8, vocab_size: 100 };
  const llama = as<LlamaConfig>(parseModelConfig({ model_type: 'llama', ...minimal }), 'llama');
  assert.equal(llama.tieWordEmbeddings, false);
  assert.equal(llama.numKeyValueHeads, 8);
  assert.equal(llama.headDim, 8);
  assert.equal(llama.rmsNormEps, 1e-6);
  assert.equal(llama.maxPositionEmbeddings, 2048);
  const qwen2 = as<LlamaConfig>(parseModelConfig({ model_type: 'qwen2', ...minimal }), 'qwen2');
  assert.equal(qwen2.attentionBias, true, 'qwen2 always has q/k/v biases');
  assert.equal(qwen2.attentionOutputBias, false);
  assert.equal(qwen2.slidingWindow, null);
  const qwen3 = as<LlamaConfig>(parseModelConfig({ model_type: 'qwen3', ...minimal, head_dim: 16 }), 'qwen3');
  assert.equal(qwen3.headDim, 16);
  assert.equal(qwen3.qkNorm, true);
  assert.equal(as<LlamaConfig>(parseModelConfig({ model_type: 'qwen3', ...minimal }), 'qwen3').headDim, 128, 'Qwen3Config (v4.51) defaults head_dim to 128');
  const phi3 = as<LlamaConfig>(parseModelConfig({ model_type: 'phi3', ...minimal }), 'phi3');
  assert.equal(phi3.fusedProjections, true);
  assert.equal(phi3.rmsNormEps, 1e-5);
  assert.equal(phi3.maxPositionEmbeddings, 4096);
  assert.deepEqual([phi3.bosTokenId, phi3.eosTokenId, phi3.padTokenId], [1, 32000, 32000]);
  assert.equal(phi3.slidingWindow, null);
  assert.equal(phi3.attentionBias, false);
  const mistral = as<LlamaConfig>(parseModelConfig({ model_type: 'mistral', ...minimal, num_key_value_heads: 2 }), 'mistral');
  assert.equal(mistral.slidingWindow, 4096);
  assert.equal(mistral.numKeyValueHeads, 2);
  const llama3 = as<LlamaConfig>(
    parseModelConfig({
      model_type: 'llama',
      ...minimal,
      eos_token_id: [128001, 128008, 128009],
      rope_theta: 500000,
      rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    }),
    'llama',
  );
  assert.deepEqual(llama3.eosTokenId, [128001, 128008, 128009]);
  assert.deepEqual(llama3.ropeScaling, { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
  assert.deepEqual(
    (parseModelConfig({ model_type: 'llama', ...minimal, rope_scaling: { type: 'linear', factor: 2 } }) as LlamaConfig).ropeScaling,
    { type: 'linear', factor: 2 },
  );
  assert.throws(() => parseModelConfig({ model_type: 'llama', ...minimal, rope_scaling: { rope_type: 'longrope' } }), UnsupportedError);
  assert.throws(() => parseModelConfig({ model_type: 'llama', ...minimal, num_key_value_heads: 3 }), /"num_attention_heads" \(8\) must be divisible by "num_key_value_heads" \(3\)/);
});

test('t5: relu and gated-gelu feed-forwards', async () => {
  const relu = as<T5Config>(await loadModelConfig(join(HF_TINY, 't5', 'config.json')), 't5');
  assert.deepEqual([relu.dModel, relu.dKv, relu.dFf, relu.numLayers, relu.numDecoderLayers, relu.numHeads], [32, 8, 64, 2, 2, 4]);
  assert.deepEqual([relu.relativeAttentionNumBuckets, relu.relativeAttentionMaxDistance], [32, 128]);
  assert.deepEqual([relu.isGatedAct, relu.denseActFn, relu.tieWordEmbeddings], [false, 'relu', true]);
  assert.equal(relu.layerNormEpsilon, 1e-6);
  assert.deepEqual([relu.padTokenId, relu.eosTokenId, relu.decoderStartTokenId], [0, 1, 0]);
  const gated = as<T5Config>(await loadModelConfig(join(HF_TINY, 't5', 'gated-gelu', 'config.json')), 't5');
  assert.deepEqual([gated.isGatedAct, gated.denseActFn, gated.tieWordEmbeddings], [true, 'gelu_new', false]);
  const minimal = as<T5Config>(parseModelConfig({ model_type: 't5', vocab_size: 10, d_model: 8, d_kv: 2, d_ff: 16, num_layers: 3, num_heads: 4, feed_forward_proj: 'gated-silu' }), 't5');
  assert.deepEqual([minimal.numDecoderLayers, minimal.isGatedAct, minimal.denseActFn, minimal.isEncoderDecoder], [3, true, 'silu', true]);
  assert.throws(() => parseModelConfig({ ...minimal.raw, feed_forward_proj: 'gelu-gated' }), /"feed_forward_proj" must be "<act>" or "gated-<act>"/);
  const mt5 = as<T5Config>(parseModelConfig({ ...minimal.raw, model_type: 'mt5', feed_forward_proj: undefined }), 'mt5');
  assert.deepEqual([mt5.isGatedAct, mt5.denseActFn, mt5.tieWordEmbeddings, mt5.decoderStartTokenId], [true, 'gelu_new', false, 0]);
});

test('bart and marian: positions, embedding scale and forced EOS', async () => {
  const bart = as<BartConfig>(await loadModelConfig(join(HF_TINY, 'bart', 'config.json')), 'bart');
  assert.deepEqual([bart.dModel, bart.encoderLayers, bart.decoderLayers, bart.encoderAttentionHeads, bart.encoderFfnDim], [32, 2, 2, 4, 64]);
  assert.deepEqual([bart.positionEmbedding, bart.positionOffset, bart.normalizeEmbedding, bart.scaleEmbedding], ['learned', 2, true, false]);
  assert.deepEqual([bart.padTokenId, bart.bosTokenId, bart.eosTokenId, bart.decoderStartTokenId, bart.forcedEosTokenId], [1, 0, 2, 2, 2]);
  assert.equal(bart.activationFunction, 'gelu');
  assert.equal(bart.tieWordEmbeddings, true);
  const marian = as<BartConfig>(await loadModelConfig(join(HF_TINY, 'marian', 'config.json')), 'marian');
  assert.deepEqual([marian.positionEmbedding, marian.positionOffset, marian.normalizeEmbedding, marian.scaleEmbedding], ['sinusoidal', 0, false, true]);
  assert.deepEqual([marian.padTokenId, marian.eosTokenId, marian.decoderStartTokenId, marian.forcedEosTokenId, marian.decoderVocabSize], [127, 0, 127, 0, 128]);
  assert.equal(marian.activationFunction, 'swish');
  const legacy = as<BartConfig>(parseModelConfig({ ...bart.raw, force_bos_token_to_be_generated: true }), 'bart');
  assert.equal(legacy.forcedBosTokenId, 0);
});

test('vanilla: the wrapper description', async () => {
  const c = as<VanillaTransformerConfig>(await loadModelConfig(join(HF_TINY, 'vanilla', 'config.json')), 'vanilla_transformer_2017');
  assert.deepEqual([c.dModel, c.nhead, c.numEncoderLayers, c.numDecoderLayers, c.dimFeedforward], [32, 4, 2, 2, 64]);
  assert.deepEqual([c.srcVocabSize, c.tgtVocabSize, c.maxPositionEmbeddings], [96, 112, 64]);
  assert.deepEqual([c.normFirst, c.finalEncoderLayerNorm, c.finalDecoderLayerNorm, c.outputProjectionBias], [false, true, true, true]);
  assert.deepEqual([c.padTokenId, c.bosTokenId, c.eosTokenId], [0, 1, 2]);
});

test('distilbert reads its own field names', () => {
  const c = as<BertConfig>(
    parseModelConfig({ model_type: 'distilbert', vocab_size: 30522, dim: 768, n_layers: 6, n_heads: 12, hidden_dim: 3072, activation: 'gelu' }),
    'distilbert',
  );
  assert.deepEqual([c.hiddenSize, c.numHiddenLayers, c.numAttentionHeads, c.intermediateSize, c.typeVocabSize], [768, 6, 12, 3072, 0]);
  const roberta = as<BertConfig>(parseModelConfig({ model_type: 'roberta', vocab_size: 50265, hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 16 }), 'roberta');
  assert.deepEqual([roberta.padTokenId, roberta.bosTokenId, roberta.eosTokenId], [1, 0, 2]);
});

test('missing and mistyped fields are ConfigErrors naming the file and field', () => {
  assert.throws(() => parseModelConfig({ model_type: 'gpt2', n_embd: 32, n_head: 4, vocab_size: 10 }, 'my/config.json'), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.message, 'my/config.json: required field "n_layer" is missing');
    return true;
  });
  assert.throws(
    () => parseModelConfig({ model_type: 'gpt2', n_embd: '32', n_layer: 2, n_head: 4, vocab_size: 10 }, 'my/config.json'),
    /my\/config\.json: field "n_embd" must be a positive integer, found "32"|my\/config\.json: field "n_embd" must be an integer, found "32"/,
  );
  assert.throws(() => parseModelConfig({ model_type: 'bert', hidden_size: 30, num_attention_heads: 4 }, 'c.json'), /c\.json: required field "vocab_size" is missing/);
  assert.throws(() => parseModelConfig({ vocab_size: 3 }, 'c.json'), /c\.json: required field "model_type" is missing/);
  assert.throws(() => parseModelConfig([], 'c.json'), /c\.json: must be a JSON object/);
  assert.throws(() => parseModelConfig({ model_type: 'mamba' }, 'c.json'), (e: unknown) => e instanceof UnsupportedError && /model_type "mamba" is not supported/.test(e.message));
  assert.throws(() => parseModelConfig({ model_type: 'gpt2', n_embd: 30, n_layer: 2, n_head: 4, vocab_size: 10, layer_norm_epsilon: 'small' }), /"n_embd" \(30\) must be divisible by "n_head" \(4\)/);
});

test('every fixture generation_config.json parses with HF defaults for omitted keys', async () => {
  // BertForSequenceClassification cannot generate, so HF writes no generation_config.json for it.
  for (const family of HF_FAMILIES.filter((f) => f !== 'bert/classification')) {
    const g = await loadGenerationConfig(join(HF_TINY, family, 'generation_config.json'));
    assert.deepEqual([g.maxLength, g.doSample, g.numBeams, g.temperature, g.topK, g.topP], [20, false, 1, 1, 50, 1], family);
    assert.deepEqual([g.repetitionPenalty, g.lengthPenalty, g.earlyStopping, g.noRepeatNgramSize, g.maxNewTokens], [1, 1, false, 0, null], family);
  }
  const marian = await loadGenerationConfig(join(HF_TINY, 'marian', 'generation_config.json'));
  assert.deepEqual(marian.badWordsIds, [[127]]);
  assert.deepEqual([marian.decoderStartTokenId, marian.eosTokenId, marian.forcedEosTokenId, marian.padTokenId], [127, 0, 0, 127]);
  const gpt2 = await loadGenerationConfig(join(HF_TINY, 'gpt2', 'generation_config.json'));
  assert.deepEqual([gpt2.bosTokenId, gpt2.eosTokenId, gpt2.padTokenId, gpt2.decoderStartTokenId], [127, 127, 0, null]);
  const bart = await loadGenerationConfig(join(HF_TINY, 'bart', 'generation_config.json'));
  assert.deepEqual([bart.decoderStartTokenId, bart.forcedEosTokenId, bart.forcedBosTokenId], [2, 2, null]);
});

test('generation config values and errors', () => {
  const g = parseGenerationConfig({ eos_token_id: [1, 2], early_stopping: 'never', do_sample: true, top_p: 0.9, max_new_tokens: 5, stop_strings: 'END' });
  assert.deepEqual([g.eosTokenId, g.earlyStopping, g.doSample, g.topP, g.maxNewTokens, g.stopStrings], [[1, 2], 'never', true, 0.9, 5, ['END']]);
  assert.throws(() => parseGenerationConfig({ num_beams: 0 }, 'g.json'), /g\.json: field "num_beams" must be a positive integer, found 0/);
  assert.throws(() => parseGenerationConfig({ bad_words_ids: [1, 2] }, 'g.json'), /"bad_words_ids" must be a list of lists of token ids/);
  assert.throws(() => parseGenerationConfig({ early_stopping: 'yes' }, 'g.json'), /"early_stopping" must be true, false or "never"/);
});

test('without generation_config.json the model config supplies the token ids', async () => {
  const marian = await loadModelConfig(join(HF_TINY, 'marian', 'config.json'));
  const g = generationConfigFromModelConfig(marian);
  assert.deepEqual([g.decoderStartTokenId, g.eosTokenId, g.forcedEosTokenId, g.padTokenId, g.maxLength], [127, 0, 0, 127, 20]);
  const bert = generationConfigFromModelConfig(await loadModelConfig(join(HF_TINY, 'bert', 'config.json')));
  assert.equal(bert.padTokenId, 0);
});
