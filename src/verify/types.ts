import type { FileSystem } from '../io/source.js';
import type { Tensor } from '../tensor/tensor.js';

/** A folder laid out like `fixtures/hf-tiny/<family>/`: a model, its inputs, and what PyTorch recorded. */
export interface Fixture {
  readonly dir: string;
  readonly fs: FileSystem;
  /** config.json as written. */
  readonly config: Record<string, unknown>;
  /** inputs.json as written. */
  readonly inputs: Record<string, unknown>;
  /** expected.json as written (tensor shape index, generate runs, extras). */
  readonly expectedJson: Record<string, unknown>;
  /** expected.safetensors: the recorded tensors by name. */
  readonly expected: ReadonlyMap<string, Tensor>;
  /** model.safetensors (or the sharded set). */
  readonly weights: ReadonlyMap<string, Tensor>;
}

/**
 * Which positions of a tensor to compare: along `axis`, position p of batch row b
 * counts iff `mask[b][p]` is non-zero. Padded query positions are artefacts in
 * the reference (see the fixture README) and are left out.
 */
export interface ValidPositions {
  axis: number;
  mask: readonly (readonly number[])[];
}

/** What a family produced from a fixture's inputs, under the fixture's names. */
export interface FixtureRun {
  tensors: Map<string, Tensor>;
  valid?: Map<string, ValidPositions>;
  /** Generated token ids per generate run, as `generate()` returns them. */
  sequences?: Record<string, number[][]>;
  /** Beam `sequences_scores` per beam run. */
  sequenceScores?: Record<string, number[]>;
}

export type FixtureRunner = (fixture: Fixture) => Promise<FixtureRun>;
