/**
 * llama2.c checkpoints (github.com/karpathy/llama2.c) and its tokenizer.bin.
 *
 * Legacy ("version 0") checkpoint, as written by `export.py legacy_export` and read by run.c:
 *   7 × int32   dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
 *               (vocab_size < 0: the classifier is not tied and follows at the end)
 *   float32     token_embedding [vocab, dim], rms_att [L, dim], wq [L, dim, dim],
 *               wk [L, kvDim, dim], wv [L, kvDim, dim], wo [L, dim, dim], rms_ffn [L, dim],
 *               w1 [L, hidden, dim], w2 [L, dim, hidden], w3 [L, hidden, dim], rms_final [dim],
 *               freq_cis_real [seq_len, headSize/2], freq_cis_imag [same] (unused),
 *               wcls [vocab, dim] when untied
 * Version 1 (`version1_export`): u32 magic "ak42", int32 version 1, the 7 int32 (vocab_size
 * positive), a u8 "shared classifier" flag, zero padding to 256 bytes, then float32 rms_att,
 * rms_ffn, rms_final, token_embedding, wq, wk, wv, wo, w1, w2, w3 and wcls when not shared.
 * Version 2 (int8 quantised) is refused.
 *
 * Tensors come out under Hugging Face Llama names, so the Llama model loads
 * them like any Hugging Face checkpoint. One conversion is needed: llama2.c
 * applies RoPE to interleaved pairs (q[2i], q[2i+1]) of each head, Hugging Face
 * to the halves (q[i], q[i + headDim/2]) (`rotate_half`), with the same
 * frequency 1/θ^(2i/headDim) for pair i. Moving row 2i + h of every head to
 * row h·headDim/2 + i in wq and wk (the `permute` of HF's
 * convert_llama_weights_to_hf.py, i.e. the inverse of llama2.c export.py's
 * `permute_reverse`) makes rotate_half rotate exactly the pairs llama2.c
 * rotates, and q·k is unchanged because q and k are permuted alike.
 */
