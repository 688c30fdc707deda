/**
 * The file formats without any Node-only import: what a browser build uses,
 * with a FileSystem of its own (e.g. MemoryFileSystem over fetched files).
 */
export * from './source.js';
export * from './safetensors.js';
export * from './checkpoint.js';
export * from './config.js';
export * from './model-folder.js';
export * from './llama2c.js';
