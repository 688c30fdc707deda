/**
 * The memory a checkpoint takes once loaded, and at the peak of loading it,
 * predicted from its safetensors header(s) alone (no tensor data is read).
 *
 * `Weights` reads each tensor when a layer asks for it (nn/weights.ts): a
 * tensor stored as it will be held (f32 into f32, bf16 into bf16) is read
 * straight into its final storage; one that is converted is read a block at
 * a time into its converted storage. So loading holds the model as it will
 * be kept plus one block (1 MiB of f32), a 0.5 MiB widening buffer per file
 * read from 16 bits and, for GPT-2's transposed Conv1D weights, one f32
 * buffer as large as the largest of them: the peak is the resident total
 * plus those buffers.
 *
 * How a tensor is held mirrors the model code: the weight matrices of linear
 * layers (`Weights.matrix`, GPT-2's Conv1D and its token table) follow
 * linearDtype; every other float tensor (embedding tables of the other
 * families, norms, biases, relative-position tables) is widened to f32;
 * integer tensors are held as i32. Buffers no model reads (GPT-2's causal-mask
 * `attn.bias`, BERT's `position_ids`) are never read, so they cost nothing.
 */
import { SAFETENSORS_DTYPE_BYTES, WIDEN_CHUNK, type TensorInfo } from './safetensors.js';

export type LoadDtype = 'f32' | 'bf16' | 'int8';

export const LOAD_DTYPES: readonly LoadDtype[] = ['f32', 'bf16', 'int8'];

export interface LoadMemory {
  /** Bytes of the loaded model's tensors as held under this linearDtype. */
  readonly resident: number;
  /** Conversion buffers that last the load (a 1 MiB block, 0.5 MiB per 16-bit file, GPT-2's transposing buffer); 0 when every tensor is read into its final storage. */
  readonly transient: number;
  /** The tensor that sizes the largest buffer (GPT-2's largest Conv1D weight when transposed), else the first converted; null when nothing is converted. */
  readonly transientTensor: string | null;
  /** resident + transient: the weights' share of the process's peak while loading. */
  readonly peak: number;
}

/** Layers whose 2-D `<name>.weight` is read with `Weights.get` (held f32), not as a linear matrix. */
const F32_TABLES = new Set([
  'word_embeddings', 'position_embeddings', 'token_type_embeddings', 'embed_tokens', 'embed_positions', 'shared', 'wpe',
  'relative_attention_bias', 'lm_head', 'decoder', 'vocab_projector', 'qkv_proj', 'gate_up_proj', 'src_embed', 'tgt_embed', 'generator',
]);

/** GPT-2 holds its token table (and an untied head) as a matrix: it is the head. */
const GPT2_MATRICES = new Set(['wte', 'lm_head']);

/** GPT-2's Conv1D weights are stored [in, out] and transposed to [out, in] when converted. */
const CONV1D = /(^|\.)(c_attn|c_proj|c_fc)\.weight$/;

/** Buffers saved beside the weights that no model reads. */
const NEVER_READ = /(^|\.)(attn\.bias|attn\.masked_bias|position_ids)$/;

const isFloat = (dtype: string): boolean => dtype.startsWith('F') || dtype === 'BF16';

const sizeOf = (info: TensorInfo): number => info.shape.reduce((a, b) => a * b, 1);

/** How a tensor is kept: a linear matrix (in linearDtype), f32, i32, or not at all. */
type Held = 'matrix' | 'f32' | 'i32' | 'unread';

function heldAs(info: TensorInfo, modelType: string | null, tied: boolean): Held {
  if (NEVER_READ.test(info.name)) return 'unread';
  // GPT-2 with a tied head uses wte; a stored copy of the head is left unread.
  if (modelType === 'gpt2' && tied && /(^|\.)lm_head\.weight$/.test(info.name)) return 'unread';
  if (!isFloat(info.dtype)) return 'i32';
  if (info.shape.length !== 2 || !info.name.endsWith('.weight')) return 'f32';
  const layer = info.name.slice(0, -'.weight'.length).split('.').pop() ?? '';
  if (modelType === 'gpt2' && GPT2_MATRICES.has(layer)) return 'matrix';
  return F32_TABLES.has(layer) ? 'f32' : 'matrix';
}

