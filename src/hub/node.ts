/** Node entry points of the Hub: `resolveModel`, the Python-compatible cache, progress bars. */
export * from './node-cache.js';
export * from './node-resolve.js';
export * from './progress.js';
