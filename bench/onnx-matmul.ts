/**
 * A one-node ONNX graph, `C = MatMul(A, B)`, written as protobuf bytes by
 * hand, so the bench can time onnxruntime's own GEMM on the same shapes as
 * glassformer's without a model file or a protobuf package. Field numbers are
 * those of onnx/onnx.proto (ModelProto, GraphProto, NodeProto, ValueInfoProto,
 * TypeProto, TensorShapeProto, TensorProto).
 *
 * B is an initializer (a weight, as in a real model), so onnxruntime may
 * pre-pack it once when the session is created: its best case.
 */

/** Base-128 varint of a non-negative integer below 2^53. */
function varint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

/** Wire type 0 (varint) field. */
function intField(field: number, value: number): Uint8Array {
  return Uint8Array.from([...varint(field * 8), ...varint(value)]);
}

/** Wire type 2 (length-delimited) field: a string, bytes or a nested message. */
function bytesField(field: number, payload: Uint8Array): Uint8Array {
  const head = [...varint(field * 8 + 2), ...varint(payload.length)];
  const out = new Uint8Array(head.length + payload.length);
  out.set(head);
  out.set(payload, head.length);
  return out;
}

const stringField = (field: number, text: string): Uint8Array => bytesField(field, new TextEncoder().encode(text));

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const FLOAT = 1; // TensorProto.DataType.FLOAT

/** ValueInfoProto: a name and a float tensor type of fixed shape. */
function valueInfo(name: string, shape: number[]): Uint8Array {
  const dims = shape.map((d) => bytesField(1, intField(1, d))); // TensorShapeProto.dim { dim_value }
  const tensorType = concat([intField(1, FLOAT), bytesField(2, concat(dims))]);
  return concat([stringField(1, name), bytesField(2, bytesField(1, tensorType))]);
}

/** TensorProto with raw little-endian float data. */
function initializer(name: string, shape: number[], data: Float32Array): Uint8Array {
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return concat([...shape.map((d) => intField(1, d)), intField(2, FLOAT), stringField(8, name), bytesField(9, raw)]);
}

/** The model bytes for C[m, n] = A[m, k] · B[k, n], B (row-major [k, n]) baked in. */
export function matmulModel(m: number, n: number, k: number, b: Float32Array): Uint8Array {
  if (b.length !== k * n) throw new RangeError(`matmulModel: B needs ${k}×${n} = ${k * n} floats, got ${b.length}`);
  const node = concat([stringField(1, 'A'), stringField(1, 'B'), stringField(2, 'C'), stringField(4, 'MatMul')]);
  const graph = concat([
    bytesField(1, node),
    stringField(2, 'matmul'),
    bytesField(5, initializer('B', [k, n], b)),
    bytesField(11, valueInfo('A', [m, k])),
    bytesField(12, valueInfo('C', [m, n])),
  ]);
  // ir_version 8, opset 13 (MatMul has not changed since opset 13).
  const opset = concat([stringField(1, ''), intField(2, 13)]);
  return concat([intField(1, 8), bytesField(8, opset), bytesField(7, graph)]);
}
