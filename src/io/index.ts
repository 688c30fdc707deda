/**
 * Weights and configs: safetensors read/write, sharded checkpoints,
 * config.json / generation_config.json, model folders and llama2.c files.
 * The format code runs anywhere through the FileSystem seam (`source.ts`);
 * `node.ts` binds it to node:fs.
 */
export * from './source.js';
export * from './safetensors.js';
export * from './checkpoint.js';
export * from './config.js';
export * from './model-folder.js';
export * from './llama2c.js';
export { nodeFileSystem } from './node-fs.js';
export * from './node.js';
