import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeFileSystem } from '../../io/node-fs.js';
import { ExactIndex, indexMetricFor, SemanticSearch } from '../../tasks/search.js';
import { verifyFolder } from '../../verify/index.js';
import { EXIT } from '../errors.js';
import { openEmbedder } from './embed.js';
import { runGenerate } from './generate.js';
import { runTrace } from './trace.js';
import { runTranslate } from './translate.js';

export interface TourArgs {
  /** The folder of the models glassformer trained and ships (kjv-llama, kjv-bert, numbers-marian). */
  models: string;
  /** The folder holding fixtures/hf-tiny, for the parity step; skipped (and said so) when absent. */
  shared: string;
}

/** A few verses to search over; the query below is answered by meaning, not by shared words. */
const VERSES = [
  'In the beginning God created the heaven and the earth.',
  'The LORD is my shepherd; I shall not want.',
  'Jesus wept.',
  'And the rain was upon the earth forty days and forty nights.',
  'For God so loved the world, that he gave his only begotten Son.',
  'Thou shalt not steal.',
  'And David took an harp, and played with his hand.',
  'Blessed are the meek: for they shall inherit the earth.',
];

/** The fixtures of every family, as recorded from PyTorch and Hugging Face transformers. */
const FIXTURES = ['vanilla', 'bert', 'bert/classification', 'gpt2', 'llama', 't5', 't5/gated-gelu', 'bart', 'marian'];

/**
 * The main job: a short tour, in seconds and offline, on the small models
 * glassformer trained itself — a decoder writes, an encoder searches by
 * meaning, an encoder-decoder translates, one step is traced — and, when the
 * recorded fixtures are beside the repository, every family is checked number
 * for number against PyTorch.
 */
export async function runTour(args: TourArgs, stdout: NodeJS.WritableStream = process.stdout): Promise<number> {
  const say = (text: string) => stdout.write(text + '\n');
  const streams = { stdout, stderr: process.stderr };
  const llama = join(args.models, 'kjv-llama');

  say('# 1. Generate: a decoder predicts the next token, over and over (kjv-llama, trained on the King James Bible)\n');
  const prompt = 'And it came to pass';
  stdout.write(prompt);
  let code = await runGenerate({ model: llama, prompt, maxNewTokens: 40, temperature: 0.8, topK: 40, seed: 3 }, streams);
  if (code !== EXIT.ok) return code;

  say('\n\n# 2. Search: an encoder turns each verse into a vector; the query finds the nearest by meaning (kjv-bert)\n');
  const { dir, embedder } = await openEmbedder(join(args.models, 'kjv-bert'));
  const search = new SemanticSearch(embedder, new ExactIndex(embedder.dimension, indexMetricFor(embedder), { model: dir }));
  await search.addDocuments(VERSES.map((text) => ({ text })));
  const query = 'the creation of the world';
  say(`  query: "${query}"`);
  for (const hit of await search.search(query, { topK: 3 })) say(`  ${hit.score.toFixed(3)}  ${hit.text}`);

  say('\n# 3. Translate: the encoder reads the words, the decoder writes digits through cross-attention (numbers-marian)\n');
  const words = 'three hundred forty-two thousand one hundred five';
  say(`  ${words} →`);
  stdout.write('  ');
  code = await runTranslate({ model: join(args.models, 'numbers-marian'), texts: [words], greedy: true }, { ...streams, stdin: process.stdin });
  if (code !== EXIT.ok) return code;

  say('\n# 4. Trace: what happens inside, step by step\n');
  code = await runTrace({ model: join(args.models, 'numbers-marian'), text: 'forty-two', maxNewTokens: 3, show: 3 }, stdout);
  if (code !== EXIT.ok) return code;

  const fixtures = join(args.shared, 'fixtures', 'hf-tiny');
  if (!existsSync(fixtures)) {
    say(`\n# 5. Verify: skipped, ${fixtures} is not here (set GLASSFORMER_SHARED to run it)`);
    return EXIT.ok;
  }
  say('\n# 5. Verify: every family against the tensors and generations PyTorch recorded\n');
  let failures = 0;
  for (const fixture of FIXTURES) {
    const report = await verifyFolder(nodeFileSystem, join(fixtures, fixture));
    const worst = Math.max(...[...report.tensors, ...report.scores].map((c) => c.maxAbsDiff));
    const verdict = report.pass ? 'all match' : 'MISMATCH (run glassformer verify for details)';
    say(
      `  ${fixture.padEnd(20)} ${String(report.tensors.length).padStart(3)} tensors (largest |Δ| ${worst.toExponential(1)}), ` +
        `${report.sequences.length} generate runs: ${verdict}`,
    );
    if (!report.pass) failures++;
  }
  return failures === 0 ? EXIT.ok : EXIT.failed;
}

/** The repository root (compiled code lives in dist/src/cli/commands/). */
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

export function tourCommand(): Command {
  return new Command('tour')
    .description('the main job: generate, search, translate and trace with the models glassformer ships; verify every family against PyTorch')
    .option('--models <dir>', 'the folder of the shipped models', join(REPO, 'models'))
    .option('--shared <dir>', 'the folder with fixtures/hf-tiny', process.env.GLASSFORMER_SHARED ?? join(REPO, '..', 'shared'))
    .addHelpText('after', '\nExample:\n  glassformer tour --shared ../shared')
    .action(async (options: TourArgs) => {
      process.exitCode = await runTour(options);
    });
}