import { FormatError, UnsupportedError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { parseModelConfig, type LlamaConfig } from './config.js';
import type { ByteSource, FileSystem } from './source.js';

export interface Llama2cConfig {
  readonly dim: number;
  readonly hiddenDim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly vocabSize: number;
  readonly seqLen: number;
  /** The classifier reuses the token embedding (legacy: vocab_size > 0). */
  readonly sharedClassifier: boolean;
  /** 0 for the legacy format, 1 for "ak42" version 1. */
  readonly version: 0 | 1;
}

export interface Llama2cCheckpoint {
  readonly config: Llama2cConfig;
  /** The same model as a Hugging Face Llama config (RMSNorm eps 1e-5 and θ = 10000, as run.c hard-codes). */
  readonly llamaConfig: LlamaConfig;
  /** Hugging Face Llama names → f32 tensors; no `lm_head.weight` when the classifier is shared. */
  readonly tensors: Map<string, Tensor>;
}

const LEGACY_HEADER_BYTES = 7 * 4;
const V1_HEADER_BYTES = 256;
const MAGIC = 0x616b3432; // "ak42" read as a little-endian u32

function parseDims(file: string, view: DataView, at: number, version: 0 | 1): Omit<Llama2cConfig, 'sharedClassifier' | 'version'> & { rawVocab: number } {
  const names = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'];
  const v = names.map((_, i) => view.getInt32(at + i * 4, true));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = v;
  const vocabSize = version === 0 ? Math.abs(rawVocab) : rawVocab;
  names.forEach((name, i) => {
    const value = name === 'vocab_size' ? vocabSize : v[i];
    if (value <= 0) throw new FormatError(file, `header field ${name} is ${v[i]}; this is not a llama2.c checkpoint`);
  });
  if (dim % nHeads !== 0 || (dim / nHeads) % 2 !== 0) {
    throw new FormatError(file, `header dim ${dim} is not n_heads ${nHeads} × an even head size`);
  }
  if (nHeads % nKvHeads !== 0) throw new FormatError(file, `header n_heads ${nHeads} is not a multiple of n_kv_heads ${nKvHeads}`);
  return { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen, rawVocab };
}

async function readConfig(source: ByteSource): Promise<{ config: Llama2cConfig; dataStart: number; size: number }> {
  const file = source.name;
  const size = await source.size();
  if (size < LEGACY_HEADER_BYTES) throw new FormatError(file, `file is truncated: ${size} bytes, shorter than the 28-byte llama2.c header`);
  const head = await source.read(0, Math.min(size, V1_HEADER_BYTES));
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (view.getUint32(0, true) === MAGIC) {
    const version = view.getInt32(4, true);
    if (version !== 1) {
      throw new UnsupportedError(`${file}: llama2.c checkpoint version ${version} is not supported (only the float32 formats, legacy and version 1)`);
    }
    if (size < V1_HEADER_BYTES) throw new FormatError(file, `file is truncated: ${size} bytes, shorter than the 256-byte version 1 header`);
    const { rawVocab: _, ...dims } = parseDims(file, view, 8, 1);
    const config = { ...dims, sharedClassifier: view.getUint8(36) !== 0, version: 1 as const };
    return { config, dataStart: V1_HEADER_BYTES, size };
  }
  const { rawVocab, ...dims } = parseDims(file, view, 0, 0);
  const config = { ...dims, sharedClassifier: rawVocab > 0, version: 0 as const };
  return { config, dataStart: LEGACY_HEADER_BYTES, size };
}

/** Name and shape of each array in file order; `null` names are skipped (RoPE tables run.c recomputes). */
function fileLayout(c: Llama2cConfig): [string | null, number[]][] {
  const headSize = c.dim / c.nHeads;
  const kvDim = c.nKvHeads * headSize;
  const L = c.nLayers;
  const perLayer = (name: string, shape: number[]): [string, number[]] => [name, [L, ...shape]];
  const norms: [string, number[]][] = [perLayer('rms_att', [c.dim]), perLayer('rms_ffn', [c.dim]), ['rms_final', [c.dim]]];
  const embedding: [string, number[]] = ['token_embedding', [c.vocabSize, c.dim]];
  const matrices: [string, number[]][] = [
    perLayer('wq', [c.dim, c.dim]),
    perLayer('wk', [kvDim, c.dim]),
    perLayer('wv', [kvDim, c.dim]),
    perLayer('wo', [c.dim, c.dim]),
  ];
  const ffn: [string, number[]][] = [perLayer('w1', [c.hiddenDim, c.dim]), perLayer('w2', [c.dim, c.hiddenDim]), perLayer('w3', [c.hiddenDim, c.dim])];
  const classifier: [string, number[]][] = c.sharedClassifier ? [] : [['wcls', [c.vocabSize, c.dim]]];
  if (c.version === 1) return [...norms, embedding, ...matrices, ...ffn, ...classifier];
  return [
    embedding,
    norms[0],
    ...matrices,
    norms[1],
    ...ffn,
    norms[2],
    [null, [c.seqLen, headSize / 2]],
    [null, [c.seqLen, headSize / 2]],
    ...classifier,
  ];
}

/**
 * Reorder the rows of each head from llama2.c's interleaved RoPE pairs to
 * Hugging Face's halves: [heads, headDim/2, 2, in] → [heads, 2, headDim/2, in].
 */
export function interleavedToHalves(w: Tensor, heads: number): Tensor {
  const [rows, cols] = w.shape;
  return w
    .reshape([heads, rows / heads / 2, 2, cols])
    .permute([0, 2, 1, 3])
    .reshape([rows, cols]);
}

/** Read a llama2.c checkpoint into Hugging Face Llama tensors. */
export async function readLlama2cCheckpoint(source: ByteSource): Promise<Llama2cCheckpoint> {
  const file = source.name;
  const { config: c, dataStart, size } = await readConfig(source);
  const layout = fileLayout(c);
  const floats = layout.reduce((n, [, shape]) => n + shape.reduce((a, b) => a * b, 1), 0);
  const expected = dataStart + floats * 4;
  if (size < expected) {
    throw new FormatError(
      file,
      `file is truncated: the header (dim ${c.dim}, hidden_dim ${c.hiddenDim}, n_layers ${c.nLayers}, n_heads ${c.nHeads}, ` +
        `n_kv_heads ${c.nKvHeads}, vocab_size ${c.vocabSize}, seq_len ${c.seqLen}, ${c.sharedClassifier ? 'shared' : 'separate'} classifier) ` +
        `needs ${expected} bytes but the file has ${size}`,
    );
  }
  if (size > expected) {
    throw new FormatError(file, `file has ${size - expected} bytes after the last weight (expected ${expected} bytes for its header); it is not a llama2.c float32 checkpoint of these dimensions`);
  }
  const arrays = new Map<string, Tensor>();
  let offset = dataStart;
  for (const [name, shape] of layout) {
    const count = shape.reduce((a, b) => a * b, 1);
    if (name !== null) {
      const data = new Float32Array(count);
      await source.read(offset, count * 4, new Uint8Array(data.buffer));
      arrays.set(name, new Tensor('f32', shape, data));
    }
    offset += count * 4;
  }
  const get = (name: string): Tensor => arrays.get(name) as Tensor;
  const tensors = new Map<string, Tensor>();
  tensors.set('model.embed_tokens.weight', get('token_embedding'));
  for (let i = 0; i < c.nLayers; i++) {
    const p = `model.layers.${i}`;
    tensors.set(`${p}.input_layernorm.weight`, get('rms_att').at(i));
    tensors.set(`${p}.self_attn.q_proj.weight`, interleavedToHalves(get('wq').at(i), c.nHeads));
    tensors.set(`${p}.self_attn.k_proj.weight`, interleavedToHalves(get('wk').at(i), c.nKvHeads));
    tensors.set(`${p}.self_attn.v_proj.weight`, get('wv').at(i));
    tensors.set(`${p}.self_attn.o_proj.weight`, get('wo').at(i));
    tensors.set(`${p}.post_attention_layernorm.weight`, get('rms_ffn').at(i));
    tensors.set(`${p}.mlp.gate_proj.weight`, get('w1').at(i));
    tensors.set(`${p}.mlp.down_proj.weight`, get('w2').at(i));
    tensors.set(`${p}.mlp.up_proj.weight`, get('w3').at(i));
  }
  tensors.set('model.norm.weight', get('rms_final'));
  if (!c.sharedClassifier) tensors.set('lm_head.weight', get('wcls'));
  return { config: c, llamaConfig: llama2cToLlamaConfig(c, file), tensors };
}

/** The Hugging Face config.json that describes the same network as run.c. */
export function llama2cToLlamaConfig(c: Llama2cConfig, file = 'llama2.c checkpoint'): LlamaConfig {
  return parseModelConfig(
    {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      vocab_size: c.vocabSize,
      hidden_size: c.dim,
      intermediate_size: c.hiddenDim,
      num_hidden_layers: c.nLayers,
      num_attention_heads: c.nHeads,
      num_key_value_heads: c.nKvHeads,
      head_dim: c.dim / c.nHeads,
      max_position_embeddings: c.seqLen,
      hidden_act: 'silu',
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: c.sharedClassifier,
      // run.c's sentencepiece ids: 0 <unk>, 1 <s>, 2 </s>.
      bos_token_id: 1,
      eos_token_id: 2,
      torch_dtype: 'float32',
    },
    file,
  ) as LlamaConfig;
}

export interface Llama2cTokenizer {
  readonly maxTokenLength: number;
  /** Each token's bytes as stored (e.g. "<0x0A>" for byte tokens, "\n<s>\n" for BOS). */
  readonly pieces: readonly Uint8Array[];
  /** The pieces decoded as UTF-8 (invalid sequences become U+FFFD). */
  readonly vocab: readonly string[];
  /** Merge priority: run.c merges the adjacent pair whose merged token scores highest. */
  readonly scores: Float32Array;
}

/**
 * Parse a llama2.c tokenizer.bin: int32 max_token_length, then per token
 * float32 score, int32 byte length, the bytes. The file does not store the
 * vocabulary size; pass the model's to check it, else every record is read.
 */
export function parseLlama2cTokenizer(bytes: Uint8Array, file = 'tokenizer.bin', vocabSize?: number): Llama2cTokenizer {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4) throw new FormatError(file, `file is truncated: ${bytes.length} bytes, shorter than the 4-byte max_token_length`);
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength <= 0) throw new FormatError(file, `max_token_length is ${maxTokenLength}; this is not a llama2.c tokenizer`);
  const pieces: Uint8Array[] = [];
  const scores: number[] = [];
  const decoder = new TextDecoder();
  let offset = 4;
  while (offset < bytes.length && (vocabSize === undefined || pieces.length < vocabSize)) {
    const id = pieces.length;
    if (offset + 8 > bytes.length) throw new FormatError(file, `file is truncated inside the record of token ${id} (at byte ${offset})`);
    const score = view.getFloat32(offset, true);
    const length = view.getInt32(offset + 4, true);
    if (length < 0 || length > maxTokenLength) {
      throw new FormatError(file, `token ${id} has length ${length}, outside 0..max_token_length (${maxTokenLength})`);
    }
    offset += 8;
    if (offset + length > bytes.length) throw new FormatError(file, `file is truncated inside the bytes of token ${id}`);
    pieces.push(bytes.slice(offset, offset + length));
    scores.push(score);
    offset += length;
  }
  if (vocabSize !== undefined && pieces.length < vocabSize) {
    throw new FormatError(file, `holds ${pieces.length} tokens but the model's vocab_size is ${vocabSize}`);
  }
  if (offset !== bytes.length) throw new FormatError(file, `${bytes.length - offset} bytes follow the last of ${pieces.length} tokens`);
  return { maxTokenLength, pieces, vocab: pieces.map((p) => decoder.decode(p)), scores: Float32Array.from(scores) };
}

export async function readLlama2cTokenizer(fs: FileSystem, path: string, vocabSize?: number): Promise<Llama2cTokenizer> {
  return parseLlama2cTokenizer(await fs.readBytes(path), path, vocabSize);
}
