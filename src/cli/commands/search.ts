import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError, FileNotFoundError } from '../../errors.js';
import { nodeFileSystem } from '../../io/node-fs.js';
import { ExactIndex, indexMetricFor, SemanticSearch, type MetadataValue, type SearchDocument } from '../../tasks/search.js';
import { EXIT } from '../errors.js';
import { openEmbedder, positiveInt, processStreams, readLines, type EncoderCommandStreams } from './embed.js';

export interface SearchIndexArgs {
  model: string;
  index: string;
  /** Files to index, one document each (id = path); none: the lines of stdin, one document each. */
  files: string[];
  batchSize?: number;
}

export interface SearchQueryArgs {
  model: string;
  index: string;
  query: string;
  topK?: number;
  threshold?: number;
  /** key=value pairs every hit's metadata must match. */
  filter?: Record<string, MetadataValue>;
  json?: boolean;
}

export interface SearchRemoveArgs {
  index: string;
  ids: string[];
}

/** `\r[#####·····] 12/40 documents` on a terminal; nothing otherwise. */
function progressBar(stream: EncoderCommandStreams['stderr']): (done: number, total: number) => void {
  if (!stream.isTTY) return () => undefined;
  return (done, total) => {
    const width = 30;
    const filled = Math.round((done / total) * width);
    stream.write(`\r[${'#'.repeat(filled)}${'·'.repeat(width - filled)}] ${done}/${total} documents${done === total ? '\n' : ''}`);
  };
}

async function openIndex(file: string): Promise<ExactIndex | null> {
  try {
    return await ExactIndex.load(nodeFileSystem, file);
  } catch (error) {
    if (error instanceof FileNotFoundError) return null;
    throw error;
  }
}

/** The index must have been built by the same kind of embedder: same width, pooling and normalisation. */
function checkProvenance(index: ExactIndex, file: string, embedder: Awaited<ReturnType<typeof openEmbedder>>['embedder'], dir: string, stderr: NodeJS.WritableStream): void {
  if (index.dimension !== embedder.dimension) {
    throw new ConfigError(`${file}: the index holds ${index.dimension}-dimensional vectors but ${dir} embeds into ${embedder.dimension}; use the model the index was built with (${index.provenance.model ?? 'not recorded'})`);
  }
  const pooling = embedder.settings.pooling.join('+');
  if (index.provenance.pooling !== undefined && index.provenance.pooling !== pooling) {
    throw new ConfigError(`${file}: the index was built with ${index.provenance.pooling} pooling, ${dir} pools with ${pooling}`);
  }
  if (index.provenance.model !== undefined && index.provenance.model !== dir) {
    stderr.write(`glassformer: note: ${file} was built with ${index.provenance.model}; querying with ${dir}\n`);
  }
}

/** `glassformer search index`: embed documents and add them to the index file (created when missing). */
export async function runSearchIndex(args: SearchIndexArgs, streams: EncoderCommandStreams = processStreams()): Promise<number> {
  const documents: SearchDocument[] = [];
  if (args.files.length > 0) {
    for (const file of args.files) documents.push({ id: file, text: await readFile(file, 'utf8'), metadata: { source: file } });
  } else if (streams.stdin) {
    documents.push(...(await readLines(streams.stdin)).map((text) => ({ text })));
  }
  if (documents.length === 0) {
    streams.stderr.write('glassformer: no documents given: pass FILES or lines on stdin\n');
    return EXIT.usage;
  }
  const { dir, embedder } = await openEmbedder(args.model);
  const existing = await openIndex(args.index);
  if (existing) checkProvenance(existing, args.index, embedder, dir, streams.stderr);
  const index = existing ?? new ExactIndex(embedder.dimension, indexMetricFor(embedder), { model: dir, pooling: embedder.settings.pooling.join('+'), normalize: embedder.settings.normalize });
  const search = new SemanticSearch(embedder, index);
  const ids = await search.addDocuments(documents, progressBar(streams.stderr), args.batchSize);
  await index.save(nodeFileSystem, args.index);
  streams.stdout.write(`indexed ${ids.length} documents into ${args.index} (${index.count} in total, ${index.dimension} dimensions)\n`);
  return EXIT.ok;
}

