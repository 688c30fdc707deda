/**
 * The parity harness: run a folder laid out like `fixtures/hf-tiny/<family>/`
 * and compare every recorded tensor and generation with what glassformer
 * computes. It is how each family proves itself and how a user checks their
 * own model against PyTorch.
 */
import { FormatError, UnsupportedError } from '../errors.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { FileSystem } from '../io/source.js';
import type { Tensor } from '../tensor/tensor.js';
import { compareScores, compareSequences, compareTensors, type SequenceComparison, type TensorComparison } from './compare.js';
import type { Fixture, FixtureRun, FixtureRunner } from './types.js';
import { runBart } from './bart.js';
import { runBert } from './bert.js';
import { runGpt2 } from './gpt2.js';
import { runLlama } from './llama.js';
import { runT5 } from './t5.js';
import { runVanilla } from './vanilla.js';

export type { Fixture, FixtureRun, FixtureRunner, ValidPositions } from './types.js';
export { compareTensors, compareSequences, ATOL, RTOL } from './compare.js';

/** Parity runners keyed by `config.json` model_type. */
const RUNNERS: Record<string, FixtureRunner> = {
  vanilla_transformer_2017: runVanilla,
  bert: runBert,
  roberta: runBert,
  'xlm-roberta': runBert,
  distilbert: runBert,
  gpt2: runGpt2,
  llama: runLlama,
  mistral: runLlama,
  qwen2: runLlama,
  qwen3: runLlama,
  phi3: runLlama,
  t5: runT5,
  mt5: runT5,
  bart: runBart,
  marian: runBart,
};

/** Register the runner of another model_type (or override one). */
export function registerFixtureRunner(family: string, runner: FixtureRunner): void {
  RUNNERS[family] = runner;
}

async function readJson(fs: FileSystem, path: string): Promise<Record<string, unknown>> {
  const text = await fs.readText(path);
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new FormatError(path, `not valid JSON (${(error as Error).message})`);
  }
}

export async function loadFixture(fs: FileSystem, dir: string): Promise<Fixture> {
  // config.json first: a wrong folder then fails the same way every time, naming it.
  const config = await readJson(fs, fs.join(dir, 'config.json'));
  const [inputs, expectedJson, expected, weights] = await Promise.all([
    readJson(fs, fs.join(dir, 'inputs.json')),
    readJson(fs, fs.join(dir, 'expected.json')),
    readSafetensors(fs, fs.join(dir, 'expected.safetensors')),
    readSafetensors(fs, fs.join(dir, 'model.safetensors')),
  ]);
  return { dir, fs, config, inputs, expectedJson, expected, weights };
}

/** The model_type that picks the runner (the fixture's `inputs.json` family when config.json has none). */
export function fixtureFamily(fixture: Fixture): string {
  const family = fixture.config.model_type ?? fixture.inputs.family;
  return typeof family === 'string' ? family : 'unknown';
}

export interface VerifyReport {
  dir: string;
  family: string;
  tensors: TensorComparison[];
  sequences: SequenceComparison[];
  scores: TensorComparison[];
  pass: boolean;
  run: FixtureRun;
}

/** Run a fixture folder and compare everything it recorded. */
export async function verifyFolder(fs: FileSystem, dir: string): Promise<VerifyReport> {
  const fixture = await loadFixture(fs, dir);
  const family = fixtureFamily(fixture);
  const runner = RUNNERS[family];
  if (!runner) {
    throw new UnsupportedError(`${dir}: no parity runner for model_type "${family}"; supported: ${Object.keys(RUNNERS).join(', ')}`);
  }
  const run = await runner(fixture);
  const tensors = [...fixture.expected.entries()].map(([name, expected]) => {
    const got = run.tensors.get(name);
    if (!got) return { name, pass: false, maxAbsDiff: Infinity, compared: 0, detail: 'not produced' };
    return compareTensors(name, got, expected, run.valid?.get(name));
  });
  const generate = (fixture.expectedJson.generate ?? {}) as Record<string, { sequences: number[][]; sequences_scores?: number[] }>;
  const sequences: SequenceComparison[] = [];
  const scores: TensorComparison[] = [];
  for (const [name, record] of Object.entries(generate)) {
    sequences.push(compareSequences(`generate.${name}.sequences`, run.sequences?.[name], record.sequences));
    if (record.sequences_scores) {
      scores.push(compareScores(`generate.${name}.sequences_scores`, run.sequenceScores?.[name], record.sequences_scores));
    }
  }
  const pass = [...tensors, ...sequences, ...scores].every((c) => c.pass);
  return { dir, family, tensors, sequences, scores, pass, run };
}

/** Human-readable lines, one per tensor and generation. */
export function formatReport(report: VerifyReport): string {
  const lines = [`${report.dir} (${report.family})`];
  const mark = (pass: boolean) => (pass ? 'PASS' : 'FAIL');
  for (const c of [...report.tensors, ...report.scores]) {
    const diff = Number.isFinite(c.maxAbsDiff) ? c.maxAbsDiff.toExponential(2) : String(c.maxAbsDiff);
    lines.push(`  ${mark(c.pass)}  ${c.name.padEnd(48)} max|Δ| ${diff.padStart(9)}${c.detail && !c.pass ? `  (${c.detail})` : ''}`);
  }
  for (const s of report.sequences) lines.push(`  ${mark(s.pass)}  ${s.name.padEnd(48)} ids ${s.pass ? 'exact' : s.detail}`);
  const failed = [...report.tensors, ...report.sequences, ...report.scores].filter((c) => !c.pass).length;
  lines.push(failed === 0 ? '  all match' : `  ${failed} mismatches`);
  return lines.join('\n');
}

/** `--out FILE`: what glassformer produced, tensors to FILE.safetensors and token ids to FILE.json. */
export async function writeVerifyOutput(fs: FileSystem, file: string, run: FixtureRun): Promise<void> {
  const tensors: Record<string, Tensor> = Object.fromEntries(run.tensors);
  await writeSafetensors(fs, `${file}.safetensors`, tensors, { producer: 'glassformer verify' });
  const json = JSON.stringify({ generate: run.sequences ?? {}, sequences_scores: run.sequenceScores ?? {} }, null, 1);
  await fs.writeAtomic(`${file}.json`, [new TextEncoder().encode(json)]);
}
