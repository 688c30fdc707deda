import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { UnsupportedError, WeightError } from '../../src/errors.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { LlamaModel, llamaAttentionMask, parseLlamaConfig } from '../../src/models/llama.js';
import { Hooks } from '../../src/nn/hooks.js';
import { applyRotary, RotaryEmbedding } from '../../src/nn/rotary.js';
import { Weights } from '../../src/nn/weights.js';
import { concat, Tensor } from '../../src/tensor/tensor.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const shared = process.env.GLASSFORMER_SHARED ?? join(repoRoot, '..', 'shared');
const fixture = join(shared, 'fixtures/hf-tiny/llama');
const llamaJson = JSON.parse(readFileSync(join(fixture, 'config.json'), 'utf8')) as Record<string, unknown>;
const ids = Tensor.i32([1, 117, 15, 6, 114, 114, 11, 95], [1, 8]);

async function llamaWeights(): Promise<Map<string, Tensor>> {
  return new Map(await readSafetensors(nodeFileSystem, join(fixture, 'model.safetensors')));
}

function maxDiff(a: Tensor, b: Tensor): number {
  const x = a.f32();
  const y = b.f32();
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

test('Phi-3 fused qkv_proj and gate_up_proj give exactly the Llama logits of the same weights', async () => {
  const w = await llamaWeights();
  const llama = new LlamaModel(parseLlamaConfig(llamaJson), Weights.from(w));
  const fused = new Map<string, Tensor>();
  for (const [name, t] of w) {
    const m = /^(model\.layers\.\d+)\.(self_attn\.(q|k|v)_proj|mlp\.(gate|up)_proj)\.weight$/.exec(name);
    if (!m) fused.set(name, t);
  }
  for (let i = 0; i < 2; i++) {
    const p = `model.layers.${i}`;
    fused.set(`${p}.self_attn.qkv_proj.weight`, concat(['q', 'k', 'v'].map((x) => w.get(`${p}.self_attn.${x}_proj.weight`) as Tensor), 0));
    fused.set(`${p}.mlp.gate_up_proj.weight`, concat(['gate', 'up'].map((x) => w.get(`${p}.mlp.${x}_proj.weight`) as Tensor), 0));
  }
  const phi3 = new LlamaModel(parseLlamaConfig({ ...llamaJson, model_type: 'phi3', architectures: ['Phi3ForCausalLM'] }), Weights.from(fused));
  assert.equal(maxDiff(phi3.forward(ids).logits, llama.forward(ids).logits), 0);
});

test('Qwen2 loads q/k/v biases (zero biases leave the Llama logits unchanged) and refuses a checkpoint without them', async () => {
  const w = await llamaWeights();
  const qwen2Json = { ...llamaJson, model_type: 'qwen2' };
  assert.throws(() => new LlamaModel(parseLlamaConfig(qwen2Json), Weights.from(w)), (e: unknown) => e instanceof WeightError && /q_proj\.bias/.test(e.message));
  const withBias = new Map(w);
  for (let i = 0; i < 2; i++) {
    withBias.set(`model.layers.${i}.self_attn.q_proj.bias`, Tensor.zeros([32]));
    withBias.set(`model.layers.${i}.self_attn.k_proj.bias`, Tensor.zeros([16]));
    withBias.set(`model.layers.${i}.self_attn.v_proj.bias`, Tensor.zeros([16]));
  }
  const qwen2 = new LlamaModel(parseLlamaConfig(qwen2Json), Weights.from(withBias));
  const llama = new LlamaModel(parseLlamaConfig(llamaJson), Weights.from(w));
  assert.ok(maxDiff(qwen2.forward(ids).logits, llama.forward(ids).logits) < 1e-6);
  // Tensors the configuration does not use are an error, not silently dropped.
  assert.throws(() => new LlamaModel(parseLlamaConfig(llamaJson), Weights.from(withBias)), (e: unknown) => e instanceof WeightError && /does not use/.test(e.message));
});

test('Qwen3 normalises every query and key head (unit gains: mean square 1 per head) before RoPE', async () => {
  const w = await llamaWeights();
  for (let i = 0; i < 2; i++) {
    w.set(`model.layers.${i}.self_attn.q_norm.weight`, Tensor.full([8], 1));
    w.set(`model.layers.${i}.self_attn.k_norm.weight`, Tensor.full([8], 1));
  }
  const qwen3 = new LlamaModel(parseLlamaConfig({ ...llamaJson, model_type: 'qwen3' }), Weights.from(w));
  const seen: Tensor[] = [];
  qwen3.forward(ids, { hooks: new Hooks().add(/^blocks\.\d+\.attn\.(q|k)$/, (t) => void seen.push(t)) });
  assert.equal(seen.length, 4);
  for (const t of seen) {
    const x = t.f32();
    for (let h = 0; h < x.length; h += 8) {
      let ms = 0;
      for (let j = 0; j < 8; j++) ms += x[h + j] ** 2 / 8;
      assert.ok(Math.abs(ms - 1) < 1e-3, `mean square ${ms}`);
    }
  }
});

test('sliding-window mask (Mistral, Phi-3): a query sees only its `window` most recent keys', () => {
  const mask = llamaAttentionMask(4, 4, Tensor.i32([1, 1, 1, 1], [1, 4]), 2).f32();
  const visible = (i: number) => [0, 1, 2, 3].filter((j) => mask[i * 4 + j] === 0);
  assert.deepEqual(visible(3), [2, 3]);
  assert.deepEqual(visible(1), [0, 1]);
  assert.deepEqual(visible(0), [0]);
});

test('rope_scaling: llama3 keeps short wavelengths, slows long ones by the factor and blends between', () => {
  const s = parseLlamaConfig({ ...llamaJson, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } }).ropeScaling;
  assert.ok(s?.type === 'llama3');
  const rope = new RotaryEmbedding(8, 10000, s, 128);
  // Base inv_freq = [1, 0.1, 0.01, 0.001]; wavelengths 2π/f = 6.3, 62.8, 628, 6283 against the band [16, 64].
  const { cos, sin } = rope.cosSin(Tensor.i32([1], [1, 1]));
  const angles = [0, 1, 2, 3].map((i) => Math.atan2(sin.f32()[i], cos.f32()[i]));
  const smooth = (64 / ((2 * Math.PI) / 0.1) - 1) / 3;
  const expected = [1, (1 - smooth) * (0.1 / 8) + smooth * 0.1, 0.01 / 8, 0.001 / 8];
  angles.forEach((a, i) => assert.ok(Math.abs(a - expected[i]) < 1e-5 * expected[i], `channel ${i}: ${a} vs ${expected[i]}`));
});

