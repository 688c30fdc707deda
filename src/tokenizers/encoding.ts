/** The result of encoding one text (or pair), with the fields Hugging Face's `Encoding` has. */
export interface Encoding {
  ids: number[];
  tokens: string[];
  /** [start, end) in the original string, in UTF-16 code units; [0, 0] for inserted special tokens. */
  offsets: [number, number][];
  typeIds: number[];
  attentionMask: number[];
  /** 1 for tokens added by the post-processor (e.g. `[CLS]`) and for padding. */
  specialTokensMask: number[];
}

export function emptyEncoding(): Encoding {
  return { ids: [], tokens: [], offsets: [], typeIds: [], attentionMask: [], specialTokensMask: [] };
}

export function concatEncodings(parts: Encoding[]): Encoding {
  if (parts.length === 1) return parts[0];
  // concat rather than push(...): spreading a long sequence overflows the call stack.
  const join = <K extends keyof Encoding>(key: K): Encoding[K] => ([] as Encoding[K][number][]).concat(...parts.map((p) => p[key])) as Encoding[K];
  return {
    ids: join('ids'),
    tokens: join('tokens'),
    offsets: join('offsets'),
    typeIds: join('typeIds'),
    attentionMask: join('attentionMask'),
    specialTokensMask: join('specialTokensMask'),
  };
}

/** An encoding of special tokens inserted by a template. */
export function specialEncoding(ids: number[], tokens: string[], typeId: number): Encoding {
  return {
    ids: [...ids],
    tokens: [...tokens],
    offsets: ids.map(() => [0, 0]),
    typeIds: ids.map(() => typeId),
    attentionMask: ids.map(() => 1),
    specialTokensMask: ids.map(() => 1),
  };
}

export function withTypeId(encoding: Encoding, typeId: number): Encoding {
  return { ...encoding, typeIds: encoding.ids.map(() => typeId) };
}

/** Keeps tokens [start, end) of an encoding. */
export function sliceEncoding(e: Encoding, start: number, end: number): Encoding {
  return {
    ids: e.ids.slice(start, end),
    tokens: e.tokens.slice(start, end),
    offsets: e.offsets.slice(start, end),
    typeIds: e.typeIds.slice(start, end),
    attentionMask: e.attentionMask.slice(start, end),
    specialTokensMask: e.specialTokensMask.slice(start, end),
  };
}
