#!/usr/bin/env node
/**
 * The `glassformer` command: one subcommand per job. Each subcommand lives in
 * commands/ and sets process.exitCode; errors are reported here once.
 */
import { Command, CommanderError } from 'commander';
import { verifyCommand } from './commands/verify.js';
import { EXIT, reportError } from './errors.js';

const COMMANDS = [verifyCommand];

export function program(): Command {
  const root = new Command('glassformer')
    .description('Transformer language models you can see into: run Hugging Face checkpoints, trace every step.')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  for (const make of COMMANDS) root.addCommand(make().exitOverride().showHelpAfterError());
  return root;
}

async function main(argv: string[]): Promise<void> {
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
