/**
 * Training throughput (tokens/s) of one GPT-2-small-shaped step (12 layers,
 * d 768, 12 heads, vocab 50257; 124M parameters, random weights): forward,
 * cross-entropy, backward through the tape and an AdamW update, batch 1 × 32
 * tokens on the active matmul kernel, and batch 1 × 8 tokens on the active and
 * the reference kernel (one reference step: it is slow); outside matmul both
 * share the reference ops. Also what the tape costs: the forward pass and loss
 * recording vs. inside noGrad.
 */
import { performance } from 'node:perf_hooks';
import { kernelInfo, matmulKernel, referenceMatmul, setMatmulKernel, useFastestKernel } from '../src/kernels/index.js';
import { Gpt2Model, parseGpt2Config } from '../src/models/gpt2.js';
import { Weights } from '../src/nn/weights.js';
import { noGrad } from '../src/tensor/autograd.js';
import { gpt2ParameterShapes, initParameters } from '../src/train/init.js';
import { causalLmLoss } from '../src/train/tasks.js';
import { Trainer } from '../src/train/trainer.js';
import { median } from './stats.js';

const SEQ = 32;
/** Tokens on the reference path (and the active path it is compared with). */
const SHORT = 8;

export async function run(): Promise<void> {
  await useFastestKernel();
  const config = parseGpt2Config({ model_type: 'gpt2', vocab_size: 50257, n_embd: 768, n_head: 12, n_layer: 12, n_positions: 1024 });
  const params = initParameters(gpt2ParameterShapes(config), { std: 0.02, seed: 1 });
  const model = new Gpt2Model(config, Weights.from(params));
  const rowOf = (length: number): number[] => Array.from({ length }, (_, i) => (i * 7919) % 50257);
  const row = rowOf(SEQ);
  const trainerFor = (tokens: number[]): Trainer<number[]> => new Trainer(params, [tokens], causalLmLoss(model), { steps: 1000, batchSize: 1, learningRate: 1e-4 });
  /** Median seconds per step over `reps` steps, after `warmUp` untimed ones. */
  const timeSteps = (trainer: Trainer<number[]>, reps: number, warmUp: number): number => {
    for (let i = 0; i < warmUp; i++) trainer.step();
    const times: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      trainer.step();
      times.push(performance.now() - t0);
    }
    return median(times) / 1000;
  };
  const active = kernelInfo();
  const fast = timeSteps(trainerFor(row), 3, 1);
  const short = trainerFor(rowOf(SHORT));
  const fastShort = timeSteps(short, 2, 1);
  const previous = setMatmulKernel(referenceMatmul);
  let reference: number;
  try {
    // The code is warm from the steps above; one reference step is all the budget allows.
    reference = timeSteps(short, 1, 0);
  } finally {
    setMatmulKernel(previous);
  }
  const ids = [row];
  const forward = (): number => {
    const t0 = performance.now();
    causalLmLoss(model)(ids);
    return performance.now() - t0;
  };
  forward();
  const recording = median([forward(), forward(), forward()]);
  const plain = median([noGrad(forward), noGrad(forward), noGrad(forward)]);
  console.log(`\n## Training step, GPT-2-small shape (124M parameters), batch 1\n`);
  console.log(`| path | tokens | s/step | tokens/s | vs reference |`);
  console.log(`|---|---:|---:|---:|---:|`);
  console.log(`| ${active.name} (${active.threads} threads) | ${SEQ} | ${fast.toFixed(2)} | ${(SEQ / fast).toFixed(1)} | |`);
  console.log(`| ${active.name} (${active.threads} threads) | ${SHORT} | ${fastShort.toFixed(2)} | ${(SHORT / fastShort).toFixed(1)} | ${(reference / fastShort).toFixed(1)}× |`);
  console.log(`| reference | ${SHORT} | ${reference.toFixed(2)} | ${(SHORT / reference).toFixed(1)} | 1.0× |`);
  console.log(`\nForward + loss with the tape recording: ${recording.toFixed(0)} ms; inside noGrad: ${plain.toFixed(0)} ms (kernel ${matmulKernel().name}).`);
}
