/** Truncation and padding, with the strategies of the Rust library. */
import { ConfigError } from '../errors.js';
import { sliceEncoding, type Encoding } from './encoding.js';

export type TruncationStrategy = 'longest_first' | 'only_first' | 'only_second';
export type Side = 'left' | 'right';

export interface TruncationOptions {
  maxLength: number;
  strategy?: TruncationStrategy;
  /** Which end loses tokens. */
  direction?: Side;
}

export interface PaddingOptions {
  /** 'longest': to the longest encoding in the batch; 'max_length': to `maxLength`. */
  strategy: 'longest' | 'max_length';
  maxLength?: number;
  side?: Side;
  padId: number;
  padTypeId?: number;
  padToken: string;
  padToMultipleOf?: number;
}

function keep(e: Encoding, length: number, direction: Side): Encoding {
  if (e.ids.length <= length) return e;
  return direction === 'right' ? sliceEncoding(e, 0, length) : sliceEncoding(e, e.ids.length - length, e.ids.length);
}

/**
 * Truncates the sequence(s) so that, with `added` special tokens, they fit in
 * `maxLength`. With `longest_first` the longer sequence loses tokens until both
 * are equally long, then both lose tokens in turn.
 */
export function truncate(a: Encoding, b: Encoding | null, added: number, options: TruncationOptions): [Encoding, Encoding | null] {
  const budget = options.maxLength - added;
  const direction = options.direction ?? 'right';
  const strategy = options.strategy ?? 'longest_first';
  if (budget < 0) throw new ConfigError(`truncation maxLength ${options.maxLength} is smaller than the ${added} special tokens the template adds`);
  const total = a.ids.length + (b?.ids.length ?? 0);
  if (total <= budget) return [a, b];
  if (b === null) {
    if (strategy === 'only_second') throw new ConfigError("truncation strategy 'only_second' needs a pair of sequences");
    return [keep(a, budget, direction), null];
  }
  const excess = total - budget;
  switch (strategy) {
    case 'only_first':
      if (a.ids.length < excess) throw new ConfigError(`truncation 'only_first' cannot remove ${excess} tokens from a sequence of ${a.ids.length}`);
      return [keep(a, a.ids.length - excess, direction), b];
    case 'only_second':
      if (b.ids.length < excess) throw new ConfigError(`truncation 'only_second' cannot remove ${excess} tokens from a sequence of ${b.ids.length}`);
      return [a, keep(b, b.ids.length - excess, direction)];
    case 'longest_first': {
      // The longer sequence (the second on a tie) keeps at least half the budget,
      // rounded up; the shorter keeps the rest.
      const firstLonger = a.ids.length > b.ids.length;
      const [longer, shorter] = firstLonger ? [a.ids.length, b.ids.length] : [b.ids.length, a.ids.length];
      const keepLonger = Math.min(longer, Math.max(Math.ceil(budget / 2), budget - shorter));
      const keepShorter = Math.min(shorter, budget - keepLonger);
      const [keep1, keep2] = firstLonger ? [keepLonger, keepShorter] : [keepShorter, keepLonger];
      return [keep(a, keep1, direction), keep(b, keep2, direction)];
    }
  }
}

/** Pads `e` to `length` with the pad token (attention mask 0, special-token mask 1). */
export function pad(e: Encoding, length: number, options: PaddingOptions): Encoding {
  const missing = length - e.ids.length;
  if (missing <= 0) return e;
  const fill = <T>(value: T): T[] => new Array<T>(missing).fill(value);
  const join = <T>(values: T[], padding: T[]): T[] => (options.side === 'left' ? padding.concat(values) : values.concat(padding));
  return {
    ids: join(e.ids, fill(options.padId)),
    tokens: join(e.tokens, fill(options.padToken)),
    offsets: join(e.offsets, Array.from({ length: missing }, (): [number, number] => [0, 0])),
    typeIds: join(e.typeIds, fill(options.padTypeId ?? 0)),
    attentionMask: join(e.attentionMask, fill(0)),
    specialTokensMask: join(e.specialTokensMask, fill(1)),
  };
}

/** The length a batch is padded to. */
export function paddedLength(encodings: Encoding[], options: PaddingOptions): number {
  let length: number;
  if (options.strategy === 'max_length') {
    if (options.maxLength === undefined) throw new ConfigError("padding 'max_length' needs maxLength");
    length = options.maxLength;
  } else {
    length = Math.max(0, ...encodings.map((e) => e.ids.length));
  }
  const multiple = options.padToMultipleOf;
  if (multiple !== undefined && multiple > 0 && length % multiple !== 0) length += multiple - (length % multiple);
  return length;
}
