/**
 * A worker of the WebAssembly kernel's thread pool: a Node worker thread or a
 * browser Web Worker. It instantiates the module on the shared memory, then
 * takes parts of each job the calling thread publishes (driver.ts) until the
 * process ends. It sleeps in `Atomics.wait`, which workers may do everywhere.
 */
import { claim, CTL, CTL_BYTES, finish, readJob, runPart, scratchAddress } from './driver.js';
import type { GemmExports } from './gemm-module.js';

/** What the pool sends a new worker. */
export interface WorkerInit {
  readonly module: WebAssembly.Module;
  readonly memory: WebAssembly.Memory;
  /** 1-based: the calling thread is 0. */
  readonly index: number;
}

// Polls before sleeping: longer than the gap between the products of one
// forward pass, so a busy model's workers do not pay the wake-up latency.
const SPIN_MS = 1;

function serve({ module, memory, index }: WorkerInit): void {
  const e = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as GemmExports;
  const ctl = new Int32Array(memory.buffer, 0, CTL_BYTES / 4);
  const scratch = scratchAddress(index);
  Atomics.add(ctl, CTL.ready, 1);
  for (;;) {
    const word = Atomics.load(ctl, CTL.job);
    const part = index < Atomics.load(ctl, CTL.active) ? claim(ctl) : -1;
    if (part >= 0) {
      runPart(e, readJob(ctl), part, scratch);
      Atomics.add(ctl, CTL.workerParts, 1);
      finish(ctl);
      continue;
    }
    const until = performance.now() + SPIN_MS;
    while (Atomics.load(ctl, CTL.job) === word && performance.now() < until);
    Atomics.wait(ctl, CTL.job, word);
  }
}

const isNode = typeof globalThis.process?.versions?.node === 'string';
if (isNode) {
  // A computed specifier keeps bundlers from resolving a Node module in the browser build.
  const threads = 'node:worker_' + 'threads';
  const { workerData } = (await import(/* @vite-ignore */ /* webpackIgnore: true */ threads)) as typeof import('node:worker_threads');
  serve(workerData as WorkerInit);
} else {
  (globalThis as unknown as { onmessage: (event: MessageEvent<WorkerInit>) => void }).onmessage = (event) => serve(event.data);
}
