/**
 * Post-processors: add the model's special tokens around the encoded sequence(s)
 * (`[CLS] A [SEP] B [SEP]`, `<s> A`, …) and set the type ids that tell the model
 * which sequence each token belongs to.
 */
import { BYTE_TO_CHAR } from './byte-level.js';
import { concatEncodings, specialEncoding, withTypeId, type Encoding } from './encoding.js';
import { asArray, asBoolean, asNumber, asObject, asString, optional, required, unknownType, type JsonPath } from './json.js';
import { isWhitespace } from './unicode.js';

export interface PostProcessor {
  readonly type: string;
  /** How many tokens `process` adds with special tokens on. */
  addedTokens(isPair: boolean): number;
  process(a: Encoding, b: Encoding | null, addSpecialTokens: boolean): Encoding;
}

/** Without a post-processor (or without special tokens) the sequences are concatenated as they are. */
export function defaultProcess(a: Encoding, b: Encoding | null): Encoding {
  return b === null ? a : concatEncodings([a, b]);
}

type TemplatePiece = { kind: 'sequence'; sequence: 'A' | 'B'; typeId: number } | { kind: 'special'; id: string; typeId: number };

interface TemplateSpecialToken {
  ids: number[];
  tokens: string[];
}

export class TemplateProcessing implements PostProcessor {
  readonly type = 'TemplateProcessing';
  constructor(
    readonly single: TemplatePiece[],
    readonly pair: TemplatePiece[],
    readonly specialTokens: Map<string, TemplateSpecialToken>,
  ) {}

  addedTokens(isPair: boolean): number {
    const template = isPair ? this.pair : this.single;
    return template.reduce((n, p) => n + (p.kind === 'special' ? (this.specialTokens.get(p.id)?.ids.length ?? 0) : 0), 0);
  }

  process(a: Encoding, b: Encoding | null, addSpecialTokens: boolean): Encoding {
    const template = b === null ? this.single : this.pair;
    const parts: Encoding[] = [];
    for (const piece of template) {
      if (piece.kind === 'sequence') {
        const source = piece.sequence === 'A' ? a : b;
        if (source !== null) parts.push(withTypeId(source, piece.typeId));
      } else if (addSpecialTokens) {
        const special = this.specialTokens.get(piece.id) as TemplateSpecialToken;
        parts.push(specialEncoding(special.ids, special.tokens, piece.typeId));
      }
    }
    return concatEncodings(parts);
  }
}

/** BERT: `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]`, type ids 0 then 1. */
class BertProcessing implements PostProcessor {
  readonly type = 'BertProcessing';
  constructor(
    private readonly sep: [string, number],
    private readonly cls: [string, number],
  ) {}
  addedTokens(isPair: boolean): number {
    return isPair ? 3 : 2;
  }
  process(a: Encoding, b: Encoding | null, addSpecialTokens: boolean): Encoding {
    if (!addSpecialTokens) return defaultProcess(a, b);
    const cls = specialEncoding([this.cls[1]], [this.cls[0]], 0);
    const parts = [cls, withTypeId(a, 0), specialEncoding([this.sep[1]], [this.sep[0]], 0)];
    if (b !== null) parts.push(withTypeId(b, 1), specialEncoding([this.sep[1]], [this.sep[0]], 1));
    return concatEncodings(parts);
  }
}

/** RoBERTa: `<s> A </s>` and `<s> A </s></s> B </s>`, all type ids 0. */
class RobertaProcessing implements PostProcessor {
  readonly type = 'RobertaProcessing';
  constructor(
    private readonly sep: [string, number],
    private readonly cls: [string, number],
    private readonly trimOffsets: boolean,
    private readonly addPrefixSpace: boolean,
  ) {}
  addedTokens(isPair: boolean): number {
    return isPair ? 4 : 2;
  }
  process(a: Encoding, b: Encoding | null, addSpecialTokens: boolean): Encoding {
    const [ta, tb] = this.trimOffsets ? [trimOffsets(a, this.addPrefixSpace), b && trimOffsets(b, this.addPrefixSpace)] : [a, b];
    if (!addSpecialTokens) return defaultProcess(ta, tb);
    const sep = (): Encoding => specialEncoding([this.sep[1]], [this.sep[0]], 0);
    const parts = [specialEncoding([this.cls[1]], [this.cls[0]], 0), withTypeId(ta, 0), sep()];
    if (tb !== null) parts.push(sep(), withTypeId(tb, 0), sep());
    return concatEncodings(parts);
  }
}

