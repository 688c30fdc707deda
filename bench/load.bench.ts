/**
 * Loading a checkpoint: peak memory against the file size N and against what
 * `glassformer info` predicts, and load speed (MB/s of file).
 *
 * Synthetic checkpoints of a GPT-2-small layout (vocabulary 50257, width 768,
 * 6 of its 12 layers, so the f32 file is ≈ 330 MB) are written to a temporary
 * folder as f32, bf16 and f16, and as an f32 set of two shards behind an
 * index. Each load runs in a fresh child process (bench/load-probe.ts); its
 * peak is the growth of its resident high-water mark (VmHWM) over its baseline after imports.
 * Paths: lazy (loadModel: each tensor read when a layer asks for it and
 * converted there), eager (every tensor read first with loadAll, then
 * converted: the loader before lazy reads) and naive (the whole file read
 * into one buffer and tensors copied out of it).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelInfo } from '../src/hub/info.js';
import { nodeFileSystem } from '../src/io/node-fs.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import type { LinearDtype } from '../src/nn/weights.js';
import { Tensor } from '../src/tensor/tensor.js';
import { probeLoad, type LoadPath } from './load-probe.js';

const VOCAB = 50257;
const WIDTH = 768;
const LAYERS = 6;
const POSITIONS = 1024;
const MB = 1e6;

/** Small values from a linear congruential generator: fast, and every value an ordinary float. */
function filled(shape: number[], seed: number): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(size);
  let state = seed >>> 0;
  for (let i = 0; i < size; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = (state / 2 ** 32 - 0.5) * 0.2;
  }
  return new Tensor('f32', shape, data);
}

function gpt2Tensors(): Map<string, Tensor> {
  const tensors = new Map<string, Tensor>();
  let seed = 1;
  const add = (name: string, shape: number[]): void => void tensors.set(`transformer.${name}`, filled(shape, seed++));
  add('wte.weight', [VOCAB, WIDTH]);
  add('wpe.weight', [POSITIONS, WIDTH]);
  for (let l = 0; l < LAYERS; l++) {
    for (const n of ['ln_1', 'ln_2']) {
      add(`h.${l}.${n}.weight`, [WIDTH]);
      add(`h.${l}.${n}.bias`, [WIDTH]);
    }
    for (const [n, inF, outF] of [
      ['attn.c_attn', WIDTH, 3 * WIDTH],
      ['attn.c_proj', WIDTH, WIDTH],
      ['mlp.c_fc', WIDTH, 4 * WIDTH],
      ['mlp.c_proj', 4 * WIDTH, WIDTH],
    ] as const) {
      add(`h.${l}.${n}.weight`, [inF, outF]);
      add(`h.${l}.${n}.bias`, [outF]);
    }
  }
  add('ln_f.weight', [WIDTH]);
  add('ln_f.bias', [WIDTH]);
  return tensors;
}

const CONFIG = { model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], vocab_size: VOCAB, n_embd: WIDTH, n_layer: LAYERS, n_head: 12, n_positions: POSITIONS };

async function writeFolder(dir: string, tensors: ReadonlyMap<string, Tensor>, shards: number): Promise<void> {
  await writeFile(join(dir, 'config.json'), JSON.stringify(CONFIG));
  if (shards === 1) return writeSafetensors(nodeFileSystem, join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  const names = [...tensors.keys()];
  const per = Math.ceil(names.length / shards);
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `model-0000${s + 1}-of-0000${shards}.safetensors`;
    const members = names.slice(s * per, (s + 1) * per);
    await writeSafetensors(nodeFileSystem, join(dir, file), new Map(members.map((n) => [n, tensors.get(n) as Tensor])), { format: 'pt' });
    for (const n of members) weightMap[n] = file;
  }
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}

interface Case {
  readonly checkpoint: string;
  readonly linearDtype: LinearDtype;
  readonly path: LoadPath;
}

const CASES: readonly Case[] = [
  ...(['f32', 'bf16', 'int8'] as const).flatMap((linearDtype) =>
    (['lazy', 'eager', 'naive'] as const).map((path) => ({ checkpoint: 'f32', linearDtype, path })),
  ),
  ...(['f32', 'bf16', 'int8'] as const).map((linearDtype) => ({ checkpoint: 'bf16', linearDtype, path: 'lazy' as const })),
  { checkpoint: 'bf16', linearDtype: 'bf16', path: 'eager' },
  ...(['f32', 'bf16'] as const).map((linearDtype) => ({ checkpoint: 'f16', linearDtype, path: 'lazy' as const })),
  ...(['f32', 'int8'] as const).map((linearDtype) => ({ checkpoint: 'f32 sharded', linearDtype, path: 'lazy' as const })),
];

const mb = (bytes: number): string => (bytes / MB).toFixed(0);

export async function run(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'glassformer-load-bench-'));
  try {
    const f32 = gpt2Tensors();
    const folders: Record<string, string> = {};
    const variants: [string, ReadonlyMap<string, Tensor>, number][] = [
      ['f32', f32, 1],
      ['bf16', new Map([...f32].map(([n, t]) => [n, t.to('bf16')])), 1],
      ['f16', new Map([...f32].map(([n, t]) => [n, t.to('f16')])), 1],
      ['f32 sharded', f32, 2],
    ];
    for (const [name, tensors, shards] of variants) {
      folders[name] = join(root, name.replace(' ', '-'));
      await mkdir(folders[name]);
      await writeFolder(folders[name], tensors, shards);
    }
    console.log(
      `GPT-2-small layout with ${LAYERS} layers; peak = growth of a fresh child's VmHWM (resident high-water mark) over its baseline after imports; load avg ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
    );
    console.log('| checkpoint | N (MB) | linearDtype | path | peak (MB) | peak ÷ N | info predicts (MB) | measured ÷ predicted | load MB/s |');
    console.log('|---|---|---|---|---|---|---|---|---|');
    for (const c of CASES) {
      const info = await modelInfo(folders[c.checkpoint]);
      const n = info.weights?.bytes ?? 0;
      const predicted = info.memory?.load[c.linearDtype].peak ?? 0;
      const probe = probeLoad(folders[c.checkpoint], c.linearDtype, c.path);
      const ratio = (probe.peak / n).toFixed(2);
      const vsPrediction = c.path === 'lazy' ? (probe.peak / predicted).toFixed(2) : '—';
      console.log(
        `| ${c.checkpoint} | ${mb(n)} | ${c.linearDtype} | ${c.path} | ${mb(probe.peak)} | ${ratio} | ${mb(predicted)} | ${vsPrediction} | ${(n / MB / probe.seconds).toFixed(0)} |`,
      );
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
