/**
 * The memory a checkpoint takes once loaded, and at the peak of loading it,
 * predicted from its safetensors header(s) alone (no tensor data is read).
 *
 * `Weights` reads each tensor when a layer asks for it (nn/weights.ts): a
 * tensor stored as it will be held (f32 into f32, bf16 into bf16) is read
 * straight into its final storage; one that is converted is read a block at
 * a time into its converted storage. So loading holds the model as it will
 * be kept plus one block (≈ 1.5 MB) and, for GPT-2's transposed Conv1D
 * weights, one f32 buffer as large as the largest of them: the peak is the
 * resident total plus that transient.
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
  /** The largest extra memory while one tensor is converted (0 when every tensor is read into its final storage). */
  readonly transient: number;
  /** The tensor whose conversion needs `transient`; null when nothing is converted. */
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

/** How a tensor is kept: a linear matrix (in linearDtype), f32, i32, or not at all. */
type Held = 'matrix' | 'f32' | 'i32' | 'unread';

function heldAs(info: TensorInfo, modelType: string | null): Held {
  if (NEVER_READ.test(info.name)) return 'unread';
  if (!isFloat(info.dtype)) return 'i32';
  if (info.shape.length !== 2 || !info.name.endsWith('.weight')) return 'f32';
  const layer = info.name.slice(0, -'.weight'.length).split('.').pop() ?? '';
  if (modelType === 'gpt2' && GPT2_MATRICES.has(layer)) return 'matrix';
  return F32_TABLES.has(layer) ? 'f32' : 'matrix';
}

function heldBytes(info: TensorInfo, held: Held, dtype: LoadDtype, modelType: string | null): number {
  const count = info.shape.reduce((a, b) => a * b, 1);
  if (held === 'unread') return 0;
  if (held !== 'matrix' || dtype === 'f32') return 4 * count;
  if (dtype === 'bf16') return 2 * count;
  // int8: one byte a weight and one f32 scale per output row ([out, in]; Conv1D is stored [in, out]).
  const rows = modelType === 'gpt2' && CONV1D.test(info.name) ? info.shape[1] : info.shape[0];
  return count + 4 * rows;
}

/** A converted tensor is read this many f32 elements at a time (1 MiB) into one buffer (nn/weights.ts). */
export const BLOCK_ELEMENTS = 1 << 18;

/** Memory of one block conversion: the f32 block and the 16-bit buffer widening reads through (WIDEN_CHUNK). */
const BLOCK_BYTES = 4 * BLOCK_ELEMENTS + 2 * WIDEN_CHUNK;

/**
 * What is alive besides the loaded tensors while one is converted: nothing
 * when it is read straight into its storage; one block when F32, F16 or BF16
 * is converted; the whole read and its f32 decoding for the other file
 * dtypes (F64, F8, integers), which `getSync` reads whole.
 */
function blockBytes(info: TensorInfo, held: Held, dtype: LoadDtype): number {
  if (held === 'unread') return 0;
  const count = info.shape.reduce((a, b) => a * b, 1);
  const target = held === 'matrix' ? dtype : held;
  const stored = info.dtype === 'F32' ? 'f32' : info.dtype === 'BF16' ? 'bf16' : info.dtype === 'I32' ? 'i32' : null;
  if (stored === target) return 0;
  if (info.dtype === 'F32' || info.dtype === 'F16' || info.dtype === 'BF16') return Math.min(BLOCK_BYTES, 4 * count + 2 * count);
  return count * SAFETENSORS_DTYPE_BYTES[info.dtype] + 4 * count;
}

/** GPT-2's Conv1D weights converted to bf16 or int8 go through one f32 transposing buffer, as large as the largest of them; it lasts the load. */
function transposeBytes(info: TensorInfo, held: Held, dtype: LoadDtype, modelType: string | null): number {
  if (held !== 'matrix' || dtype === 'f32' || modelType !== 'gpt2' || !CONV1D.test(info.name)) return 0;
  return 4 * info.shape.reduce((a, b) => a * b, 1);
}

/** Resident and peak bytes of loading these tensors with each linearDtype. */
export function predictLoadMemory(tensors: Iterable<TensorInfo>, modelType: string | null): Record<LoadDtype, LoadMemory> {
  const list = [...tensors];
  const out = {} as Record<LoadDtype, LoadMemory>;
  for (const dtype of LOAD_DTYPES) {
    let resident = 0;
    let block = { bytes: 0, tensor: null as string | null };
    let transpose = { bytes: 0, tensor: null as string | null };
    for (const info of list) {
      const held = heldAs(info, modelType);
      resident += heldBytes(info, held, dtype, modelType);
      const b = blockBytes(info, held, dtype);
      if (b > block.bytes) block = { bytes: b, tensor: info.name };
      const t = transposeBytes(info, held, dtype, modelType);
      if (t > transpose.bytes) transpose = { bytes: t, tensor: info.name };
    }
    const transient = block.bytes + transpose.bytes;
    out[dtype] = { resident, transient, transientTensor: transpose.tensor ?? block.tensor, peak: resident + transient };
  }
  return out;
}

