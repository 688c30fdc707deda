/**
 * Decoders: turn token strings back into text. Each decoder maps the list of token
 * strings to a new list (`decodeChain`, as in Rust); the tokenizer joins the final
 * list.
 */
import { CHAR_TO_BYTE } from './byte-level.js';
import { asArray, asBoolean, asNumber, asObject, asString, optional, required, unknownType, type JsonPath } from './json.js';
import { readPattern } from './normalizers.js';
import { readPrependScheme, readReplacement, type PrependScheme } from './pre-tokenizers.js';
import { utf8Bytes, utf8Lossy, utf8Strict } from './unicode.js';

export interface Decoder {
  readonly type: string;
  decodeChain(tokens: string[]): string[];
}

/** Byte-level: each character back to its byte, then UTF-8 (invalid bytes become U+FFFD). */
class ByteLevelDecoder implements Decoder {
  readonly type = 'ByteLevel';
  decodeChain(tokens: string[]): string[] {
    const bytes: number[] = [];
    for (const token of tokens) {
      const mapped: number[] = [];
      let allMapped = true;
      for (const c of token) {
        const b = CHAR_TO_BYTE.get(c);
        if (b === undefined) {
          allMapped = false;
          break;
        }
        mapped.push(b);
      }
      // A token outside the byte alphabet (an added token) is kept as its own UTF-8.
      if (allMapped) bytes.push(...mapped);
      else bytes.push(...utf8Bytes(token));
    }
    return [utf8Lossy(new Uint8Array(bytes))];
  }
}

