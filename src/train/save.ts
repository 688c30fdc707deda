/**
 * Saving a trained model as a Hugging Face model folder: config.json in HF's
 * format for its model_type, model.safetensors under HF weight names with tied
 * weights left out (as `save_pretrained` does), tokenizer.json,
 * tokenizer_config.json and generation_config.json.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { serializeSafetensors } from '../io/safetensors.js';
import type { Tensor } from '../tensor/tensor.js';

export interface HfFolderContents {
  config: Record<string, unknown>;
  /** Parameters by HF name; names in `tied` are not written. */
  params: ReadonlyMap<string, Tensor>;
  /** Weights HF ties to another and leaves out of the file (e.g. `lm_head.weight` with tie_word_embeddings). */
  tied?: readonly string[];
  tokenizer?: Record<string, unknown>;
  tokenizerConfig?: Record<string, unknown>;
  generationConfig?: Record<string, unknown>;
}

/** Write the folder atomically (into `dir.tmp`, then renamed over `dir`). */
export async function saveHfFolder(dir: string, c: HfFolderContents): Promise<void> {
  const tmp = `${dir}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const tied = new Set(c.tied ?? []);
  const weights = new Map([...c.params].filter(([name]) => !tied.has(name)).map(([name, t]) => [name, t.detach()]));
  const json = (value: unknown): string => JSON.stringify(value, null, 2) + '\n';
  await writeFile(join(tmp, 'config.json'), json(c.config));
  // HF writes {"format": "pt"} so that `from_pretrained` accepts the file as a PyTorch checkpoint.
  await writeFile(join(tmp, 'model.safetensors'), serializeSafetensors(weights, { format: 'pt' }));
  if (c.tokenizer) await writeFile(join(tmp, 'tokenizer.json'), JSON.stringify(c.tokenizer));
  if (c.tokenizerConfig) await writeFile(join(tmp, 'tokenizer_config.json'), json(c.tokenizerConfig));
  if (c.generationConfig) await writeFile(join(tmp, 'generation_config.json'), json(c.generationConfig));
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
}

/** config.json of a Llama causal LM, with every field transformers v4.47 writes for one. */
export function llamaConfigJson(o: {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  layers: number;
  heads: number;
  kvHeads: number;
  maxPositions: number;
  bosTokenId: number;
  eosTokenId: number;
  tieWordEmbeddings: boolean;
  initializerRange: number;
}): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: o.bosTokenId,
    eos_token_id: o.eosTokenId,
    head_dim: o.hiddenSize / o.heads,
    hidden_act: 'silu',
    hidden_size: o.hiddenSize,
    initializer_range: o.initializerRange,
    intermediate_size: o.intermediateSize,
    max_position_embeddings: o.maxPositions,
    mlp_bias: false,
    model_type: 'llama',
    num_attention_heads: o.heads,
    num_hidden_layers: o.layers,
    num_key_value_heads: o.kvHeads,
    pretraining_tp: 1,
    rms_norm_eps: 1e-6,
    rope_scaling: null,
    rope_theta: 10000.0,
    tie_word_embeddings: o.tieWordEmbeddings,
    torch_dtype: 'float32',
    transformers_version: '4.47.1',
    use_cache: true,
    vocab_size: o.vocabSize,
  };
}
