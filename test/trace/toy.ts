/**
 * A small pre-norm decoder built from the shared blocks (GPT-2's layout:
 * x + attn(ln1(x)), x + mlp(ln2(x)), ln_final, unembedding) with seeded random
 * weights, for the tests that need a pre-norm model whatever families have landed.
 */
import { add, causalMask, embedding, gelu } from '../../src/ops/index.js';
import { MultiHeadAttention } from '../../src/nn/attention.js';
import { FeedForward } from '../../src/nn/feed-forward.js';
import type { HookPoints } from '../../src/nn/hooks.js';
import { LayerNorm, Linear } from '../../src/nn/linear.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { idsTensor, onesLike } from '../../src/trace/inputs.js';
import type { ModelDescription, ReadOut, TraceableModel, TraceInputs } from '../../src/trace/types.js';

/** Deterministic N(0, σ²) values (mulberry32 + Box–Muller). */
export function randomNormal(n: number, sigma: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const uniform = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = sigma * Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return out;
}

export class ToyPreNorm implements TraceableModel {
  readonly description: ModelDescription;
  readonly readOut: ReadOut;
  private readonly embed: Tensor;
  private readonly pos: Tensor;
  private readonly blocks: { ln1: LayerNorm; attn: MultiHeadAttention; ln2: LayerNorm; mlp: FeedForward }[];

  constructor(readonly d = 16, readonly layers = 2, readonly heads = 4, readonly vocab = 24, seed = 7) {
    let next = seed;
    const r = (shape: number[], sigma = 0.5): Tensor => Tensor.f32(randomNormal(shape.reduce((a, b) => a * b, 1), sigma, next++), shape);
    const lin = (i: number, o: number): Linear => new Linear(r([o, i], 1 / Math.sqrt(i)), r([o], 0.1));
    const ln = (): LayerNorm => new LayerNorm(Tensor.f32(randomNormal(d, 0.2, next++).map((v) => 1 + v), [d]), r([d], 0.1), 1e-5);
    this.embed = r([vocab, d], 1);
    this.pos = r([32, d], 0.3);
    this.blocks = Array.from({ length: layers }, () => ({
      ln1: ln(),
      attn: new MultiHeadAttention(lin(d, d), lin(d, d), lin(d, d), lin(d, d), heads),
      ln2: ln(),
      mlp: new FeedForward(lin(d, 4 * d), lin(4 * d, d), gelu),
    }));
    const final = ln();
    this.readOut = { kind: 'linear', norm: { kind: 'layer', weight: final.weight, bias: final.bias, eps: final.eps }, weight: r([vocab, d], 1), bias: r([vocab], 0.1), scale: 1 };
    this.description = {
      family: 'decoder',
      modelType: 'toy-pre-norm',
      summary: 'a toy pre-norm decoder',
      norm: 'pre',
      positions: 'learned',
      vocabSize: vocab,
      stacks: [{ prefix: '', layers, heads, kvHeads: heads, dModel: d, dHead: d / heads, crossAttention: false, causal: true, input: 'inputIds' }],
      lensStack: '',
      specialTokens: { eos: [vocab - 1] },
    };
  }

  run(inputs: TraceInputs, hooks: HookPoints): Tensor {
    const ids = idsTensor('inputIds', inputs.inputIds);
    const [, seq] = ids.shape;
    hooks.run('tokens', ids);
    const tok = hooks.run('embed', embedding(this.embed, ids));
    const pos = hooks.run('pos_embed', this.pos.slice(0, 0, seq).reshape([1, seq, this.d]));
    let x = add(tok, pos);
    const mask = causalMask(seq, seq, idsTensor('attentionMask', inputs.attentionMask ?? onesLike(inputs.inputIds)));
    this.blocks.forEach((b, i) => {
      const h = hooks.scope(`blocks.${i}.`);
      x = h.run('resid_pre', x);
      const { out } = b.attn.forward(h.run('ln1', b.ln1.forward(x)), { mask, scale: 1 / Math.sqrt(this.d / this.heads), hooks: h.scope('attn.') });
      x = h.run('resid_mid', add(x, out));
      x = h.run('resid_post', add(x, b.mlp.forward(h.run('ln2', b.ln2.forward(x)), h.scope('mlp.'))));
    });
    const ro = this.readOut as Extract<ReadOut, { kind: 'linear' }>;
    const n = ro.norm as NonNullable<typeof ro.norm>;
    const normed = hooks.run('ln_final', new LayerNorm(n.weight, n.bias, n.eps).forward(x));
    return hooks.run('logits', new Linear(ro.weight, ro.bias).forward(normed));
  }
}