/** transformers' `clean_up_tokenization`: removes spaces before punctuation and English contractions. */
export function cleanUpTokenization(text: string): string {
  return text
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

/**
 * The per-token clean-up of BERT's WordPiece decoder: transformers'
 * `clean_up_tokenization` rules plus `" do not"` → `" don't"`; applying that last gives the Rust order's text,
 * since the rules it moves past (" 's", " 've", " 're") only delete a space before an apostrophe.
 */
export function cleanupWordPiece(text: string): string {
  return cleanUpTokenization(text).replaceAll(' do not', " don't");
}

/** WordPiece: `##` pieces join the previous token, other tokens get a space before them. */
class WordPieceDecoder implements Decoder {
  readonly type = 'WordPiece';
  constructor(
    private readonly prefix: string,
    private readonly cleanup: boolean,
  ) {}
  decodeChain(tokens: string[]): string[] {
    return tokens.map((token, i) => {
      let out = token;
      if (i !== 0) out = token.startsWith(this.prefix) ? token.slice(this.prefix.length) : ` ${token}`;
      return this.cleanup ? cleanupWordPiece(out) : out;
    });
  }
}

/** SentencePiece: `▁` back to a space; the first token loses its `▁` unless nothing was prepended. */
class MetaspaceDecoder implements Decoder {
  readonly type = 'Metaspace';
  constructor(
    private readonly replacement: string,
    private readonly prependScheme: PrependScheme,
  ) {}
  decodeChain(tokens: string[]): string[] {
    return tokens.map((token, i) => {
      const space = i === 0 && this.prependScheme !== 'never' ? '' : ' ';
      return token.split(this.replacement).join(space);
    });
  }
}

/** Byte-fallback: runs of `<0xAB>` tokens become the text their bytes encode, or one U+FFFD per byte if invalid. */
class ByteFallbackDecoder implements Decoder {
  readonly type = 'ByteFallback';
  decodeChain(tokens: string[]): string[] {
    const out: string[] = [];
    let pending: number[] = [];
    const flush = (): void => {
      if (pending.length === 0) return;
      const text = utf8Strict(new Uint8Array(pending));
      if (text !== null) out.push(text);
      else for (let i = 0; i < pending.length; i++) out.push('\ufffd');
      pending = [];
    };
    for (const token of tokens) {
      const byte = /^<0x[0-9A-Fa-f]{2}>$/.test(token) ? parseInt(token.slice(3, 5), 16) : null;
      if (byte !== null) pending.push(byte);
      else {
        flush();
        out.push(token);
      }
    }
    flush();
    return out;
  }
}

class FuseDecoder implements Decoder {
  readonly type = 'Fuse';
  decodeChain(tokens: string[]): string[] {
    return [tokens.join('')];
  }
}

/** Removes up to `start` leading and `stop` trailing copies of `content` from each token. */
class StripDecoder implements Decoder {
  readonly type = 'Strip';
  constructor(
    private readonly content: string,
    private readonly start: number,
    private readonly stop: number,
  ) {}
  decodeChain(tokens: string[]): string[] {
    return tokens.map((token) => {
      const chars = [...token];
      let from = 0;
      while (from < this.start && from < chars.length && chars[from] === this.content) from++;
      let to = chars.length;
      while (chars.length - to < this.stop && to > from && chars[to - 1] === this.content) to--;
      return chars.slice(from, to).join('');
    });
  }
}

class ReplaceDecoder implements Decoder {
  readonly type = 'Replace';
  constructor(
    private readonly pattern: RegExp,
    private readonly content: string,
  ) {}
  decodeChain(tokens: string[]): string[] {
    return tokens.map((t) => t.replace(this.pattern, () => this.content));
  }
}

/** CTC (speech models): collapse repeats, drop the blank token, word delimiter to space. */
class CtcDecoder implements Decoder {
  readonly type = 'CTC';
  constructor(
    private readonly padToken: string,
    private readonly wordDelimiter: string,
    private readonly cleanup: boolean,
  ) {}
  decodeChain(tokens: string[]): string[] {
    return tokens
      .filter((t, i) => i === 0 || t !== tokens[i - 1])
      .filter((t) => t !== this.padToken)
      .map((t) => {
        const spaced = t.replaceAll(this.wordDelimiter, ' ');
        return this.cleanup ? cleanupWordPiece(spaced) : spaced;
      });
  }
}

/** BPE with an end-of-word suffix (e.g. `</w>`): the suffix becomes a space. */
class BpeDecoder implements Decoder {
  readonly type = 'BPEDecoder';
  constructor(private readonly suffix: string) {}
  decodeChain(tokens: string[]): string[] {
    return tokens.map((t, i) => t.replaceAll(this.suffix, i === tokens.length - 1 ? '' : ' '));
  }
}

class DecoderSequence implements Decoder {
  readonly type = 'Sequence';
  constructor(readonly decoders: Decoder[]) {}
  decodeChain(tokens: string[]): string[] {
    let out = tokens;
    for (const d of this.decoders) out = d.decodeChain(out);
    return out;
  }
}

export const DECODER_TYPES = [
  'ByteLevel', 'WordPiece', 'Metaspace', 'ByteFallback', 'Fuse', 'Strip', 'Replace', 'CTC', 'BPEDecoder', 'Sequence',
] as const;

export function decoderFromJson(value: unknown, where: JsonPath): Decoder {
  const obj = asObject(value, where);
  switch (obj.type) {
    case 'ByteLevel':
      return new ByteLevelDecoder();
    case 'WordPiece':
      return new WordPieceDecoder(optional(obj, 'prefix', where, asString) ?? '##', optional(obj, 'cleanup', where, asBoolean) ?? true);
    case 'Metaspace':
      return new MetaspaceDecoder(readReplacement(obj, where), readPrependScheme(obj, where));
    case 'ByteFallback':
      return new ByteFallbackDecoder();
    case 'Fuse':
      return new FuseDecoder();
    case 'Strip':
      return new StripDecoder(
        required(obj, 'content', where, asString),
        optional(obj, 'start', where, asNumber) ?? 0,
        optional(obj, 'stop', where, asNumber) ?? 0,
      );
    case 'Replace':
      return new ReplaceDecoder(required(obj, 'pattern', where, readPattern), required(obj, 'content', where, asString));
    case 'CTC':
      return new CtcDecoder(
        optional(obj, 'pad_token', where, asString) ?? '<pad>',
        optional(obj, 'word_delimiter_token', where, asString) ?? '|',
        optional(obj, 'cleanup', where, asBoolean) ?? true,
      );
    case 'BPEDecoder':
      return new BpeDecoder(optional(obj, 'suffix', where, asString) ?? '</w>');
    case 'Sequence':
      return new DecoderSequence(required(obj, 'decoders', where, asArray).map((d, i) => decoderFromJson(d, where.at('decoders').at(i))));
    default:
      return unknownType('decoder', obj.type, DECODER_TYPES, where);
  }
}
