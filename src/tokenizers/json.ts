/**
 * Typed reading of `tokenizer.json` fields. Every failure names the file and the
 * field path, what was expected and what was found.
 */
import { FormatError, UnsupportedError } from '../errors.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** Where a value sits: the file and the dotted path inside it. */
export class JsonPath {
  constructor(
    readonly file: string,
    readonly path: string,
  ) {}

  at(key: string | number): JsonPath {
    const step = typeof key === 'number' ? `[${key}]` : this.path === '' ? key : `.${key}`;
    return new JsonPath(this.file, this.path + step);
  }

  fail(expected: string, found: unknown): never {
    throw new FormatError(this.file, `${this.path || '(top level)'}: expected ${expected}, found ${describe(found)}`);
  }
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing (field missing)';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

export function asObject(value: unknown, where: JsonPath): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) where.fail('an object', value);
  return value as JsonObject;
}

export function asArray(value: unknown, where: JsonPath): Json[] {
  if (!Array.isArray(value)) where.fail('an array', value);
  return value as Json[];
}

export function asString(value: unknown, where: JsonPath): string {
  if (typeof value !== 'string') where.fail('a string', value);
  return value as string;
}

export function asNumber(value: unknown, where: JsonPath): number {
  if (typeof value !== 'number') where.fail('a number', value);
  return value as number;
}

export function asBoolean(value: unknown, where: JsonPath): boolean {
  if (typeof value !== 'boolean') where.fail('true or false', value);
  return value as boolean;
}

/** A field that may be missing or null, read with `read` when present. */
export function optional<T>(obj: JsonObject, key: string, where: JsonPath, read: (v: unknown, at: JsonPath) => T): T | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  return read(value, where.at(key));
}

export function required<T>(obj: JsonObject, key: string, where: JsonPath, read: (v: unknown, at: JsonPath) => T): T {
  return read(obj[key], where.at(key));
}

/** Throws for a component `type` this library does not implement, listing those it does. */
export function unknownType(kind: string, type: unknown, supported: readonly string[], where: JsonPath): never {
  throw new UnsupportedError(
    `${where.file}: ${where.path}.type: unknown ${kind} type ${JSON.stringify(type)}; supported: ${supported.join(', ')}`,
  );
}
