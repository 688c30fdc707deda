import { GlassformerError } from '../errors.js';

/** Exit codes every command uses (documented in docs/cli.md). */
export const EXIT = {
  ok: 0,
  /** The command ran but the answer is "no": a parity mismatch, a failed check. */
  failed: 1,
  /** The command line itself is wrong. */
  usage: 2,
  /** The input (a file, a model, a tokenizer) is missing or damaged. */
  input: 3,
  /** A bug: an error glassformer did not expect. */
  internal: 70,
} as const;

/** Print an error the way a user can act on it and return its exit code. */
export function reportError(error: unknown, stderr: NodeJS.WritableStream = process.stderr): number {
  if (error instanceof GlassformerError) {
    stderr.write(`glassformer: ${error.message}\n`);
    return EXIT.input;
  }
  const e = error as { code?: string; message?: string; path?: string };
  if (e && (e.code === 'ENOENT' || e.code === 'EACCES' || e.code === 'EISDIR')) {
    stderr.write(`glassformer: ${e.message}\n`);
    return EXIT.input;
  }
  stderr.write(`glassformer: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return EXIT.internal;
}
