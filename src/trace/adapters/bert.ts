/**
 * The BERT family (src/models/bert.ts: BERT, RoBERTa, XLM-R, DistilBERT) as a
 * TraceableModel. With a masked-LM head, the logit lens reads each layer's
 * output through that head (dense → activation → LayerNorm → tied
 * unembedding): BERT is post-norm, so every layer's output is already
 * normalised and there is no separate final norm.
 */
import type { FileSystem } from '../../io/source.js';
import { BertForMaskedLM, loadBertFolder, type EncoderModel } from '../../models/bert.js';
import { noHooks, type HookPoints } from '../../nn/hooks.js';
import type { Tensor } from '../../tensor/tensor.js';
import { idsTensor, onesLike } from '../inputs.js';
import type { ModelDescription, ReadOut, TraceableModel, TraceInputs } from '../types.js';

export class BertTraceable implements TraceableModel {
  readonly description: ModelDescription;
  readonly readOut: ReadOut | null;

  constructor(readonly model: EncoderModel) {
    const c = model.config;
    const lm = model instanceof BertForMaskedLM ? model : null;
    this.description = {
      family: 'encoder',
      modelType: c.modelType,
      summary: `${c.modelType} encoder (${model.head} head): post-norm, learned positions`,
      norm: 'post',
      positions: 'learned',
      vocabSize: c.vocabSize,
      stacks: [
        {
          prefix: '',
          layers: c.numHiddenLayers,
          heads: c.numAttentionHeads,
          kvHeads: c.numAttentionHeads,
          dModel: c.hiddenSize,
          dHead: c.hiddenSize / c.numAttentionHeads,
          crossAttention: false,
          causal: false,
          input: 'inputIds',
        },
      ],
      lensStack: lm ? '' : null,
      specialTokens: { pad: c.padTokenId ?? undefined },
      labels: model.head === 'sequence-classification' ? Array.from({ length: c.numLabels }, (_, i) => c.id2label[i] ?? `LABEL_${i}`) : undefined,
    };
    this.readOut = lm
      ? { kind: 'head', describe: 'the masked-LM head: dense → activation → LayerNorm → tied word embeddings + bias', apply: (x) => lm.lmHead.forward(x, noHooks) }
      : null;
  }

  static async load(fs: FileSystem, dir: string): Promise<BertTraceable> {
    return new BertTraceable(await loadBertFolder(fs, dir));
  }

  run(inputs: TraceInputs, hooks: HookPoints): Tensor {
    const out = this.model.forward(
      {
        inputIds: idsTensor('inputIds', inputs.inputIds),
        attentionMask: idsTensor('attentionMask', inputs.attentionMask ?? onesLike(inputs.inputIds)),
        tokenTypeIds: inputs.tokenTypeIds ? idsTensor('tokenTypeIds', inputs.tokenTypeIds) : undefined,
      },
      { hooks },
    );
    return out.logits ?? out.lastHiddenState;
  }
}
