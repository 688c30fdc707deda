/**
 * Streaming: generation as an async iterator of tokens and the text they add,
 * as Hugging Face's TextStreamer / TextIteratorStreamer deliver it (one input
 * row; only the generated tokens are decoded; text is held back while it ends
 * in an incomplete UTF-8 character).
 */
import { ConfigError, UnsupportedError } from '../errors.js';
import { decodeSteps, resolveGeneration, type GenerateCallbacks, type GenerateInputs, type GenerateResult } from './generate.js';
import type { GenerateOptions } from './options.js';
import type { GenerativeModel } from './types.js';

export interface StreamChunk {
  /** The token generated at this step. */
  token: number;
  /** Its log-probability under the processed distribution. */
  logprob: number;
  /** Text that became final with this token (may be empty). */
  text: string;
  /** Set on the last chunk. */
  done: boolean;
  /** On the last chunk: the whole result, as generate() returns it. */
  result?: GenerateResult;
}

/**
 * Incremental detokenisation: decode everything generated so far and emit the
 * part not emitted yet, unless it ends in U+FFFD (a character whose bytes are
 * still arriving).
 */
export class TextStream {
  private readonly ids: number[] = [];
  private emitted = 0;

  constructor(private readonly decode: (ids: number[]) => string) {}

  push(token: number): string {
    this.ids.push(token);
    const text = this.decode(this.ids);
    if (text.endsWith('\uFFFD')) return '';
    return this.take(text);
  }

  /** Whatever is left at the end, incomplete characters included. */
  flush(): string {
    return this.take(this.decode(this.ids));
  }

  private take(text: string): string {
    // A decoder may rewrite earlier text (e.g. cleanup of spaces); emit only what extends the emitted prefix.
    const out = text.length > this.emitted ? text.slice(this.emitted) : '';
    this.emitted = Math.max(this.emitted, text.length);
    return out;
  }
}

/** Generate for one input row, yielding each token as soon as it is chosen. */
export async function* streamGenerate(
  model: GenerativeModel,
  inputs: GenerateInputs,
  options: GenerateOptions = {},
  defaults: GenerateOptions = {},
  callbacks: GenerateCallbacks & { decode: (ids: number[]) => string },
): AsyncGenerator<StreamChunk> {
  if (inputs.inputIds.length !== 1) throw new UnsupportedError(`streaming takes one input row, got ${inputs.inputIds.length}; use generate() for batches`);
  const r = resolveGeneration(model, inputs, options, defaults, callbacks);
  if (r.mode === 'beam') throw new UnsupportedError('streaming is not available with beam search (the best sequence is only known at the end)');
  if (r.numReturnSequences !== 1) throw new ConfigError('streaming returns one sequence; numReturnSequences must be 1');
  const text = new TextStream(callbacks.decode);
  const steps = decodeSteps(model, inputs, r, callbacks);
  for (;;) {
    const next = steps.next();
    if (next.done) return;
    const event = next.value;
    callbacks.onStep?.(event);
    const chunk = { token: event.tokens[0], logprob: event.logprobs[0], text: text.push(event.tokens[0]) };
    if (event.finished[0]) {
      // One row: once it is finished the loop has nothing left to do but return the result.
      const end = steps.next();
      yield { ...chunk, text: chunk.text + text.flush(), done: true, result: end.done ? end.value : undefined };
      return;
    }
    yield { ...chunk, done: false };
    await new Promise((resolve) => setImmediate(resolve));
  }
}
