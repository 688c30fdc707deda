/**
 * What tracing costs: one forward pass of a 2017-Transformer-shaped model
 * (d=256, 8 heads, 4 encoder + 4 decoder layers, FFN 1024, source and target
 * 64 tokens, random weights) with no hooks (`noHooks`), with an empty `Hooks`
 * set (every hook point is visited, nothing matches), and with `runWithCache`
 * keeping every intermediate. Modes are interleaved rep by rep so drift hits
 * them alike; the table gives medians and ratios to the untraced pass, with the
 * active matmul kernel and with the reference kernel.
 */
import { parseModelConfig, type VanillaTransformerConfig } from '../src/io/config.js';
import { kernelInfo, referenceMatmul, setMatmulKernel, useFastestKernel } from '../src/kernels/index.js';
import { VanillaTransformer } from '../src/models/vanilla.js';
import { Hooks, noHooks } from '../src/nn/hooks.js';
import { Weights } from '../src/nn/weights.js';
import { Tensor } from '../src/tensor/tensor.js';
import { VanillaTraceable } from '../src/trace/adapters/vanilla.js';
import { runWithCache } from '../src/trace/run.js';
import type { TraceInputs } from '../src/trace/types.js';
import { randomTensor } from './random.js';
import { median } from './stats.js';

const D = 256;
const HEADS = 8;
const LAYERS = 4;
const FFN = 1024;
const VOCAB = 1000;
const SEQ = 64;

/** torch.nn.Transformer state_dict names inside the fixture's wrapper. */
function randomModel(): VanillaTraceable {
  const config = parseModelConfig(
    {
      model_type: 'vanilla_transformer_2017',
      d_model: D,
      nhead: HEADS,
      num_encoder_layers: LAYERS,
      num_decoder_layers: LAYERS,
      dim_feedforward: FFN,
      src_vocab_size: VOCAB,
      tgt_vocab_size: VOCAB,
      max_position_embeddings: 128,
      pad_token_id: 0,
      bos_token_id: 1,
      eos_token_id: 2,
    },
    'bench config',
  ) as VanillaTransformerConfig;
  const w = new Map<string, Tensor>();
  let seed = 1;
  const put = (name: string, shape: number[], amplitude = 1 / Math.sqrt(shape[shape.length - 1])) => w.set(name, randomTensor(shape, amplitude, seed++));
  put('src_embed.weight', [VOCAB, D], 0.1);
  put('tgt_embed.weight', [VOCAB, D], 0.1);
  put('pos_encoding', [128, D], 1);
  put('generator.weight', [VOCAB, D]);
  put('generator.bias', [VOCAB], 0.01);
  const attention = (p: string) => {
    put(`${p}.in_proj_weight`, [3 * D, D]);
    put(`${p}.in_proj_bias`, [3 * D], 0.01);
    put(`${p}.out_proj.weight`, [D, D]);
    put(`${p}.out_proj.bias`, [D], 0.01);
  };
  const norm = (p: string) => {
    put(`${p}.weight`, [D], 1);
    put(`${p}.bias`, [D], 0.01);
  };
  for (const stack of ['encoder', 'decoder']) {
    for (let i = 0; i < LAYERS; i++) {
      const p = `transformer.${stack}.layers.${i}`;
      attention(`${p}.self_attn`);
      if (stack === 'decoder') attention(`${p}.multihead_attn`);
      put(`${p}.linear1.weight`, [FFN, D]);
      put(`${p}.linear1.bias`, [FFN], 0.01);
      put(`${p}.linear2.weight`, [D, FFN]);
      put(`${p}.linear2.bias`, [D], 0.01);
      for (const n of stack === 'decoder' ? ['norm1', 'norm2', 'norm3'] : ['norm1', 'norm2']) norm(`${p}.${n}`);
    }
    norm(`transformer.${stack}.norm`);
  }
  return new VanillaTraceable(new VanillaTransformer(config, Weights.from(w, 'random weights')));
}

type Mode = 'noHooks' | 'empty Hooks' | 'full cache';

function measure(model: VanillaTraceable, inputs: TraceInputs, reps: number): Record<Mode, number> {
  const modes: Record<Mode, () => void> = {
    noHooks: () => void model.run(inputs, noHooks),
    'empty Hooks': () => void model.run(inputs, new Hooks()),
    'full cache': () => void runWithCache(model, inputs),
  };
  const times: Record<Mode, number[]> = { noHooks: [], 'empty Hooks': [], 'full cache': [] };
  for (const run of Object.values(modes)) run(); // warm-up
  for (let r = 0; r < reps; r++) {
    for (const [mode, run] of Object.entries(modes) as [Mode, () => void][]) {
      const start = performance.now();
      run();
      times[mode].push(performance.now() - start);
    }
  }
  return { noHooks: median(times.noHooks), 'empty Hooks': median(times['empty Hooks']), 'full cache': median(times['full cache']) };
}

export async function run(): Promise<void> {
  await useFastestKernel();
  const model = randomModel();
  const ids = Array.from({ length: SEQ }, (_, i) => (i * 37 + 5) % VOCAB);
  const inputs: TraceInputs = { inputIds: [ids], decoderInputIds: [ids.map((t) => (t + 11) % VOCAB)] };
  const { cache } = runWithCache(model, inputs);
  let cachedBytes = 0;
  for (const [, t] of cache.entries()) cachedBytes += t.data.byteLength;

  const rows: string[] = [];
  const kernels: [string, () => Record<Mode, number>][] = [
    [`${kernelInfo().name} (${kernelInfo().threads} threads)`, () => measure(model, inputs, 7)],
    [
      'reference',
      () => {
        const previous = setMatmulKernel(referenceMatmul);
        try {
          return measure(model, inputs, 3);
        } finally {
          setMatmulKernel(previous);
        }
      },
    ],
  ];
  for (const [name, time] of kernels) {
    const t = time();
    for (const mode of ['noHooks', 'empty Hooks', 'full cache'] as Mode[]) {
      rows.push(`| ${name} | ${mode} | ${t[mode].toFixed(1)} | ${(t[mode] / t.noHooks).toFixed(3)} |`);
    }
  }
  console.log(`vanilla-shaped model: d=${D}, ${HEADS} heads, ${LAYERS}+${LAYERS} layers, FFN ${FFN}, source/target ${SEQ} tokens; full cache keeps ${cache.size} tensors, ${(cachedBytes / 2 ** 20).toFixed(1)} MiB`);
  console.log('');
  console.log('| kernel | tracing | forward ms (median) | × untraced |');
  console.log('|---|---|---:|---:|');
  for (const row of rows) console.log(row);
}