test('rope_scaling: linear divides the frequencies; dynamic NTK grows θ once positions pass the maximum, and shrinks back', () => {
  const linear = new RotaryEmbedding(8, 10000, { type: 'linear', factor: 4 }, 128);
  assert.ok(Math.abs(Math.acos(linear.cosSin(Tensor.i32([1], [1, 1])).cos.f32()[0]) - 0.25) < 1e-6);
  const dynamic = new RotaryEmbedding(8, 10000, { type: 'dynamic', factor: 2 }, 4);
  const channel1 = (positions: number[]) => dynamic.cosSin(Tensor.i32(positions, [1, positions.length])).cos.f32()[8 + 1]; // position index 1
  assert.ok(Math.abs(channel1([0, 1]) - Math.cos(0.1)) < 1e-6);
  // 8 positions > 4: θ' = θ·(2·8/4 − 1)^(8/6).
  const base = 10000 * 3 ** (8 / 6);
  assert.ok(Math.abs(channel1([0, 1, 2, 3, 4, 5, 6, 7]) - Math.cos(1 / base ** (2 / 8))) < 1e-6);
  assert.ok(Math.abs(channel1([0, 1]) - Math.cos(0.1)) < 1e-6);
  assert.throws(() => parseLlamaConfig({ ...llamaJson, rope_scaling: { rope_type: 'longrope', factor: 2 } }), UnsupportedError);
  assert.throws(() => parseLlamaConfig({ ...llamaJson, rope_scaling: { type: 'yarn', factor: 2 } }), (e: unknown) => e instanceof UnsupportedError && /not supported/.test(e.message));
});

test('rotate_half RoPE on halves equals RoPE on interleaved pairs after the llama2.c row permutation', () => {
  const rope = new RotaryEmbedding(4, 10000, null, 16);
  const { cos, sin } = rope.cosSin(Tensor.i32([5], [1, 1]));
  const x = [0.3, -1.2, 0.7, 2.0]; // halves layout: pairs (x0, x2) and (x1, x3)
  const out = applyRotary(Tensor.f32(x, [1, 1, 1, 4]), cos, sin).f32();
  for (const [i, j, f] of [[0, 2, 1], [1, 3, 0.01]] as const) {
    const a = 5 * f;
    assert.ok(Math.abs(out[i] - (x[i] * Math.cos(a) - x[j] * Math.sin(a))) < 1e-6);
    assert.ok(Math.abs(out[j] - (x[j] * Math.cos(a) + x[i] * Math.sin(a))) < 1e-6);
  }
});