/** `glassformer search query`: the most similar documents, best first. */
export async function runSearchQuery(args: SearchQueryArgs, streams: EncoderCommandStreams = processStreams()): Promise<number> {
  const index = await ExactIndex.load(nodeFileSystem, args.index);
  const { dir, embedder } = await openEmbedder(args.model);
  checkProvenance(index, args.index, embedder, dir, streams.stderr);
  const hits = await new SemanticSearch(embedder, index).search(args.query, { topK: args.topK ?? 5, threshold: args.threshold, filter: args.filter });
  if (args.json) {
    streams.stdout.write(JSON.stringify({ query: args.query, hits }) + '\n');
  } else {
    hits.forEach((h, i) => {
      const text = (h.text ?? '').replace(/\s+/g, ' ').trim();
      streams.stdout.write(`${i + 1}. ${h.score.toFixed(4)}  ${h.id}  ${text.length > 80 ? text.slice(0, 79) + '…' : text}\n`);
    });
    if (hits.length === 0) streams.stdout.write('no documents match\n');
  }
  return EXIT.ok;
}

/** `glassformer search remove`: take documents out of the index by id. */
export async function runSearchRemove(args: SearchRemoveArgs, streams: EncoderCommandStreams = processStreams()): Promise<number> {
  const index = await ExactIndex.load(nodeFileSystem, args.index);
  const removed = await index.remove(args.ids);
  await index.save(nodeFileSystem, args.index);
  streams.stdout.write(`removed ${removed} of ${args.ids.length} ids from ${args.index} (${index.count} left)\n`);
  return removed === args.ids.length ? EXIT.ok : EXIT.failed;
}

function numberOption(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${flag} must be a number, found "${value}"`);
    return n;
  };
}

/** `--filter lang=en --filter year=2024`: numbers, true/false and null are read as such, anything else as a string. */
function filterOption(value: string, previous: Record<string, MetadataValue> = {}): Record<string, MetadataValue> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`--filter must be key=value, found "${value}"`);
  const raw = value.slice(eq + 1);
  const parsed: MetadataValue = raw === 'true' ? true : raw === 'false' ? false : raw === 'null' ? null : raw.trim() !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw;
  return { ...previous, [value.slice(0, eq)]: parsed };
}

export function searchCommand(): Command {
  const search = new Command('search').description('semantic search: embed documents into an index file, then query it by meaning');
  search
    .command('index')
    .description('embed documents (FILES, one document each, or the lines of stdin) and add them to the index file')
    .requiredOption('--model <dir>', 'a model folder or Hub id')
    .requiredOption('--index <file>', 'the index file (created when missing)')
    .option('--batch-size <n>', 'documents per forward pass (default 32)', positiveInt('--batch-size'))
    .argument('[files...]', 'documents to index (default: the lines of stdin)')
    .action(async (files: string[], options: Omit<SearchIndexArgs, 'files'>) => {
      process.exitCode = await runSearchIndex({ ...options, files });
    });
  search
    .command('query')
    .description('the documents most similar to the query, best first')
    .requiredOption('--model <dir>', 'the model the index was built with')
    .requiredOption('--index <file>', 'the index file')
    .option('--top-k <n>', 'how many documents (default 5)', positiveInt('--top-k'))
    .option('--threshold <score>', 'leave out documents scoring below this cosine similarity', numberOption('--threshold'))
    .option('--filter <key=value>', 'only documents whose metadata has this value (repeatable)', filterOption)
    .option('--json', 'print {query, hits: [{id, score, text, metadata}]}')
    .argument('<query>', 'what to look for')
    .action(async (query: string, options: Omit<SearchQueryArgs, 'query'>) => {
      process.exitCode = await runSearchQuery({ ...options, query });
    });
  search
    .command('remove')
    .description('remove documents from the index file by id')
    .requiredOption('--index <file>', 'the index file')
    .argument('<ids...>', 'document ids (file paths, or line numbers from 0 for stdin documents)')
    .action(async (ids: string[], options: { index: string }) => {
      process.exitCode = await runSearchRemove({ ...options, ids });
    });
  return search.addHelpText(
    'after',
    `
Examples:
  glassformer search index --model sentence-transformers/all-MiniLM-L6-v2 --index notes.gfindex notes/*.md
  glassformer search query --model sentence-transformers/all-MiniLM-L6-v2 --index notes.gfindex "how do I reset my password" --top-k 3`,
  );
}
