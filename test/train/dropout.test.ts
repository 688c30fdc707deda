import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { UnsupportedError } from '../../src/errors.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { loadModel, type LoadedModel } from '../../src/models/registry.js';
import { Hooks, hookLogits, type HookPoints } from '../../src/nn/hooks.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { dropoutSites, TrainingDropout, type DropoutSite } from '../../src/train/dropout.js';
import { Random } from '../../src/train/random.js';
import { causalLmLoss, seq2seqLoss } from '../../src/train/tasks.js';
import { HF_TINY } from '../helpers/shared.js';

/** Records the full name of every hook point a forward pass runs. */
class Recorder implements HookPoints {
  readonly active = true;
  constructor(
    readonly names: string[] = [],
    private readonly prefix = '',
  ) {}

  run(name: string, tensor: Tensor): Tensor {
    this.names.push(this.prefix + name);
    return tensor;
  }

  scope(prefix: string): HookPoints {
    return new Recorder(this.names, this.prefix + prefix);
  }
}

const DROPOUT_FIELDS = [
  'embd_pdrop', 'attn_pdrop', 'resid_pdrop', 'attention_dropout', 'hidden_dropout_prob', 'attention_probs_dropout_prob',
  'classifier_dropout', 'dropout', 'dropout_rate', 'activation_dropout', 'seq_classif_dropout',
];

/** The model's config with every dropout probability its family reads set to 0.25, so every site is present. */
function everySite(loaded: LoadedModel, head?: string): DropoutSite[] {
  const raw: Record<string, unknown> = { ...(loaded.config.raw as Record<string, unknown>) };
  for (const field of DROPOUT_FIELDS) raw[field] = 0.25;
  return dropoutSites({ modelType: loaded.config.modelType, raw }, head);
}

/** The hook names one forward pass runs, with a few tokens of input. */
function hookNames(loaded: LoadedModel): string[] {
  const recorder = new Recorder();
  const ids = Tensor.i32([5, 6, 7, 8], [1, 4]);
  const mask = Tensor.i32([1, 1, 1, 1], [1, 4]);
  noGrad(() => {
    if (loaded.family === 'decoder-only') loaded.model.forward(ids, { hooks: recorder });
    else if (loaded.family === 'encoder-only') loaded.model.forward({ inputIds: ids, attentionMask: mask }, { hooks: recorder });
    else loaded.model.forward(ids, mask, Tensor.i32([1, 5, 6], [1, 3]), recorder);
  });
  return recorder.names;
}

function hits(sites: readonly DropoutSite[], names: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const s of sites) counts[`${s.names.source} (${s.field})`] = names.filter((n) => s.names.test(n)).length;
  return counts;
}

/** Expected hits per site, in the order dropoutSites lists them. */
const CASES: { fixture: string; head?: string; expected: (raw: Record<string, number>) => number[] }[] = [
  // embedding, probabilities, attn.out + mlp.out
  { fixture: 'gpt2', expected: (c) => [1, c.n_layer, 2 * c.n_layer] },
  { fixture: 'llama', expected: (c) => [c.num_hidden_layers] },
  { fixture: 'bert', head: 'masked-lm', expected: (c) => [1, c.num_hidden_layers, 2 * c.num_hidden_layers] },
  // … and the pooled output
  { fixture: 'bert/classification', head: 'sequence-classification', expected: (c) => [1, c.num_hidden_layers, 2 * c.num_hidden_layers, 1] },
  // embeddings of both stacks, probabilities (self + cross), sublayer outputs, after the activation, after both final norms
  { fixture: 't5', expected: (c) => [2, c.num_layers + 2 * c.num_decoder_layers, 2 * c.num_layers + 3 * c.num_decoder_layers, c.num_layers + c.num_decoder_layers, 2] },
  { fixture: 't5/gated-gelu', expected: (c) => [2, c.num_layers + 2 * c.num_decoder_layers, 2 * c.num_layers + 3 * c.num_decoder_layers, c.num_layers + c.num_decoder_layers, 2] },
  // embeddings, sublayer outputs, probabilities, after the activation
  { fixture: 'bart', expected: (c) => [2, 2 * c.encoder_layers + 3 * c.decoder_layers, c.encoder_layers + 2 * c.decoder_layers, c.encoder_layers + c.decoder_layers] },
  { fixture: 'marian', expected: (c) => [2, 2 * c.encoder_layers + 3 * c.decoder_layers, c.encoder_layers + 2 * c.decoder_layers, c.encoder_layers + c.decoder_layers] },
  // probabilities, sublayer outputs, after the activation
  { fixture: 'vanilla', expected: (c) => [c.num_encoder_layers + 2 * c.num_decoder_layers, 2 * c.num_encoder_layers + 3 * c.num_decoder_layers, c.num_encoder_layers + c.num_decoder_layers] },
];

for (const { fixture, head, expected } of CASES) {
  test(`dropout sites: every site of ${fixture} is a hook point its forward pass runs, as often as HF applies that dropout`, async () => {
    const loaded = await loadModel(nodeFileSystem, join(HF_TINY, fixture));
    const sites = everySite(loaded, head);
    const raw = loaded.config.raw as Record<string, number>;
    const layers = { ...raw, num_decoder_layers: raw.num_decoder_layers ?? raw.num_layers };
    assert.deepEqual(Object.values(hits(sites, hookNames(loaded))), expected(layers), JSON.stringify(hits(sites, hookNames(loaded))));
  });
}

