import { Command } from 'commander';
import type { Fetcher } from '../../hub/client.js';
import { formatModelInfo, modelInfo } from '../../hub/info.js';
import { resolveModelDetailed, type Environment, type ResolvedModel } from '../../hub/node-resolve.js';
import { remoteSource, withExtraFiles } from '../../hub/remote.js';
import { nodeFileSystem } from '../../io/node-fs.js';
import type { ByteSource, FileSystem } from '../../io/source.js';
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

/** The snapshot folder, with weights left on the Hub readable in place (only their headers will be read). */
async function fileSystemFor(resolved: ResolvedModel): Promise<FileSystem> {
  const { client, commit, remoteWeights } = resolved;
  if (!client || !commit || remoteWeights.length === 0) return nodeFileSystem;
  const extra = new Map<string, ByteSource>();
  for (const file of remoteWeights) {
    extra.set(nodeFileSystem.join(resolved.path, file), await remoteSource(client, resolved.modelId, commit, file));
  }
  return withExtraFiles(nodeFileSystem, extra);
}

/**
 * Describe a model: family, sizes, parameters, memory, tokenizer. A Hub id
 * gets its config and tokenizer files fetched into the cache; its weights are
 * not downloaded: their headers are read with range requests.
 */
export async function runInfo(args: InfoArgs, io: InfoIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  try {
    const resolved = await resolveModelDetailed(args.model, {
      revision: args.revision,
      cacheDir: args.cacheDir,
      offline: args.offline || undefined,
      // A tokenizer-only folder is still worth describing: info says it has no weights.
      requireWeights: false,
      leaveWeightsRemote: true,
      env: io.env,
      fetcher: io.fetcher,
      onProgress: progressBar(io.stderr),
    });
    const info = await modelInfo(resolved.path, await fileSystemFor(resolved));
    const remote = resolved.remoteWeights;
    if (args.json) io.stdout.write(`${JSON.stringify({ ...info, remoteWeights: remote }, null, 1)}\n`);
    else {
      const note = remote.length > 0 ? `\n(weights not downloaded: ${remote.join(', ')} read in place on the Hub, headers only)` : '';
      io.stdout.write(`${formatModelInfo(info)}${note}\n`);
    }
    return EXIT.ok;
  } catch (error) {
    return reportError(error, io.stderr);
  }
}

export function infoCommand(): Command {
  return new Command('info')
    .description('describe a model: family, sizes, parameter count (from the safetensors headers), memory to run, memory to load and its peak per weight dtype, tokenizer')
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
