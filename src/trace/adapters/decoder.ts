/**
 * The decoder-only language models of src/models/gpt2.ts and
 * src/models/llama.ts (Llama, Mistral, Qwen2/3, Phi-3) as TraceableModels.
 * Both are pre-norm with a final norm, so direct logit attribution is exact.
 * Their decoding sessions take hooks, so a generation trace sees each new
 * token's attention over the KV cache.
 */
import type { DecodingSession, SessionInputs } from '../../generation/types.js';
import { Gpt2Model } from '../../models/gpt2.js';
import { LlamaModel } from '../../models/llama.js';
import type { HookPoints } from '../../nn/hooks.js';
import type { Tensor } from '../../tensor/tensor.js';
import { idsTensor, onesLike } from '../inputs.js';
import type { ModelDescription, ReadOut, SpecialTokens, TraceableModel, TraceInputs } from '../types.js';

function specialTokens(c: { bosTokenId: number | null; eosTokenId: number | readonly number[] | null; padTokenId: number | null }): SpecialTokens {
  const eos = c.eosTokenId === null ? undefined : typeof c.eosTokenId === 'number' ? [c.eosTokenId] : [...c.eosTokenId];
  return { bos: c.bosTokenId ?? undefined, eos, pad: c.padTokenId ?? undefined };
}

abstract class CausalTraceable implements TraceableModel {
  abstract readonly description: ModelDescription;
  abstract readonly readOut: ReadOut;
  abstract readonly model: Gpt2Model | LlamaModel;

  /** Position ids follow HF's cumsum rule over the attention mask (left padding). */
  run(inputs: TraceInputs, hooks: HookPoints): Tensor {
    const ids = idsTensor('inputIds', inputs.inputIds);
    const attentionMask = idsTensor('attentionMask', inputs.attentionMask ?? onesLike(inputs.inputIds));
    return this.model.forward(ids, { attentionMask, hooks }).logits;
  }

  startSession(inputs: SessionInputs, hooks: HookPoints): DecodingSession {
    return this.model.startSession(inputs, hooks);
  }
}

export class Gpt2Traceable extends CausalTraceable {
  readonly description: ModelDescription;
  readonly readOut: ReadOut;

  constructor(readonly model: Gpt2Model) {
    super();
    const c = model.config;
    this.description = {
      family: 'decoder',
      modelType: c.modelType,
      summary: `gpt2: pre-norm LayerNorm, learned positions, ${c.activationFunction}, ${c.tieWordEmbeddings ? 'tied' : 'untied'} unembedding`,
      norm: 'pre',
      positions: 'learned',
      vocabSize: c.vocabSize,
      stacks: [{ prefix: '', layers: c.nLayer, heads: c.nHead, kvHeads: c.nHead, dModel: c.nEmbd, dHead: c.nEmbd / c.nHead, crossAttention: false, causal: true, input: 'inputIds' }],
      lensStack: '',
      specialTokens: specialTokens(c),
    };
    const n = model.lnF;
    this.readOut = { kind: 'linear', norm: { kind: 'layer', weight: n.weight, bias: n.bias, eps: n.eps }, weight: model.lmHead, scale: 1 };
  }
}

export class LlamaTraceable extends CausalTraceable {
  readonly description: ModelDescription;
  readonly readOut: ReadOut;

  constructor(readonly model: LlamaModel) {
    super();
    const c = model.config;
    this.description = {
      family: 'decoder',
      modelType: c.modelType,
      summary: `${c.modelType}: pre-norm RMSNorm, rotary positions (θ=${c.ropeTheta}), ${c.numKeyValueHeads < c.numAttentionHeads ? `grouped-query attention (${c.numKeyValueHeads} KV heads)` : 'multi-head attention'}, gated ${c.hiddenAct}`,
      norm: 'pre',
      positions: 'rotary',
      vocabSize: c.vocabSize,
      stacks: [
        {
          prefix: '',
          layers: c.numHiddenLayers,
          heads: c.numAttentionHeads,
          kvHeads: c.numKeyValueHeads,
          dModel: c.hiddenSize,
          dHead: c.headDim,
          crossAttention: false,
          causal: true,
          input: 'inputIds',
        },
      ],
      lensStack: '',
      specialTokens: specialTokens(c),
    };
    this.readOut = { kind: 'linear', norm: { kind: 'rms', weight: model.norm.weight, eps: model.norm.eps }, weight: model.lmHead, scale: 1 };
  }
}
