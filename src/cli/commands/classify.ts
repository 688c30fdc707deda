import { Command, InvalidArgumentError } from 'commander';
import { resolveModel } from '../../hub/node-resolve.js';
import { nodeFileSystem } from '../../io/node-fs.js';
import { TextClassifier, type ScoreFunction } from '../../tasks/classify.js';
import { loadFolderTokenizer } from '../../tasks/encoder-folder.js';
import type { TextInput } from '../../tasks/text-batch.js';
import { EXIT } from '../errors.js';
import { positiveInt, processStreams, textsFrom, type EncoderCommandStreams } from './embed.js';

export interface ClassifyArgs {
  model: string;
  texts: string[];
  /** Second text of a pair, used with every text (e.g. a hypothesis for NLI). */
  pair?: string;
  topK?: number | 'all';
  function?: ScoreFunction;
  json?: boolean;
}

/** `glassformer classify`: labels with scores for each text (or text + --pair). */
export async function runClassify(args: ClassifyArgs, streams: EncoderCommandStreams = processStreams()): Promise<number> {
  const texts = await textsFrom(args.texts, streams);
  if (texts === null) return EXIT.usage;
  const dir = await resolveModel(args.model);
  const classifier = await TextClassifier.fromFolder(nodeFileSystem, dir, await loadFolderTokenizer(nodeFileSystem, dir));
  const inputs: TextInput[] = texts.map((t) => (args.pair === undefined ? t : [t, args.pair]));
  const results = classifier.classifyBatch(inputs, { topK: args.topK ?? 1, functionToApply: args.function });
  texts.forEach((text, i) => {
    if (args.json) streams.stdout.write(JSON.stringify({ text, ...(args.pair !== undefined ? { pair: args.pair } : {}), labels: results[i] }) + '\n');
    else streams.stdout.write(`${text}\t${results[i].map((l) => `${l.label} ${l.score.toFixed(4)}`).join(', ')}\n`);
  });
  return EXIT.ok;
}

function topKOption(value: string): number | 'all' {
  return value === 'all' ? 'all' : positiveInt('--top-k')(value);
}

function functionOption(value: string): ScoreFunction {
  if (value !== 'softmax' && value !== 'sigmoid' && value !== 'none') throw new InvalidArgumentError(`--function must be softmax, sigmoid or none, found "${value}"`);
  return value;
}

export function classifyCommand(): Command {
  return new Command('classify')
    .description('classify texts (or text pairs) with a *ForSequenceClassification model; labels from config id2label')
    .requiredOption('--model <dir>', 'a model folder or Hub id')
    .argument('[text...]', 'texts to classify (default: the lines of stdin)')
    .option('--pair <text>', 'second text of a pair, for every text (premise/hypothesis, question/answer)')
    .option('--top-k <n>', 'labels per text, or "all" (default 1)', topKOption)
    .option('--function <name>', 'softmax, sigmoid or none (default: sigmoid for multi-label models, else softmax)', functionOption)
    .option('--json', 'print one JSON line {text, labels: [{label, score}]} per text')
    .addHelpText(
      'after',
      `
Examples:
  glassformer classify --model distilbert-base-uncased-finetuned-sst-2-english "What a lovely day" --top-k all
  glassformer classify --model ./nli-model "A man is eating." --pair "Someone eats." --json`,
    )
    .action(async (texts: string[], options: Omit<ClassifyArgs, 'texts'>) => {
      process.exitCode = await runClassify({ ...options, texts });
    });
}
