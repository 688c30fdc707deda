/**
 * The named special tokens transformers knows (`bos_token`, `eos_token`, …), read
 * from tokenizer_config.json and special_tokens_map.json. A value is a string or an
 * AddedToken object with `content`.
 */
import type { JsonObject } from './json.js';

export const SPECIAL_TOKEN_NAMES = ['bos', 'eos', 'unk', 'sep', 'pad', 'cls', 'mask'] as const;
export type SpecialTokenName = (typeof SPECIAL_TOKEN_NAMES)[number];

function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

/** tokenizer_config.json wins; special_tokens_map.json fills what it leaves out. */
export function readSpecialTokens(config: JsonObject, specialTokensMap: JsonObject): Partial<Record<SpecialTokenName, string>> {
  const out: Partial<Record<SpecialTokenName, string>> = {};
  for (const name of SPECIAL_TOKEN_NAMES) {
    const content = tokenContent(config[`${name}_token`]) ?? tokenContent(specialTokensMap[`${name}_token`]);
    if (content !== undefined) out[name] = content;
  }
  return out;
}
