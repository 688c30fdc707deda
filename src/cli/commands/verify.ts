import { Command } from 'commander';
import { nodeFileSystem } from '../../io/node-fs.js';
import { formatReport, verifyFolder, writeVerifyOutput } from '../../verify/index.js';
import { EXIT } from '../errors.js';

export interface VerifyArgs {
  dir: string;
  out?: string;
  json?: boolean;
}

/** Run a fixture folder against glassformer; exit 0 when every tensor and generation matches. */
export async function runVerify(args: VerifyArgs, stdout: NodeJS.WritableStream = process.stdout): Promise<number> {
  const report = await verifyFolder(nodeFileSystem, args.dir);
  if (args.out) await writeVerifyOutput(nodeFileSystem, args.out, report.run);
  if (args.json) {
    const { run: _run, ...summary } = report;
    stdout.write(JSON.stringify(summary, (_k, v) => (v === Infinity ? 'Infinity' : v), 1) + '\n');
  } else {
    stdout.write(formatReport(report) + '\n');
  }
  return report.pass ? EXIT.ok : EXIT.failed;
}

export function verifyCommand(): Command {
  return new Command('verify')
    .description('run a fixture folder (model, inputs.json, expected.*) and compare every tensor and generation with PyTorch')
    .argument('<dir>', 'a folder laid out like fixtures/hf-tiny/<family>/')
    .option('--out <file>', 'also write what glassformer produced: FILE.safetensors (tensors) and FILE.json (token ids)')
    .option('--json', 'print the comparison as JSON')
    .addHelpText(
      'after',
      `
Examples:
  glassformer verify ../shared/fixtures/hf-tiny/vanilla
  glassformer verify my-model-fixture --out /tmp/ours   # writes /tmp/ours.safetensors and /tmp/ours.json`,
    )
    .action(async function (this: Command, dir: string, options: { out?: string; json?: boolean }) {
      process.exitCode = await runVerify({ dir, ...options });
    });
}
