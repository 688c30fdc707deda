/**
 * Tokenizer throughput (MB/s of UTF-8 input, tokens/s) of glassformer beside Hugging
 * Face's Rust `tokenizers` (npm `tokenizers`, the official N-API binding) on the
 * same text in the same process, for the GPT-2, BERT and Llama-3 tokenizers.
 *
 * The text (~1 MB) is the shared seed texts and the fixture case strings, repeated.
 * Two workloads: every line encoded by its own call (single strings, where the
 * binding's per-call cost shows), and the whole text in one call.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer } from '../src/tokenizers/load-node.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const shared = process.env.GLASSFORMER_SHARED ?? join(repoRoot, '..', 'shared');
const fixtures = join(shared, 'fixtures', 'tokenizers');
const TOKENIZERS = ['gpt2', 'bert-base-uncased', 'llama3'];
const TARGET_BYTES = 1_000_000;

interface RustEncoding {
  getIds(): number[];
}
interface RustTokenizer {
  encode(text: string, pair?: string | null, options?: { addSpecialTokens?: boolean }): Promise<RustEncoding>;
}
interface RustModule {
  Tokenizer: { fromFile(path: string): RustTokenizer };
}

function corpusLines(): string[] {
  const lines: string[] = [];
  const seeds = join(shared, 'seeds');
  if (existsSync(seeds)) {
    for (const file of readdirSync(seeds).sort()) lines.push(...readFileSync(join(seeds, file), 'utf8').split('\n'));
  }
  for (const name of TOKENIZERS) {
    const cases = join(fixtures, name, 'cases.jsonl');
    for (const line of readFileSync(cases, 'utf8').split('\n')) {
      if (line.trim() !== '') lines.push((JSON.parse(line) as { text: string }).text);
    }
  }
  const nonEmpty = lines.filter((l) => l.trim() !== '');
  const out: string[] = [];
  let bytes = 0;
  while (bytes < TARGET_BYTES) {
    for (const l of nonEmpty) {
      out.push(l);
      bytes += Buffer.byteLength(l) + 1;
    }
  }
  return out;
}

function loadRust(): RustModule | string {
  try {
    return createRequire(import.meta.url)('tokenizers') as RustModule;
  } catch (error) {
    return (error as Error).message.split('\n')[0];
  }
}

interface Timing {
  seconds: number;
  tokens: number;
}

const RUNS = 3;

/** Best of RUNS timed runs after a warm-up (caches and JIT, as a long-running process would have). */
async function time(run: () => Promise<number> | number): Promise<Timing> {
  await run();
  let best: Timing = { seconds: Infinity, tokens: 0 };
  for (let r = 0; r < RUNS; r++) {
    const start = process.hrtime.bigint();
    const tokens = await run();
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    if (seconds < best.seconds) best = { seconds, tokens };
  }
  return best;
}

function rate(t: Timing, bytes: number): string {
  return `${(bytes / 1e6 / t.seconds).toFixed(2).padStart(7)} MB/s ${(t.tokens / t.seconds / 1e6).toFixed(2).padStart(6)} Mtok/s`;
}

export async function run(): Promise<void> {
  const lines = corpusLines();
  const text = lines.join('\n');
  const bytes = Buffer.byteLength(text);
  const rust = loadRust();
  console.log(`text: ${(bytes / 1e6).toFixed(2)} MB in ${lines.length} lines`);
  if (typeof rust === 'string') console.log(`Rust baseline unavailable (npm "tokenizers" could not load: ${rust})`);
  console.log('tokenizer          workload       glassformer                     rust                            ours/rust');
  for (const name of TOKENIZERS) {
    const ours = await loadTokenizer(join(fixtures, name));
    const theirs = typeof rust === 'string' ? null : rust.Tokenizer.fromFile(join(fixtures, name, 'tokenizer.json'));
    const workloads: [string, () => number, (() => Promise<number>) | null][] = [
      [
        'per line',
        () => lines.reduce((n, l) => n + ours.encode(l).ids.length, 0),
        theirs && (async () => {
          let n = 0;
          for (const l of lines) n += (await theirs.encode(l)).getIds().length;
          return n;
        }),
      ],
      ['whole text', () => ours.encode(text).ids.length, theirs && (async () => (await theirs.encode(text)).getIds().length)],
    ];
    for (const [workload, oursRun, theirsRun] of workloads) {
      const a = await time(oursRun);
      const b = theirsRun === null ? null : await time(theirsRun);
      const ratio = b === null ? 'n/a' : `${(b.seconds / a.seconds).toFixed(2)}x`;
      console.log(`${name.padEnd(18)} ${workload.padEnd(14)} ${rate(a, bytes)}   ${b === null ? 'unavailable'.padEnd(30) : rate(b, bytes)}   ${ratio}`);
    }
  }
  console.log('ours/rust: throughput ratio (above 1 means glassformer is faster).');
}
