/**
 * Training checkpoints that resume exactly: the parameters and the optimizer's
 * moments as safetensors (under the HF weight names, moments as
 * `<name>.exp_avg` …), and the step, the random generator's state and the data
 * position as JSON. A checkpoint is written into a temporary folder that is
 * renamed into place, so a crash never leaves half a checkpoint.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FormatError } from '../errors.js';
import { openSafetensorsBytes, serializeSafetensors } from '../io/safetensors.js';
import { Tensor } from '../tensor/tensor.js';
import type { OptimizerState } from './optim.js';

export const TRAINER_STATE = 'trainer_state.json';

/** What besides the tensors a run needs to continue as if never stopped. */
export interface TrainerState {
  /** Optimizer steps taken. */
  step: number;
  /** The training random generator's state (dropout, masking). */
  randomState: number;
  /** Examples consumed so far (the data order is a function of this and the seed). */
  examplesSeen: number;
  /** Loss history, one entry per optimizer step. */
  history: { step: number; loss: number; lr: number }[];
  /** Anything the recipe wants to keep (its options, its config). */
  extra?: Record<string, unknown>;
}

/** Write `dir` atomically: the files go into `dir.tmp` first, which then replaces `dir`. */
export async function saveCheckpoint(
  dir: string,
  params: ReadonlyMap<string, Tensor>,
  optimizer: OptimizerState,
  state: TrainerState,
): Promise<void> {
  const tmp = `${dir}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await writeFile(join(tmp, 'model.safetensors'), serializeSafetensors(new Map([...params].map(([n, t]) => [n, t.detach()]))));
  const moments = new Map([...optimizer.slots].map(([name, data]) => [name, new Tensor('f32', [data.length], data)]));
  await writeFile(join(tmp, 'optimizer.safetensors'), serializeSafetensors(moments, { step: String(optimizer.step) }));
  await writeFile(join(tmp, TRAINER_STATE), JSON.stringify(state, null, 1));
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
}

export interface LoadedCheckpoint {
  params: Map<string, Tensor>;
  optimizer: OptimizerState;
  state: TrainerState;
}

/** Read a checkpoint written by `saveCheckpoint`. */
export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const statePath = join(dir, TRAINER_STATE);
  let state: TrainerState;
  try {
    state = JSON.parse(await readFile(statePath, 'utf8')) as TrainerState;
  } catch (e) {
    throw new FormatError(statePath, `not a glassformer training checkpoint (${(e as Error).message})`);
  }
  if (typeof state.step !== 'number' || typeof state.randomState !== 'number' || typeof state.examplesSeen !== 'number') {
    throw new FormatError(statePath, 'expected numeric "step", "randomState" and "examplesSeen"');
  }
  const model = await openSafetensorsBytes(new Uint8Array(await readFile(join(dir, 'model.safetensors'))), join(dir, 'model.safetensors'));
  const params = await model.loadAll();
  const optFile = await openSafetensorsBytes(new Uint8Array(await readFile(join(dir, 'optimizer.safetensors'))), join(dir, 'optimizer.safetensors'));
  const slots = new Map<string, Float32Array>();
  for (const [name, t] of await optFile.loadAll()) slots.set(name, Float32Array.from(t.f32()));
  const step = Number(optFile.metadata?.step ?? state.step);
  return { params: new Map([...params].map(([n, t]) => [n, t.to('f32').clone().requireGrad()])), optimizer: { step, slots }, state };
}
