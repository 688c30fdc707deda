/**
 * The training loop: micro-batches drawn in a seeded order, gradient
 * accumulation, clipping by global norm, a learning-rate schedule, an
 * optimizer step, a progress line on a terminal, a loss history, and
 * checkpoints that resume exactly.
 *
 * What a step computes is the recipe's business: it passes a `lossOf` function
 * from a batch of examples to a scalar loss tensor (see tasks.ts for causal LM,
 * masked LM, classification and seq2seq).
 */
import { UnsupportedError, WeightError } from '../errors.js';
import { backward } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';
import { loadCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint.js';
import { AdamW, SGD, clipGradNorm, isNoDecayParameter, learningRate, type Optimizer, type ScheduleOptions } from './optim.js';
import { Random } from './random.js';

/** A step's loss and how many tokens it covered (for tokens/s). */
export interface StepLoss {
  loss: Tensor;
  tokens: number;
}

export interface TrainerOptions {
  /** Optimizer steps in the whole run (the schedule decays over these). */
  steps: number;
  /** Examples per micro-batch. */
  batchSize: number;
  /** Micro-batches whose gradients add up to one optimizer step. */
  gradientAccumulation?: number;
  learningRate: number;
  warmupSteps?: number;
  schedule?: ScheduleOptions['kind'];
  optimizer?: 'adamw' | 'sgd';
  weightDecay?: number;
  betas?: [number, number];
  /** Clip the global gradient norm to this; none when absent. */
  maxGradNorm?: number;
  seed?: number;
  /** Where the progress line goes (shown only when it is a TTY). */
  progress?: { write(text: string): unknown; isTTY?: boolean };
}

/**
 * Trains `params` (leaves that require gradients, by HF name) on `examples`.
 * Examples are visited in a fresh seeded shuffle each epoch; the position is a
 * count of examples seen, so a resumed run continues with the same batches.
 */
export class Trainer<E> {
  readonly optimizer: Optimizer;
  readonly random: Random;
  state: TrainerState;
  private readonly accumulation: number;
  private epochOrder: { epoch: number; order: number[] } = { epoch: -1, order: [] };

  constructor(
    readonly params: Map<string, Tensor>,
    readonly examples: readonly E[],
    readonly lossOf: (batch: E[], random: Random) => StepLoss,
    readonly options: TrainerOptions,
  ) {
    if (examples.length === 0) throw new UnsupportedError('Trainer: the training set is empty');
    this.accumulation = options.gradientAccumulation ?? 1;
    const optimizer = options.optimizer ?? 'adamw';
    this.optimizer =
      optimizer === 'adamw'
        ? new AdamW(params, { weightDecay: options.weightDecay ?? 0.01, betas: options.betas, noDecay: isNoDecayParameter })
        : new SGD(params, { weightDecay: options.weightDecay ?? 0 });
    this.random = new Random(options.seed ?? 0);
    this.state = { step: 0, randomState: this.random.state, examplesSeen: 0, history: [] };
  }

  private schedule(): ScheduleOptions {
    return { peakLr: this.options.learningRate, warmupSteps: this.options.warmupSteps ?? 0, totalSteps: this.options.steps, kind: this.options.schedule ?? 'cosine' };
  }

  /** The next `batchSize` examples in this run's order. */
  private nextBatch(): E[] {
    const n = this.examples.length;
    const batch: E[] = [];
    for (let i = 0; i < this.options.batchSize; i++) {
      const seen = this.state.examplesSeen++;
      const epoch = Math.floor(seen / n);
      if (this.epochOrder.epoch !== epoch) {
        // Each epoch's order depends only on the seed and the epoch, not on what came before.
        const order = new Random(((this.options.seed ?? 0) * 7919 + epoch * 104729) >>> 0).shuffle(this.examples.map((_, j) => j));
        this.epochOrder = { epoch, order };
      }
      batch.push(this.examples[this.epochOrder.order[seen % n]]);
    }
    return batch;
  }

  /** One optimizer step over `gradientAccumulation` micro-batches; returns the mean loss. */
  step(): { loss: number; tokens: number; lr: number } {
    let lossSum = 0;
    let tokens = 0;
    this.optimizer.zeroGrad();
    for (let micro = 0; micro < this.accumulation; micro++) {
      const out = this.lossOf(this.nextBatch(), this.random);
      lossSum += out.loss.f32()[0];
      tokens += out.tokens;
      // The mean over micro-batches, as HF's Trainer divides each loss by the accumulation steps.
      backward(out.loss, Tensor.full(out.loss.shape, 1 / this.accumulation));
    }
    if (this.options.maxGradNorm !== undefined) clipGradNorm(this.params, this.options.maxGradNorm);
    const lr = learningRate(this.state.step, this.schedule());
    this.optimizer.step(lr);
    this.state.step++;
    this.state.randomState = this.random.state;
    const loss = lossSum / this.accumulation;
    this.state.history.push({ step: this.state.step, loss, lr });
    return { loss, tokens, lr };
  }

  /** Run until `options.steps` steps are done, calling `onStep` after each (checkpointing, evaluation). */
  async train(onStep?: (step: number) => Promise<void> | void): Promise<TrainerState> {
    const progress = this.options.progress;
    const tty = progress?.isTTY === true;
    const started = performance.now();
    let tokens = 0;
    while (this.state.step < this.options.steps) {
      const s = this.step();
      tokens += s.tokens;
      if (tty) {
        const rate = tokens / ((performance.now() - started) / 1000);
        const done = this.state.step / this.options.steps;
        const bar = '█'.repeat(Math.round(done * 24)).padEnd(24, '·');
        progress.write(`\r${bar} ${this.state.step}/${this.options.steps}  loss ${s.loss.toFixed(4)}  lr ${s.lr.toExponential(2)}  ${rate.toFixed(0)} tokens/s `);
      }
      await onStep?.(this.state.step);
    }
    if (tty) progress.write('\n');
    return this.state;
  }

  async save(dir: string, extra?: Record<string, unknown>): Promise<void> {
    await saveCheckpoint(dir, this.params, this.optimizer.state, { ...this.state, ...(extra ? { extra } : {}) });
  }

  /** Continue from a checkpoint: parameters, optimizer moments, step, random state and data position. */
  async resume(dir: string): Promise<void> {
    const loaded = await loadCheckpoint(dir);
    for (const [name, p] of this.params) {
      const saved = loaded.params.get(name);
      if (!saved || saved.size !== p.size) {
        throw new WeightError(`${dir}/model.safetensors: expected parameter "${name}" with ${p.size} values, found ${saved ? `${saved.size} values` : 'none'}`);
      }
      (p.data as Float32Array).set(saved.f32());
    }
    this.optimizer.state.step = loaded.optimizer.step;
    this.optimizer.state.slots.clear();
    for (const [k, v] of loaded.optimizer.slots) this.optimizer.state.slots.set(k, v);
    this.state = loaded.state;
    this.random.state = loaded.state.randomState;
  }
}
