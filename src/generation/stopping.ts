/**
 * Stopping criteria: after each step, which rows are finished (HF
 * `generation/stopping_criteria.py`). A finished row keeps being fed (with the
 * pad token) until every row is done, exactly as Hugging Face does.
 */

export interface StoppingContext {
  /** Every row's tokens so far, the token chosen this step included. */
  ids: readonly (readonly number[])[];
  /** Length of the prompt (decoder-only) or decoder start (seq2seq). */
  promptLength: number;
}

export interface StoppingCriterion {
  readonly name: string;
  /** One flag per row: true when this row should stop. */
  done(context: StoppingContext): boolean[];
}

/** Every row stops once the sequence reaches `maxLength` tokens (prompt included). */
export function maxLengthCriterion(maxLength: number): StoppingCriterion {
  return { name: 'max_length', done: ({ ids }) => ids.map((row) => row.length >= maxLength) };
}

/** A row stops when its last token is one of the EOS ids. */
export function eosCriterion(eosTokenIds: readonly number[]): StoppingCriterion {
  const eos = new Set(eosTokenIds);
  return { name: 'eos', done: ({ ids }) => ids.map((row) => eos.has(row[row.length - 1])) };
}

/** Every row stops once `seconds` have passed since generation began. */
export function maxTimeCriterion(seconds: number, start = performance.now()): StoppingCriterion {
  return {
    name: 'max_time',
    done: ({ ids }) => {
      const over = (performance.now() - start) / 1000 > seconds;
      return ids.map(() => over);
    },
  };
}

/**
 * A row stops when its generated text contains a stop string that ends inside
 * the newest token (HF StopStringCriteria: the string may span several tokens,
 * and the last token may run past it).
 */
export function stopStringCriterion(stopStrings: readonly string[], decode: (ids: number[]) => string): StoppingCriterion {
  return {
    name: 'stop_strings',
    done: ({ ids, promptLength }) =>
      ids.map((row) => {
        const generated = row.slice(promptLength);
        if (generated.length === 0) return false;
        const before = decode(generated.slice(0, -1));
        const text = decode(generated);
        return stopStrings.some((s) => text.indexOf(s, Math.max(0, before.length - s.length + 1)) !== -1);
      }),
  };
}

/** Combine the criteria: a row is done when any criterion says so. */
export function anyDone(criteria: readonly StoppingCriterion[], context: StoppingContext): boolean[] {
  const done = context.ids.map(() => false);
  for (const c of criteria) c.done(context).forEach((d, i) => (done[i] ||= d));
  return done;
}
