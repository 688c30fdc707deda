/**
 * The encoder-decoders of src/models/t5.ts and src/models/bart.ts (T5, mT5,
 * BART, Marian) as TraceableModels: a teacher-forced pass of the encoder over
 * `inputIds` and the decoder over `decoderInputIds`; the logit lens reads the
 * decoder's residual stream. Their decoding sessions take hooks (the encoder
 * is seen once, the cached decoder at every step), so generation traces use
 * the KV cache.
 */
import { ShapeError } from '../../errors.js';
import type { BartConfig, T5Config } from '../../io/config.js';
import { BartModel } from '../../models/bart.js';
import { T5Model } from '../../models/t5.js';
import type { DecodingSession, SessionInputs } from '../../generation/types.js';
import type { HookPoints } from '../../nn/hooks.js';
import type { Tensor } from '../../tensor/tensor.js';
import { idsTensor, onesLike } from '../inputs.js';
import type { ModelDescription, ReadOut, SpecialTokens, StackDescription, TraceableModel, TraceInputs } from '../types.js';

function specialTokens(c: T5Config | BartConfig): SpecialTokens {
  const eos = c.eosTokenId === null ? undefined : typeof c.eosTokenId === 'number' ? [c.eosTokenId] : [...c.eosTokenId];
  return { bos: c.bosTokenId ?? undefined, eos, pad: c.padTokenId ?? undefined, decoderStart: c.decoderStartTokenId ?? undefined };
}

function stacks(encoder: Omit<StackDescription, 'prefix' | 'crossAttention' | 'causal' | 'input'>, decoder: typeof encoder): StackDescription[] {
  return [
    { prefix: 'encoder.', ...encoder, crossAttention: false, causal: false, input: 'inputIds' },
    { prefix: 'decoder.', ...decoder, crossAttention: true, causal: true, input: 'decoderInputIds' },
  ];
}

function teacherForced(inputs: TraceInputs, what: string): { ids: Tensor; mask: Tensor; decoderIds: Tensor } {
  if (!inputs.decoderInputIds) throw new ShapeError(`${what} is an encoder-decoder: give decoderInputIds (starting with the decoder start token) as well as inputIds`);
  return {
    ids: idsTensor('inputIds', inputs.inputIds),
    mask: idsTensor('attentionMask', inputs.attentionMask ?? onesLike(inputs.inputIds)),
    decoderIds: idsTensor('decoderInputIds', inputs.decoderInputIds),
  };
}

/** T5 and mT5: pre-norm (RMS), relative position bias, final norm on each stack. */
export class T5Traceable implements TraceableModel {
  readonly description: ModelDescription;
  readonly readOut: ReadOut;

  constructor(readonly model: T5Model) {
    const c = model.config;
    const shape = { heads: c.numHeads, kvHeads: c.numHeads, dModel: c.dModel, dHead: c.dKv };
    this.description = {
      family: 'encoder-decoder',
      modelType: c.modelType,
      summary: `${c.modelType} (${c.feedForwardProj}): pre-norm RMS, relative position bias, ${c.tieWordEmbeddings ? 'tied' : 'untied'} unembedding`,
      norm: 'pre',
      positions: 'relative-bias',
      vocabSize: c.vocabSize,
      stacks: stacks({ layers: c.numLayers, ...shape }, { layers: c.numDecoderLayers, ...shape }),
      lensStack: 'decoder.',
      specialTokens: specialTokens(c),
    };
    const norm = model.decoderFinalNorm;
    this.readOut = {
      kind: 'linear',
      norm: { kind: 'rms', weight: norm.weight, eps: norm.eps },
      weight: model.lmHead ?? model.shared,
      // The tied head rescales by d_model^-0.5 (T5Model.logits).
      scale: model.lmHead ? 1 : Math.fround(c.dModel ** -0.5),
    };
  }

  run(inputs: TraceInputs, hooks: HookPoints): Tensor {
    const { ids, mask, decoderIds } = teacherForced(inputs, this.description.modelType);
    return this.model.forward(ids, mask, decoderIds, hooks).decoder.logits;
  }

  startSession(inputs: SessionInputs, hooks: HookPoints): DecodingSession {
    return this.model.startSession(inputs, hooks);
  }
}

/** BART and Marian: post-norm, learned (BART) or sinusoidal (Marian) positions, no final norm. */
export class BartTraceable implements TraceableModel {
  readonly description: ModelDescription;
  readonly readOut: ReadOut;

  constructor(readonly model: BartModel) {
    const c = model.config;
    const d = c.dModel;
    this.description = {
      family: 'encoder-decoder',
      modelType: c.modelType,
      summary: `${c.modelType}: post-norm, ${c.positionEmbedding} positions, ${c.activationFunction}`,
      norm: 'post',
      positions: c.positionEmbedding,
      vocabSize: c.decoderVocabSize,
      stacks: stacks(
        { layers: c.encoderLayers, heads: c.encoderAttentionHeads, kvHeads: c.encoderAttentionHeads, dModel: d, dHead: d / c.encoderAttentionHeads },
        { layers: c.decoderLayers, heads: c.decoderAttentionHeads, kvHeads: c.decoderAttentionHeads, dModel: d, dHead: d / c.decoderAttentionHeads },
      ),
      lensStack: 'decoder.',
      specialTokens: specialTokens(c),
    };
    this.readOut = { kind: 'linear', norm: null, weight: model.lmHead, bias: model.finalLogitsBias.reshape([c.decoderVocabSize]), scale: 1 };
  }

  run(inputs: TraceInputs, hooks: HookPoints): Tensor {
    const { ids, mask, decoderIds } = teacherForced(inputs, this.description.modelType);
    return this.model.forward(ids, mask, decoderIds, hooks).decoder.logits;
  }

  startSession(inputs: SessionInputs, hooks: HookPoints): DecodingSession {
    return this.model.startSession(inputs, hooks);
  }
}
