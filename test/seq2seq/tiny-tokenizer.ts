/**
 * A T5-style tokenizer.json for the hf-tiny seq2seq models (vocabulary 128):
 * Unigram pieces "▁w<i>" (one per id), Metaspace, and a template that adds the
 * family's special tokens — so that a text of words "w42 w112 …" encodes to
 * exactly the fixture's input ids and the text path can be checked against the
 * recorded Hugging Face generations.
 */
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SpecialIds {
  pad: number;
  eos: number;
  unk: number;
  /** BART: `<s>` opens every sequence. */
  bos?: number;
}

export const TOKEN_NAMES = { pad: '<pad>', eos: '</s>', unk: '<unk>', bos: '<s>' } as const;

/** The word the tiny vocabulary gives id `i` (special ids keep their token). */
export const wordOf = (i: number): string => `w${i}`;

/** Text whose words are the given (non-special) ids. */
export function textOf(ids: readonly number[]): string {
  return ids.map(wordOf).join(' ');
}

export function tinyTokenizerJson(vocabSize: number, special: SpecialIds): object {
  const specials = new Map<number, string>();
  for (const [name, id] of Object.entries(special) as [keyof SpecialIds, number | undefined][]) if (id !== undefined) specials.set(id, TOKEN_NAMES[name]);
  const vocab = Array.from({ length: vocabSize }, (_, i) => [specials.get(i) ?? `▁${wordOf(i)}`, specials.has(i) ? 0 : -1 - i / vocabSize]);
  const sequence = { Sequence: { id: 'A', type_id: 0 } };
  const token = (name: string) => ({ SpecialToken: { id: name, type_id: 0 } });
  const single = special.bos === undefined ? [sequence, token('</s>')] : [token('<s>'), sequence, token('</s>')];
  const specialTokens: Record<string, { id: string; ids: number[]; tokens: string[] }> = {
    '</s>': { id: '</s>', ids: [special.eos], tokens: ['</s>'] },
  };
  if (special.bos !== undefined) specialTokens['<s>'] = { id: '<s>', ids: [special.bos], tokens: ['<s>'] };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [...specials].map(([id, content]) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    post_processor: { type: 'TemplateProcessing', single, pair: [...single, sequence], special_tokens: specialTokens },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: special.unk, vocab, byte_fallback: false },
  };
}

const created: string[] = [];

/** Remove every folder `tinyModelFolder` made (call from an `after` hook). */
export function removeTinyFolders(): void {
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/**
 * A temporary model folder: the fixture's config, generation config and weights
 * (linked, not copied) plus the tiny tokenizer; `config` entries are merged into config.json.
 */
export function tinyModelFolder(fixtureDir: string, special: SpecialIds, configJson: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'glassformer-seq2seq-'));
  created.push(dir);
  for (const name of ['model.safetensors', 'generation_config.json']) symlinkSync(join(fixtureDir, name), join(dir, name));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(configJson));
  const vocabSize = configJson.vocab_size as number;
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson(vocabSize, special)));
  const names: Record<string, string> = { eos_token: '</s>', pad_token: '<pad>', unk_token: '<unk>' };
  if (special.bos !== undefined) names.bos_token = '<s>';
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(names));
  return dir;
}
