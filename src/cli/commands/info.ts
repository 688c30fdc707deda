import { Command } from 'commander';
import type { Fetcher } from '../../hub/client.js';
import { formatModelInfo, modelInfo } from '../../hub/info.js';
import { resolveModel, type Environment } from '../../hub/node-resolve.js';
import { progressBar, type ProgressStream } from '../../hub/progress.js';
import { EXIT, reportError } from '../errors.js';

export interface InfoArgs {
  model: string;
  revision?: string;
  cacheDir?: string;
  offline?: boolean;
  json?: boolean;
}

export interface InfoIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & ProgressStream;
  env?: Environment;
  fetcher?: Fetcher;
}

/** Describe a model (a folder or a Hub id, fetched into the cache first): family, sizes, parameters, memory, tokenizer. */
export async function runInfo(args: InfoArgs, io: InfoIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  try {
    const dir = await resolveModel(args.model, {
      revision: args.revision,
      cacheDir: args.cacheDir,
      offline: args.offline || undefined,
      // A tokenizer-only folder is still worth describing: info says it has no weights.
      requireWeights: false,
      env: io.env,
      fetcher: io.fetcher,
      onProgress: progressBar(io.stderr),
    });
    const info = await modelInfo(dir);
    io.stdout.write(args.json ? `${JSON.stringify(info, null, 1)}\n` : `${formatModelInfo(info)}\n`);
    return EXIT.ok;
  } catch (error) {
    return reportError(error, io.stderr);
  }
}

export function infoCommand(): Command {
  return new Command('info')
    .description('describe a model: family, sizes, parameter count (from the safetensors headers), memory to run, tokenizer')
    .argument('<model>', 'a model folder, a models--org--name cache folder, or a Hub id (org/name)')
    .option('--revision <rev>', 'branch, tag or commit sha (Hub ids and cache folders)', 'main')
    .option('--cache-dir <dir>', 'cache folder (default: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub)')
    .option('--offline', 'use the cache only, as HF_HUB_OFFLINE=1')
    .option('--json', 'print the description as JSON')
    .addHelpText(
      'after',
      `
Examples:
  glassformer info ../shared/fixtures/hf-tiny/llama
  glassformer info sentence-transformers/all-MiniLM-L6-v2 --json`,
    )
    .action(async function (this: Command, model: string, options: Omit<InfoArgs, 'model'>) {
      process.exitCode = await runInfo({ model, ...options });
    });
}
