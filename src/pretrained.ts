/**
 * `fromPretrained(idOrPath)`: what a Hugging Face user types. Resolves a local
 * folder, a folder in the Python cache or a Hub id (downloading into the cache
 * Python shares), then loads the model its config.json names. Node only.
 */
import { resolveModel, type ResolveOptions } from './hub/node-resolve.js';
import { nodeFileSystem } from './io/node-fs.js';
import { loadModel, type LoadedModel } from './models/registry.js';

export async function fromPretrained(idOrPath: string, options: ResolveOptions = {}): Promise<LoadedModel> {
  return loadModel(nodeFileSystem, await resolveModel(idOrPath, options));
}
