import { parseModelConfig } from '../io/config.js';
import { loadBert, type BertHead } from '../models/bert.js';
import { Tensor } from '../tensor/tensor.js';
import type { Fixture, FixtureRun, ValidPositions } from './types.js';

type Ids = number[][];

function idsTensor(rows: Ids): Tensor {
  return Tensor.i32(rows.flat(), [rows.length, rows[0]?.length ?? 0]);
}

/**
 * The BERT-family fixtures (`bert/`: BertForMaskedLM, `bert/classification/`:
 * BertForSequenceClassification): one forward pass with every hidden state
 * and attention pattern, the pooler output when the model has one, and the
 * head's logits.
 */
export async function runBert(fixture: Fixture): Promise<FixtureRun> {
  const config = parseModelConfig(fixture.config, `${fixture.dir}/config.json`);
  const model = loadBert({ config, weights: fixture.weights, weightsName: `${fixture.dir}/model.safetensors` });
  const inputs = fixture.inputs as { input_ids: Ids; attention_mask: Ids; token_type_ids?: Ids };
  const out = model.forward(
    {
      inputIds: idsTensor(inputs.input_ids),
      attentionMask: idsTensor(inputs.attention_mask),
      tokenTypeIds: inputs.token_type_ids ? idsTensor(inputs.token_type_ids) : undefined,
    },
    { outputHiddenStates: true, outputAttentions: true },
  );
  const tensors = new Map<string, Tensor>([['last_hidden_state', out.lastHiddenState]]);
  out.hiddenStates.forEach((t, i) => tensors.set(`hidden_states.${i}`, t));
  out.attentions.forEach((t, i) => tensors.set(`attentions.${i}`, t));
  if (out.poolerOutput) tensors.set('pooler_output', out.poolerOutput);
  if (out.logits) tensors.set('logits', out.logits);
  // Rows of padded query positions are artefacts (fixture README): compare real tokens only.
  // The sequence axis is 1 for hidden states and per-token logits, 2 (queries) for attention patterns.
  const valid = new Map<string, ValidPositions>();
  const perToken: BertHead[] = ['masked-lm', 'token-classification'];
  for (const [name, t] of tensors) {
    if (name.startsWith('attentions.')) valid.set(name, { axis: 2, mask: inputs.attention_mask });
    else if (name.startsWith('hidden_states.') || name === 'last_hidden_state') valid.set(name, { axis: 1, mask: inputs.attention_mask });
    else if (name === 'logits' && perToken.includes(model.head) && t.rank === 3) valid.set(name, { axis: 1, mask: inputs.attention_mask });
  }
  return { tensors, valid };
}