/** Byte-level: adds nothing; with `trim_offsets` the offsets leave out leading/trailing spaces. */
class ByteLevelProcessing implements PostProcessor {
  readonly type = 'ByteLevel';
  constructor(
    private readonly trim: boolean,
    private readonly addPrefixSpace: boolean,
  ) {}
  addedTokens(): number {
    return 0;
  }
  process(a: Encoding, b: Encoding | null): Encoding {
    if (!this.trim) return defaultProcess(a, b);
    return defaultProcess(trimOffsets(a, this.addPrefixSpace), b && trimOffsets(b, this.addPrefixSpace));
  }
}

const SPACE_CHAR = BYTE_TO_CHAR[0x20];

function isSpaceLike(c: string): boolean {
  return c === SPACE_CHAR || isWhitespace(c);
}

/** Moves offsets past the spaces a byte-level token starts or ends with. */
function trimOffsets(e: Encoding, addPrefixSpace: boolean): Encoding {
  const offsets = e.offsets.map(([start, end], i): [number, number] => {
    const chars = [...e.tokens[i]];
    let leading = 0;
    while (leading < chars.length && isSpaceLike(chars[leading])) leading++;
    let trailing = 0;
    while (trailing < chars.length && isSpaceLike(chars[chars.length - 1 - trailing])) trailing++;
    if (leading > 0 && addPrefixSpace && leading === 1 && (i === 0 || start === 0)) leading = 0;
    const newStart = Math.min(start + leading, end);
    const newEnd = trailing > 0 && end >= trailing ? Math.max(end - trailing, newStart) : end;
    return [newStart, newEnd];
  });
  return { ...e, offsets };
}

class PostProcessorSequence implements PostProcessor {
  readonly type = 'Sequence';
  constructor(readonly processors: PostProcessor[]) {}
  addedTokens(isPair: boolean): number {
    return this.processors.reduce((n, p) => n + p.addedTokens(isPair), 0);
  }
  /**
   * Each processor sees the pieces the previous left; the sequences stay separate
   * until the last processor, which may insert tokens between them.
   */
  process(a: Encoding, b: Encoding | null, addSpecialTokens: boolean): Encoding {
    if (this.processors.length === 0) return defaultProcess(a, b);
    let [ca, cb] = [a, b];
    for (const p of this.processors.slice(0, -1)) {
      if (p.addedTokens(cb !== null) > 0) {
        ca = p.process(ca, cb, addSpecialTokens);
        cb = null;
      } else {
        ca = p.process(ca, null, addSpecialTokens);
        cb = cb && p.process(cb, null, addSpecialTokens);
      }
    }
    return (this.processors[this.processors.length - 1] as PostProcessor).process(ca, cb, addSpecialTokens);
  }
}

export const POST_PROCESSOR_TYPES = ['TemplateProcessing', 'BertProcessing', 'RobertaProcessing', 'ByteLevel', 'Sequence'] as const;

