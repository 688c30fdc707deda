/**
 * Measure the memory of loading a model folder in a fresh child process, so
 * that nothing else the caller holds counts: peak RSS
 * (`process.resourceUsage().maxRSS`) after loading minus the child's peak
 * after importing the loader, and the time the load took. Used by the load
 * bench and by the test that holds `glassformer info`'s prediction to a
 * measured peak.
 *
 * The peak is the kernel's high-water mark of the child's resident set,
 * VmHWM in /proc/self/status (Linux). `process.resourceUsage().maxRSS` would
 * be wrong here: Linux keeps ru_maxrss across execve, so a child started by a
 * parent that holds 300 MB of tensors reports the parent's peak
 * (getrusage(2)); VmHWM belongs to the child's own address space. Elsewhere
 * maxRSS is the fallback.
 */
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LinearDtype } from '../src/nn/weights.js';

/** lazy: today's loader (loadModel); eager: every tensor read first (loadAll), then converted; naive: the whole file in one buffer, tensors copied out of it. */
export type LoadPath = 'lazy' | 'eager' | 'naive';

export interface LoadProbe {
  /** Peak RSS growth over the child's baseline, bytes. */
  readonly peak: number;
  readonly seconds: number;
}

const DIST_SRC = join(dirname(fileURLToPath(import.meta.url)), '..', 'src');

/** The child: imports everything first, then records the baseline, loads, and prints what it measured. */
const CHILD = `
const [src, dir, linearDtype, path] = process.argv.slice(1);
const { readFileSync } = await import('node:fs');
const { join } = await import('node:path');
const { loadModel, modelFromConfig } = await import(src + '/models/registry.js');
const { openModelFolder } = await import(src + '/io/model-folder.js');
const { nodeFileSystem } = await import(src + '/io/node-fs.js');
const { openSafetensorsBytes } = await import(src + '/io/safetensors.js');
const { Weights } = await import(src + '/nn/weights.js');
const highWater = () => {
  try {
    const m = /VmHWM:\\s*(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]);
  } catch {}
  return process.resourceUsage().maxRSS;
};
const base = highWater();
const start = performance.now();
let model;
if (path === 'lazy') model = await loadModel(nodeFileSystem, dir, { linearDtype });
else {
  const folder = await openModelFolder(nodeFileSystem, dir);
  let tensors;
  if (path === 'eager') tensors = await folder.checkpoint.loadAll();
  else {
    const bytes = readFileSync(join(dir, 'model.safetensors'));
    tensors = await (await openSafetensorsBytes(bytes, dir)).loadAll();
    globalThis.kept = bytes;
  }
  model = modelFromConfig(folder.config, Weights.from(tensors, dir, { linearDtype }));
}
const seconds = (performance.now() - start) / 1000;
const peak = highWater();
process.stdout.write(JSON.stringify({ peak: (peak - base) * 1024, seconds, family: model.family }));
`;

export function probeLoad(dir: string, linearDtype: LinearDtype, path: LoadPath): LoadProbe {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', CHILD, DIST_SRC, dir, linearDtype, path], { encoding: 'utf8', maxBuffer: 1 << 20 });
  const { peak, seconds } = JSON.parse(out) as LoadProbe;
  return { peak, seconds };
}
