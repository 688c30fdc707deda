import { Command } from 'commander';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeFileSystem } from '../../io/node-fs.js';
import { verifyFolder } from '../../verify/index.js';
import { EXIT } from '../errors.js';
import { runGenerate } from './generate.js';
import { runTrace } from './trace.js';

export interface TourArgs {
  /** The folder holding models/stories260K and fixtures/hf-tiny. */
  shared: string;
}

/** The fixtures of every family, as recorded from PyTorch and Hugging Face transformers. */
const FIXTURES = ['vanilla', 'bert', 'bert/classification', 'gpt2', 'llama', 't5', 't5/gated-gelu', 'bart', 'marian'];

/**
 * The main job: a short tour of what glassformer does, in seconds, on the small
 * models at hand — a real pretrained Llama tells a story, every family is
 * checked number for number against PyTorch, and one step is traced.
 */
export async function runTour(args: TourArgs, stdout: NodeJS.WritableStream = process.stdout): Promise<number> {
  const stories = join(args.shared, 'models', 'stories260K');
  const say = (text: string) => stdout.write(text + '\n');

  say('# 1. Generate: a decoder predicts the next token, over and over (stories260K, a 260K-parameter Llama)\n');
  const streams = { stdout, stderr: process.stderr };
  const model = join(stories, 'stories260K.bin');
  const tokenizer = join(stories, 'tok512.bin');
  stdout.write('Once upon a time');
  let code = await runGenerate({ model, tokenizer, prompt: 'Once upon a time', maxNewTokens: 80, greedy: true }, streams);
  if (code !== EXIT.ok) return code;

  say('\n\n# 2. Verify: every family against the tensors and generations PyTorch recorded\n');
  let failures = 0;
  for (const fixture of FIXTURES) {
    const report = await verifyFolder(nodeFileSystem, join(args.shared, 'fixtures', 'hf-tiny', fixture));
    const compared = [...report.tensors, ...report.scores];
    const worst = Math.max(...compared.map((c) => c.maxAbsDiff));
    const verdict = report.pass ? 'all match' : 'MISMATCH (run glassformer verify for details)';
    say(
      `  ${fixture.padEnd(20)} ${String(report.tensors.length).padStart(3)} tensors (largest |Δ| ${worst.toExponential(1)}), ` +
        `${report.sequences.length} generate runs: ${verdict}`,
    );
    if (!report.pass) failures++;
  }

  say('\n# 3. Trace: what happens inside, step by step\n');
  code = await runTrace({ model, tokenizer, text: 'Once upon a time', maxNewTokens: 1, show: 3 }, stdout);
  if (code !== EXIT.ok) return code;
  return failures === 0 ? EXIT.ok : EXIT.failed;
}

/** ../shared beside the repository (compiled code lives in dist/src/cli/commands/). */
function defaultShared(): string {
  const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
  return process.env.GLASSFORMER_SHARED ?? join(repo, '..', 'shared');
}

export function tourCommand(): Command {
  return new Command('tour')
    .description('the main job: generate a story, verify every family against PyTorch, trace one step')
    .option('--shared <dir>', 'the folder with models/stories260K and fixtures/hf-tiny', defaultShared())
    .addHelpText('after', '\nExample:\n  glassformer tour --shared ../shared')
    .action(async (options: TourArgs) => {
      process.exitCode = await runTour(options);
    });
}
