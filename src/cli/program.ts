/** The `glassformer` command tree: one subcommand per job, each in commands/. */
import { Command } from 'commander';
import { chatCommand } from './commands/chat.js';
import { classifyCommand } from './commands/classify.js';
import { downloadCommand } from './commands/download.js';
import { embedCommand } from './commands/embed.js';
import { fillMaskCommand } from './commands/fill-mask.js';
import { generateCommand } from './commands/generate.js';
import { infoCommand } from './commands/info.js';
import { searchCommand } from './commands/search.js';
import { summarizeCommand } from './commands/summarize.js';
import { tourCommand } from './commands/tour.js';
import { tokenizeCommand } from './commands/tokenize.js';
import { traceCommand } from './commands/trace.js';
import { trainCommand } from './commands/train.js';
import { translateCommand } from './commands/translate.js';
import { verifyCommand } from './commands/verify.js';

const COMMANDS = [
  tourCommand,
  generateCommand,
  chatCommand,
  embedCommand,
  searchCommand,
  classifyCommand,
  fillMaskCommand,
  translateCommand,
  summarizeCommand,
  tokenizeCommand,
  traceCommand,
  trainCommand,
  verifyCommand,
  infoCommand,
  downloadCommand,
];

export function program(): Command {
  const root = new Command('glassformer')
    .description('Transformer language models you can see into: run Hugging Face checkpoints, trace every step.')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  for (const make of COMMANDS) root.addCommand(make().exitOverride().showHelpAfterError());
  return root;
}