/** A template piece, either in JSON form or the string shorthand (`$A`, `$B:1`, `[CLS]`, `[SEP]:1`). */
function readTemplatePiece(value: unknown, where: JsonPath): TemplatePiece {
  if (typeof value === 'string') {
    const [name, typeText] = value.split(':');
    const typeId = typeText === undefined ? 0 : Number(typeText);
    if (!Number.isInteger(typeId)) where.fail('a piece like "$A", "$B:1" or "[CLS]:0"', value);
    if (name === '$A' || name === '$') return { kind: 'sequence', sequence: 'A', typeId };
    if (name === '$B') return { kind: 'sequence', sequence: 'B', typeId };
    if (/^\$\d+$/.test(name)) return { kind: 'sequence', sequence: 'A', typeId: Number(name.slice(1)) };
    return { kind: 'special', id: name, typeId };
  }
  const obj = asObject(value, where);
  if (obj.Sequence !== undefined) {
    const seq = asObject(obj.Sequence, where.at('Sequence'));
    const id = required(seq, 'id', where.at('Sequence'), asString);
    if (id !== 'A' && id !== 'B') where.at('Sequence').at('id').fail('"A" or "B"', id);
    return { kind: 'sequence', sequence: id as 'A' | 'B', typeId: required(seq, 'type_id', where.at('Sequence'), asNumber) };
  }
  if (obj.SpecialToken !== undefined) {
    const special = asObject(obj.SpecialToken, where.at('SpecialToken'));
    return {
      kind: 'special',
      id: required(special, 'id', where.at('SpecialToken'), asString),
      typeId: required(special, 'type_id', where.at('SpecialToken'), asNumber),
    };
  }
  return where.fail('{"Sequence": …} or {"SpecialToken": …}', value);
}

function readTemplate(value: unknown, where: JsonPath): TemplatePiece[] {
  if (typeof value === 'string') return value.split(/ +/).filter((s) => s !== '').map((p) => readTemplatePiece(p, where));
  return asArray(value, where).map((p, i) => readTemplatePiece(p, where.at(i)));
}

function readTokenPair(value: unknown, where: JsonPath): [string, number] {
  const pair = asArray(value, where);
  return [asString(pair[0], where.at(0)), asNumber(pair[1], where.at(1))];
}

export function postProcessorFromJson(value: unknown, where: JsonPath): PostProcessor {
  const obj = asObject(value, where);
  switch (obj.type) {
    case 'TemplateProcessing': {
      const single = required(obj, 'single', where, readTemplate);
      const pair = required(obj, 'pair', where, readTemplate);
      const specialTokens = new Map<string, TemplateSpecialToken>();
      const specialsAt = where.at('special_tokens');
      const specials = asObject(obj.special_tokens ?? {}, specialsAt);
      for (const key of Object.keys(specials)) {
        const entry = asObject(specials[key], specialsAt.at(key));
        specialTokens.set(key, {
          ids: required(entry, 'ids', specialsAt.at(key), asArray).map((id, i) => asNumber(id, specialsAt.at(key).at('ids').at(i))),
          tokens: required(entry, 'tokens', specialsAt.at(key), asArray).map((t, i) => asString(t, specialsAt.at(key).at('tokens').at(i))),
        });
      }
      for (const [name, template] of [['single', single], ['pair', pair]] as const) {
        for (const piece of template) {
          if (piece.kind === 'special' && !specialTokens.has(piece.id)) {
            where.at(name).fail(`special token ${JSON.stringify(piece.id)} to be listed in special_tokens`, Object.keys(specials));
          }
        }
      }
      return new TemplateProcessing(single, pair, specialTokens);
    }
    case 'BertProcessing':
      return new BertProcessing(required(obj, 'sep', where, readTokenPair), required(obj, 'cls', where, readTokenPair));
    case 'RobertaProcessing':
      return new RobertaProcessing(
        required(obj, 'sep', where, readTokenPair),
        required(obj, 'cls', where, readTokenPair),
        optional(obj, 'trim_offsets', where, asBoolean) ?? true,
        optional(obj, 'add_prefix_space', where, asBoolean) ?? true,
      );
    case 'ByteLevel':
      return new ByteLevelProcessing(optional(obj, 'trim_offsets', where, asBoolean) ?? true, optional(obj, 'add_prefix_space', where, asBoolean) ?? true);
    case 'Sequence':
      return new PostProcessorSequence(
        required(obj, 'processors', where, asArray).map((p, i) => postProcessorFromJson(p, where.at('processors').at(i))),
      );
    default:
      return unknownType('post-processor', obj.type, POST_PROCESSOR_TYPES, where);
  }
}