function heldBytes(info: TensorInfo, held: Held, dtype: LoadDtype, modelType: string | null): number {
  const count = sizeOf(info);
  if (held === 'unread') return 0;
  if (held !== 'matrix' || dtype === 'f32') return 4 * count;
  if (dtype === 'bf16') return 2 * count;
  // int8: one byte a weight and one f32 scale per output row ([out, in]; Conv1D is stored [in, out]).
  const rows = modelType === 'gpt2' && CONV1D.test(info.name) ? info.shape[1] : info.shape[0];
  return count + 4 * rows;
}

/** A converted tensor is read this many f32 elements at a time (1 MiB) into one buffer (nn/weights.ts). */
export const BLOCK_ELEMENTS = 1 << 18;

/** What loading one tensor needs besides its kept storage (see `Weights`' readerStore). */
interface Conversion {
  /** Elements of the reused f32 block buffer: a flat block, or whole rows for int8 and transposes. */
  readonly block: number;
  /** Read through the file's 16-bit widening buffer. */
  readonly widens: boolean;
  /** Elements of the reused f32 buffer GPT-2's Conv1D is transposed through. */
  readonly transpose: number;
  /** Bytes read whole and decoded (file dtypes other than F32, F16, BF16): garbage once converted. */
  readonly whole: number;
}

const NONE: Conversion = { block: 0, widens: false, transpose: 0, whole: 0 };

function rowBlock(rows: number, cols: number): number {
  return Math.min(rows, Math.max(1, Math.floor(BLOCK_ELEMENTS / Math.max(1, cols)))) * cols;
}

function conversionOf(info: TensorInfo, held: Held, dtype: LoadDtype, modelType: string | null): Conversion {
  if (held === 'unread') return NONE;
  const n = sizeOf(info);
  const target = held === 'matrix' ? dtype : held;
  const stored = info.dtype === 'F32' ? 'f32' : info.dtype === 'BF16' ? 'bf16' : info.dtype === 'I32' ? 'i32' : null;
  const blockwise = info.dtype === 'F32' || info.dtype === 'F16' || info.dtype === 'BF16';
  const widens = info.dtype === 'F16' || info.dtype === 'BF16';
  const conv1d = held === 'matrix' && dtype !== 'f32' && modelType === 'gpt2' && CONV1D.test(info.name);
  if (conv1d && blockwise) return { block: rowBlock(info.shape[0], info.shape[1]), widens, transpose: n, whole: 0 };
  if (stored === target) return NONE;
  if (!blockwise) return { ...NONE, whole: n * SAFETENSORS_DTYPE_BYTES[info.dtype] + 4 * n };
  if (target === 'f32') return { ...NONE, widens };
  if (target === 'bf16') return { ...NONE, block: Math.min(n, BLOCK_ELEMENTS), widens };
  return { ...NONE, block: info.shape.length === 2 ? rowBlock(info.shape[0], info.shape[1]) : Math.min(n, BLOCK_ELEMENTS), widens };
}

/**
 * Resident and peak bytes of loading a checkpoint with each linearDtype:
 * `files` holds each safetensors file's tensors (one list, or one per shard;
 * each file has its own widening buffer); `tieWordEmbeddings` is config.json's
 * (default true, as transformers).
 */
export function predictLoadMemory(
  files: readonly (readonly TensorInfo[])[],
  modelType: string | null,
  { tieWordEmbeddings = true }: { readonly tieWordEmbeddings?: boolean } = {},
): Record<LoadDtype, LoadMemory> {
  const out = {} as Record<LoadDtype, LoadMemory>;
  for (const dtype of LOAD_DTYPES) {
    let resident = 0;
    let block = 0;
    let widenBuffers = 0;
    let whole = 0;
    let transpose = { elements: 0, tensor: null as string | null };
    let converted: string | null = null;
    for (const tensors of files) {
      let widens = false;
      for (const info of tensors) {
        const held = heldAs(info, modelType, tieWordEmbeddings);
        resident += heldBytes(info, held, dtype, modelType);
        const c = conversionOf(info, held, dtype, modelType);
        if (c !== NONE) converted ??= info.name;
        block = Math.max(block, c.block);
        whole = Math.max(whole, c.whole);
        widens ||= c.widens;
        if (c.transpose > transpose.elements) transpose = { elements: c.transpose, tensor: info.name };
      }
      if (widens) widenBuffers++;
    }
    // The block, widening and transposing buffers are reused and last the load; a whole read is dropped after its tensor.
    const transient = 4 * block + 2 * WIDEN_CHUNK * widenBuffers + 4 * transpose.elements + whole;
    out[dtype] = { resident, transient, transientTensor: transpose.tensor ?? converted, peak: resident + transient };
  }
  return out;
}
