/**
 * `npm run bench`: runs every `bench/*.bench.ts` section in name order, in one
 * process, and prints each section's table. Sections compare a fast path with a
 * baseline measured in the same run and report ratios, never absolute timings
 * alone; the issue's proof figures they record (bench/proof.ts) come last, in
 * one table.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { proofTable } from './proof.js';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const sections = readdirSync(here)
  .filter((f) => f.endsWith('.bench.js'))
  .filter((f) => only.length === 0 || only.some((name) => f.startsWith(name)))
  .sort();

for (const file of sections) {
  const module = (await import(pathToFileURL(join(here, file)).href)) as { run: () => Promise<void> | void };
  console.log(`\n## ${file.replace(/\.bench\.js$/, '')}`);
  await module.run();
}

const proof = proofTable();
if (proof !== '') console.log(`\n## proof: the issue's figures from this run\n\n${proof}`);
