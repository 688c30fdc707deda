/**
 * Weights and configs: safetensors read/write, sharded checkpoints,
 * config.json / generation_config.json, model folders and llama2.c files.
 * The format code (`core.ts`) runs anywhere through the FileSystem seam of
 * `source.ts`; `node.ts` binds it to node:fs.
 */
export * from './core.js';
export { nodeFileSystem } from './node-fs.js';
export * from './node.js';
