/**
 * Models from where users keep them: the Hugging Face Hub protocol
 * (`client.ts`), which files a model needs (`files.ts`) and what a model
 * folder holds (`info.ts`). These run anywhere `fetch` does; the cache on disk
 * and `resolveModel` are Node-only and live in `node.ts`.
 */
export * from './client.js';
export * from './files.js';
export * from './info.js';