test('dropout sites: probabilities come from config.json, HF defaults fill absent fields, and 0 leaves a site out', () => {
  const gpt2 = dropoutSites({ modelType: 'gpt2', raw: { attn_pdrop: 0.3, resid_pdrop: 0 } });
  assert.deepEqual(gpt2.map((s) => [s.field, s.p]), [['embd_pdrop', 0.1], ['attn_pdrop', 0.3]]);
  assert.deepEqual(dropoutSites({ modelType: 'llama', raw: {} }), []);
  // BERT's classifier falls back to hidden_dropout_prob when classifier_dropout is null.
  const bert = dropoutSites({ modelType: 'bert', raw: { hidden_dropout_prob: 0.2, classifier_dropout: null } }, 'sequence-classification');
  assert.deepEqual(bert.at(-1)?.p, 0.2);
  assert.equal(bert.at(-1)?.names.test('pooler'), true);
  // RoBERTa also drops h[:, 0] before its dense layer: the last layer's output.
  const roberta = dropoutSites({ modelType: 'roberta', raw: { num_hidden_layers: 3, classifier_dropout: 0.4 } }, 'sequence-classification');
  assert.deepEqual(roberta.slice(-2).map((s) => [s.names.source, s.p]), [['^pooler$', 0.4], ['^blocks\\.2\\.resid_post$', 0.4]]);
  assert.equal(dropoutSites({ modelType: 'distilbert', raw: {} }, 'sequence-classification').at(-1)?.p, 0.2);
  assert.throws(() => dropoutSites({ modelType: 'bart', raw: { encoder_layerdrop: 0.1 } }), (e: unknown) => e instanceof UnsupportedError && /encoder_layerdrop/.test(e.message));
  assert.throws(() => dropoutSites({ modelType: 'gptj', raw: {} }), UnsupportedError);
});

test('TrainingDropout: zeroes about p of a site, scales the rest by 1/(1 − p), leaves other names and scopes alone', () => {
  const sites = dropoutSites({ modelType: 'gpt2', raw: { attn_pdrop: 0.25, embd_pdrop: 0, resid_pdrop: 0 } });
  const hooks = new TrainingDropout(sites, new Random(7)).scope('blocks.3.').scope('attn.');
  const x = Tensor.f32(new Float32Array(20000).fill(2), [20000]);
  const dropped = hooks.run('pattern', x).f32();
  const zeros = dropped.filter((v) => v === 0).length;
  assert.ok(Math.abs(zeros / dropped.length - 0.25) < 0.015, `${zeros} of ${dropped.length} zeroed`);
  assert.ok(dropped.every((v) => v === 0 || Math.abs(v - 2 / 0.75) < 1e-6));
  assert.equal(hooks.run('out', x), x);
  assert.equal(new TrainingDropout(sites, new Random(7)).run('pattern', x), x, 'no block prefix: not a site');
});

test('training loss with dropout: differs from eval mode, and replays exactly from the same seed', async () => {
  const loaded = await loadModel(nodeFileSystem, join(HF_TINY, 'gpt2'));
  assert.equal(loaded.family, 'decoder-only');
  if (loaded.family !== 'decoder-only') return;
  const batch = [[5, 9, 14, 3, 27, 8]];
  const sites = dropoutSites(loaded.config);
  assert.ok(sites.length === 3, 'the gpt2 fixture has attn/resid/embd dropout 0.1');
  const evalLoss = noGrad(() => causalLmLoss(loaded.model)(batch).loss.f32()[0]);
  const train = causalLmLoss(loaded.model, { dropout: sites });
  const a = noGrad(() => train(batch, new Random(11)).loss.f32()[0]);
  const b = noGrad(() => train(batch, new Random(11)).loss.f32()[0]);
  const c = noGrad(() => train(batch, new Random(12)).loss.f32()[0]);
  assert.equal(a, b);
  assert.notEqual(a, evalLoss);
  assert.notEqual(a, c);
  assert.throws(() => train(batch), UnsupportedError, 'dropout without a random source');
});

test('seq2seq loss with dropout: T5 runs it through both stacks', async () => {
  const loaded = await loadModel(nodeFileSystem, join(HF_TINY, 't5'));
  if (loaded.family !== 'encoder-decoder') throw new Error('t5 fixture is an encoder-decoder');
  const batch = [{ source: [5, 6, 7, 1], target: [8, 9, 1] }];
  const o = { padId: 0, decoderStartTokenId: 0 };
  const evalLoss = noGrad(() => seq2seqLoss(loaded.model, o)(batch).loss.f32()[0]);
  const trainLoss = noGrad(() => seq2seqLoss(loaded.model, { ...o, dropout: dropoutSites(loaded.config) })(batch, new Random(3)).loss.f32()[0]);
  assert.ok(Number.isFinite(trainLoss));
  assert.notEqual(trainLoss, evalLoss);
});

test('probs are computed only for a hook that reads them: never for training dropout', () => {
  const logits = Tensor.f32([1, 2, 3], [1, 3]);
  const seen: string[] = [];
  const onLogits = new Hooks().add('logits', (_t, name) => void seen.push(name));
  hookLogits(onLogits, logits);
  assert.deepEqual(seen, ['logits']);
  const onProbs = new Hooks().add(/probs/, (t, name) => void seen.push(`${name} ${t.f32()[2].toFixed(4)}`));
  hookLogits(onProbs, logits);
  assert.deepEqual(seen, ['logits', 'probs 0.6652']);
  const training = new TrainingDropout(dropoutSites({ modelType: 'gpt2', raw: {} }), new Random(1));
  assert.equal(training.wants('probs'), false);
  assert.equal(training.scope('blocks.1.').scope('attn.').wants?.('pattern'), true);
});
