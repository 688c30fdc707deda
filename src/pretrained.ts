/**
 * `fromPretrained(idOrPath)`: what a Hugging Face user types. Resolves a local
 * folder, a folder in the Python cache or a Hub id (downloading into the cache
 * Python shares), then loads the model its config.json names. Node only.
 *
 * The weights are read tensor by tensor as the model's layers ask for them,
 * each converted to `linearDtype` as it is read, so loading an N-MB checkpoint
 * peaks near the model's size in memory plus one tensor, not twice N
 * (`glassformer info` prints the figure; docs/io.md).
 */
import { resolveModel, type ResolveOptions } from './hub/node-resolve.js';
import { nodeFileSystem } from './io/node-fs.js';
import { loadModel, type LoadedModel } from './models/registry.js';
import type { WeightsOptions } from './nn/weights.js';

export type PretrainedOptions = ResolveOptions & WeightsOptions;

export async function fromPretrained(idOrPath: string, options: PretrainedOptions = {}): Promise<LoadedModel> {
  const { linearDtype, ...resolve } = options;
  return loadModel(nodeFileSystem, await resolveModel(idOrPath, resolve), { linearDtype });
}
