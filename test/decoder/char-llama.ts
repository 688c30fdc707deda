import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors } from '../../src/io/safetensors.js';
import { nodeFileSystem } from '../../src/io/node-fs.js';
import { LlamaModel, parseLlamaConfig } from '../../src/models/llama.js';
import { Weights } from '../../src/nn/weights.js';
import type { TextGenerator, TextTokenizer } from '../../src/tasks/generate.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const shared = process.env.GLASSFORMER_SHARED ?? join(repoRoot, '..', 'shared');

/** One token per character: ids 3…127 print as U+0103…; other characters map onto them by code. */
export const charTokenizer: TextTokenizer = {
  encode: (text) => Array.from(text, (c) => (c.charCodeAt(0) >= 0x100 ? c.charCodeAt(0) - 0x100 : (c.charCodeAt(0) % 125) + 3)),
  decode: (ids) => ids.filter((i) => i > 2).map((i) => String.fromCharCode(0x100 + i)).join(''),
  config: { chat_template: '{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}' },
};

/** The hf-tiny Llama fixture behind `charTokenizer`, as a text generator. */
export async function fixtureGenerator(): Promise<TextGenerator> {
  const dir = join(shared, 'fixtures/hf-tiny/llama');
  const config = parseLlamaConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>);
  const model = new LlamaModel(config, Weights.from(await readSafetensors(nodeFileSystem, join(dir, 'model.safetensors'))));
  return { source: dir, model, tokenizer: charTokenizer, defaults: { eosTokenId: 2, padTokenId: 0 } };
}
