import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import type { Tensor } from '../../src/tensor/tensor.js';

export interface RecordedRun {
  inputs: { input_ids: number[][]; attention_mask: number[][]; token_type_ids: number[][] };
  expected: Map<string, Tensor>;
}

/** inputs.json and expected.safetensors of a fixture folder. */
export async function recorded(dir: string): Promise<RecordedRun> {
  const inputs = JSON.parse(await readFile(join(dir, 'inputs.json'), 'utf8')) as RecordedRun['inputs'];
  return { inputs, expected: await readSafetensors(nodeFileSystem, join(dir, 'expected.safetensors')) };
}

/** Real token ids of row b, split at the first [SEP] into segment A and segment B (special tokens dropped). */
export function segments(run: RecordedRun, b: number): [number[], number[]] {
  const ids = run.inputs.input_ids[b].filter((_, t) => run.inputs.attention_mask[b][t] === 1);
  const sep = ids.indexOf(3);
  return [ids.slice(1, sep), ids.slice(sep + 1, ids.length - 1)];
}
