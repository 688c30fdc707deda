/** Builds the model of a `tokenizer.json`, inferring its type when the file predates `model.type`. */
import { asArray, asBoolean, asNumber, asObject, asString, optional, required, unknownType, type Json, type JsonPath } from '../json.js';
import { BpeModel, checkDropout } from './bpe.js';
import type { Model } from './model.js';
import { UnigramModel } from './unigram.js';
import { WordPieceModel } from './wordpiece.js';

export type { Model, ModelToken, ModelTrace, BpeMergeStep } from './model.js';
export { BpeModel, WordPieceModel, UnigramModel };

export const MODEL_TYPES = ['BPE', 'WordPiece', 'Unigram'] as const;

/** Old files have no `type`: a [piece, score] list is Unigram, merges mean BPE, a subword prefix with a length limit means WordPiece. */
function inferType(obj: Record<string, Json>): string | undefined {
  if (Array.isArray(obj.vocab)) return 'Unigram';
  if (obj.merges !== undefined) return 'BPE';
  if (obj.continuing_subword_prefix !== undefined && obj.max_input_chars_per_word !== undefined) return 'WordPiece';
  return undefined;
}

export function readVocab(value: unknown, where: JsonPath): Map<string, number> {
  const obj = asObject(value, where);
  const vocab = new Map<string, number>();
  for (const key of Object.keys(obj)) {
    const id = obj[key];
    if (typeof id !== 'number') where.at(key).fail('an integer id', id);
    vocab.set(key, id as number);
  }
  return vocab;
}

/** Merges as `"a b"` strings (split at the first ASCII space only) or `["a", "b"]` pairs. */
export function readMerges(value: unknown, where: JsonPath): [string, string][] {
  return asArray(value, where).map((merge, i) => {
    if (typeof merge === 'string') {
      const space = merge.indexOf(' ');
      if (space < 0) where.at(i).fail('"left right"', merge);
      return [merge.slice(0, space), merge.slice(space + 1)];
    }
    if (Array.isArray(merge) && merge.length === 2 && typeof merge[0] === 'string' && typeof merge[1] === 'string') {
      return [merge[0], merge[1]];
    }
    return where.at(i).fail('"left right" or ["left", "right"]', merge);
  });
}

function readPieces(value: unknown, where: JsonPath): [string, number][] {
  return asArray(value, where).map((entry, i) => {
    if (Array.isArray(entry) && entry.length === 2 && typeof entry[0] === 'string' && typeof entry[1] === 'number') {
      return [entry[0], entry[1]];
    }
    return where.at(i).fail('[piece, score]', entry);
  });
}

export function modelFromJson(value: unknown, where: JsonPath): Model {
  const obj = asObject(value, where);
  const type = obj.type ?? inferType(obj);
  switch (type) {
    case 'BPE': {
      checkDropout(optional(obj, 'dropout', where, asNumber), where.file);
      return new BpeModel(required(obj, 'vocab', where, readVocab), required(obj, 'merges', where, readMerges), {
        unkToken: optional(obj, 'unk_token', where, asString) ?? null,
        continuingSubwordPrefix: optional(obj, 'continuing_subword_prefix', where, asString) ?? null,
        endOfWordSuffix: optional(obj, 'end_of_word_suffix', where, asString) ?? null,
        fuseUnk: optional(obj, 'fuse_unk', where, asBoolean) ?? false,
        byteFallback: optional(obj, 'byte_fallback', where, asBoolean) ?? false,
        ignoreMerges: optional(obj, 'ignore_merges', where, asBoolean) ?? false,
        file: where.file,
      });
    }
    case 'WordPiece':
      return new WordPieceModel(
        required(obj, 'vocab', where, readVocab),
        optional(obj, 'unk_token', where, asString) ?? '[UNK]',
        optional(obj, 'continuing_subword_prefix', where, asString) ?? '##',
        optional(obj, 'max_input_chars_per_word', where, asNumber) ?? 100,
        where.file,
      );
    case 'Unigram':
      return new UnigramModel(
        required(obj, 'vocab', where, readPieces),
        optional(obj, 'unk_id', where, asNumber) ?? null,
        optional(obj, 'byte_fallback', where, asBoolean) ?? false,
        optional(obj, 'fuse_unk', where, asBoolean) ?? true,
        where.file,
      );
    default:
      return unknownType('model', type, MODEL_TYPES, where);
  }
}
