import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { formatReport, registerFixtureRunner, verifyFolder } from '../../src/verify/index.js';
import { runBert } from '../../src/verify/bert.js';
import { BERT_CLASSIFICATION_FIXTURE, BERT_FIXTURE } from './shared.js';

registerFixtureRunner('bert', runBert);
registerFixtureRunner('bert/classification', runBert);

test('BertForMaskedLM matches every recorded Hugging Face tensor (hidden states, attentions, MLM logits)', async () => {
  const report = await verifyFolder(nodeFileSystem, BERT_FIXTURE);
  assert.ok(report.pass, formatReport(report));
  assert.deepEqual(report.tensors.map((t) => t.name).sort(), [
    'attentions.0', 'attentions.1', 'hidden_states.0', 'hidden_states.1', 'hidden_states.2', 'last_hidden_state', 'logits',
  ]);
  for (const t of report.tensors) assert.ok(t.compared > 0, `${t.name} compared no elements`);
});

test('BertForSequenceClassification matches hidden states, attentions, pooler output and class logits', async () => {
  const report = await verifyFolder(nodeFileSystem, BERT_CLASSIFICATION_FIXTURE);
  assert.ok(report.pass, formatReport(report));
  assert.ok(report.tensors.some((t) => t.name === 'pooler_output' && t.pass));
  assert.ok(report.tensors.some((t) => t.name === 'logits' && t.pass && t.compared === 6));
});
