#!/usr/bin/env node
/**
 * The `glassformer` command. Each subcommand sets process.exitCode; errors are
 * reported here once.
 */
import { CommanderError } from 'commander';
import { useFastestKernel } from '../kernels/index.js';
import { EXIT, reportError } from './errors.js';
import { program } from './program.js';

async function main(argv: string[]): Promise<void> {
  await useFastestKernel();
  try {
    await program().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return;
    }
    process.exitCode = reportError(error);
  }
}

await main(process.argv);
