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
  const out = emptyEncoding();
  for (const p of parts) {
    out.ids.push(...p.ids);
    out.tokens.push(...p.tokens);
    out.offsets.push(...p.offsets);
    out.typeIds.push(...p.typeIds);
    out.attentionMask.push(...p.attentionMask);
    out.specialTokensMask.push(...p.specialTokensMask);
  }
  return out;
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
