import { createInterface } from 'node:readline';
import { Command } from 'commander';
import { GlassformerError } from '../../errors.js';
import { Chat, chatTemplateOf } from '../../tasks/chat.js';
import { EXIT, reportError } from '../errors.js';
import { addDecodingOptions, decodingOptions, loadGenerator, type CommandStreams, type DecodingArgs, type GeneratorLoader } from './generate.js';

export interface ChatArgs extends DecodingArgs {
  model: string;
  system?: string;
}

const HELP = 'Type a message and press Enter. /reset starts a new conversation, /exit (or end of input) quits.\n';

/**
 * The core of `glassformer chat`: read user lines from stdin, stream each
 * reply to stdout. The conversation keeps its KV cache between turns.
 */
export async function runChat(args: ChatArgs, streams: CommandStreams & { stdin: NodeJS.ReadableStream }, load: GeneratorLoader = loadGenerator): Promise<number> {
  let options;
  try {
    options = decodingOptions(args);
  } catch (error) {
    streams.stderr.write(`glassformer: ${(error as Error).message}\n`);
    return EXIT.usage;
  }
  try {
    const g = await load(args.model);
    chatTemplateOf(g.tokenizer.config);
    const chat = new Chat(g, { system: args.system });
    streams.stderr.write(HELP);
    const lines = createInterface({ input: streams.stdin, crlfDelay: Infinity, terminal: false });
    streams.stdout.write('> ');
    for await (const line of lines) {
      const text = line.trim();
      if (text === '/exit') break;
      if (text === '/reset') {
        chat.reset();
        streams.stdout.write('(new conversation)\n> ');
        continue;
      }
      if (text === '') {
        streams.stdout.write('> ');
        continue;
      }
      for await (const chunk of chat.stream(text, options)) streams.stdout.write(chunk.text);
      streams.stdout.write('\n> ');
    }
    streams.stdout.write('\n');
    return EXIT.ok;
  } catch (error) {
    if (error instanceof GlassformerError) return reportError(error, streams.stderr);
    throw error;
  }
}

export function chatCommand(): Command {
  return addDecodingOptions(
    new Command('chat')
      .description('chat with an instruction-tuned decoder-only model, using its chat template')
      .requiredOption('--model <dir|id>', 'a model folder or Hub id whose tokenizer_config.json has a chat_template')
      .option('--system <text>', 'a system message that opens the conversation'),
  )
    .addHelpText(
      'after',
      `
In the chat: /reset starts over, /exit quits.

Example:
  glassformer chat --model Qwen/Qwen3-0.6B --max-new-tokens 200 --temperature 0.7 --top-p 0.8`,
    )
    .action(async (options: ChatArgs) => {
      process.exitCode = await runChat(options, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });
    });
}
