import { Command } from 'commander';
import { resolveModel, type Environment } from '../../hub/node-resolve.js';
import { progressBar, type ProgressStream } from '../../hub/progress.js';
import type { Fetcher } from '../../hub/client.js';
import { EXIT, reportError } from '../errors.js';

export interface DownloadArgs {
  model: string;
  revision?: string;
  cacheDir?: string;
  offline?: boolean;
  json?: boolean;
}

export interface DownloadIo {
  stdout: NodeJS.WritableStream;
  /** Progress bars go here when it is a terminal; errors always. */
  stderr: NodeJS.WritableStream & ProgressStream;
  env?: Environment;
  fetcher?: Fetcher;
}

/** Fetch a model into the Hugging Face cache (or check a folder) and print its snapshot folder. */
export async function runDownload(args: DownloadArgs, io: DownloadIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  try {
    const path = await resolveModel(args.model, {
      revision: args.revision,
      cacheDir: args.cacheDir,
      offline: args.offline || undefined,
      env: io.env,
      fetcher: io.fetcher,
      onProgress: progressBar(io.stderr),
    });
    io.stdout.write(args.json ? `${JSON.stringify({ model: args.model, revision: args.revision ?? 'main', path })}\n` : `${path}\n`);
    return EXIT.ok;
  } catch (error) {
    return reportError(error, io.stderr);
  }
}

export function downloadCommand(): Command {
  return new Command('download')
    .description("fetch a model's config, tokenizer and safetensors weights into the Hugging Face cache; print the snapshot folder")
    .argument('<model>', 'a Hub id (org/name), or a local folder to check')
    .option('--revision <rev>', 'branch, tag or commit sha', 'main')
    .option('--cache-dir <dir>', 'cache folder (default: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub)')
    .option('--offline', 'use the cache only, as HF_HUB_OFFLINE=1')
    .option('--json', 'print {"model", "revision", "path"} as JSON')
    .addHelpText(
      'after',
      `
Environment: HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (gated and private models),
HF_HOME / HF_HUB_CACHE (cache folder, shared with Python's huggingface_hub), HF_HUB_OFFLINE=1.

Examples:
  glassformer download sentence-transformers/all-MiniLM-L6-v2
  glassformer download openai-community/gpt2 --revision main --json`,
    )
    .action(async function (this: Command, model: string, options: Omit<DownloadArgs, 'model'>) {
      process.exitCode = await runDownload({ model, ...options });
    });
}
