/**
 * A small WebAssembly binary writer, enough for the matmul kernels in
 * gemm-module.ts: one imported memory, exported functions, structured control
 * flow, i32 / f32 arithmetic and the 128-bit SIMD instructions the kernels use.
 *
 * Instructions are written in the folded form of the text format, operands
 * first: `i32.add(local(x), i32.const(4))` emits `local.get x; i32.const 4;
 * i32.add`, so kernel code reads like WAT. Byte values are those of the
 * WebAssembly core specification 2.0, section 5 (binary format), the SIMD
 * proposal's opcodes (prefix 0xfd) and the relaxed SIMD proposal's
 * (`f32x4.relaxed_madd` = 0xfd 0x105).
 *
 * Generating the module in TypeScript needs no toolchain at build or run time
 * and works the same in Node and in browsers.
 */

/**
 * A run of instruction bytes, as nested arrays: each instruction wraps its
 * operands without copying them, and the tree is flattened once per function.
 */
export type Code = readonly (number | Code)[];

/** The bytes of a code tree, in order. */
function flatten(code: Code, out: number[] = []): number[] {
  for (const item of code) {
    if (typeof item === 'number') out.push(item);
    else flatten(item, out);
  }
  return out;
}

/** Value types (spec 5.3.1). */
export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;
export type ValueType = typeof I32 | typeof F32 | typeof V128;

/** Unsigned LEB128 (spec 5.2.2). */
function uleb(value: number): number[] {
  const out: number[] = [];
  let rest = value >>> 0;
  do {
    const byte = rest & 0x7f;
    rest >>>= 7;
    out.push(rest === 0 ? byte : byte | 0x80);
  } while (rest !== 0);
  return out;
}

/** Signed LEB128, for i32.const immediates. */
function sleb(value: number): number[] {
  const out: number[] = [];
  let rest = value | 0;
  for (;;) {
    const byte = rest & 0x7f;
    rest >>= 7;
    const done = (rest === 0 && (byte & 0x40) === 0) || (rest === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function utf8(name: string): number[] {
  const bytes = [...new TextEncoder().encode(name)];
  return [...uleb(bytes.length), ...bytes];
}

function vector(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

/** Concatenates instruction runs. */
export function seq(...codes: Code[]): Code {
  return codes;
}

// Memory instructions take (align as log2 bytes, offset); the offset is a
// constant added to the address operand, which the kernels use to address the
// rows and vectors of a tile from one base pointer.
function memarg(alignLog2: number, offset: number): number[] {
  return [...uleb(alignLog2), ...uleb(offset)];
}

const SIMD = 0xfd;
function simd(opcode: number): number[] {
  return [SIMD, ...uleb(opcode)];
}

/** Locals and parameters are referred to by index. */
export const local = (index: number): Code => [0x20, ...uleb(index)];
export const set = (index: number, value: Code): Code => [value, 0x21, ...uleb(index)];

export const i32 = {
  const: (value: number): Code => [0x41, ...sleb(value)],
  add: (a: Code, b: Code): Code => [a, b, 0x6a],
  sub: (a: Code, b: Code): Code => [a, b, 0x6b],
  mul: (a: Code, b: Code): Code => [a, b, 0x6c],
  and: (a: Code, b: Code): Code => [a, b, 0x71],
  shl: (a: Code, b: Code): Code => [a, b, 0x74],
  shrU: (a: Code, b: Code): Code => [a, b, 0x76],
  eqz: (a: Code): Code => [a, 0x45],
  ltU: (a: Code, b: Code): Code => [a, b, 0x49],
  geU: (a: Code, b: Code): Code => [a, b, 0x4f],
  /** `b` if `condition` is 0, else `a` (select). */
  select: (a: Code, b: Code, condition: Code): Code => [a, b, condition, 0x1b],
};

export const i32Memory = {
  load: (address: Code, offset = 0): Code => [address, 0x28, ...memarg(2, offset)],
  store: (address: Code, value: Code, offset = 0): Code => [address, value, 0x36, ...memarg(2, offset)],
};

export const f32 = {
  const: (value: number): Code => {
    const bytes = new Uint8Array(new Float32Array([value]).buffer);
    return [0x43, ...bytes];
  },
  load: (address: Code, offset = 0): Code => [address, 0x2a, ...memarg(2, offset)],
  store: (address: Code, value: Code, offset = 0): Code => [address, value, 0x38, ...memarg(2, offset)],
  add: (a: Code, b: Code): Code => [a, b, 0x92],
  mul: (a: Code, b: Code): Code => [a, b, 0x94],
};

export const v128 = {
  /** All-zero vector (v128.const). */
  zero: (): Code => [...simd(0x0c), ...new Array<number>(16).fill(0)],
  load: (address: Code, offset = 0): Code => [address, ...simd(0x00), ...memarg(4, offset)],
  /** One f32 from memory into every lane (v128.load32_splat). */
  load32Splat: (address: Code, offset = 0): Code => [address, ...simd(0x09), ...memarg(2, offset)],
  store: (address: Code, value: Code, offset = 0): Code => [address, value, ...simd(0x0b), ...memarg(4, offset)],
  /** Four u16 from memory, zero-extended to four i32 lanes (v128.load16x4_u). */
  load16x4U: (address: Code, offset = 0): Code => [address, ...simd(0x04), ...memarg(3, offset)],
  /** Eight i8 from memory, sign-extended to eight i16 lanes (v128.load8x8_s). */
  load8x8S: (address: Code, offset = 0): Code => [address, ...simd(0x01), ...memarg(3, offset)],
  /** Four bytes from memory into the low lane, the rest zero (v128.load32_zero). */
  load32Zero: (address: Code, offset = 0): Code => [address, ...simd(0x5c), ...memarg(2, offset)],
  /** i8x16.shuffle of the 32 bytes of a and b by 16 lane indices. */
  shuffle: (a: Code, b: Code, lanes: readonly number[]): Code => [a, b, ...simd(0x0d), ...lanes],
};

export const f32x4 = {
  splat: (value: Code): Code => [value, ...simd(0x13)],
  extractLane: (vector: Code, lane: number): Code => [vector, ...simd(0x1f), lane],
  add: (a: Code, b: Code): Code => [a, b, ...simd(0xe4)],
  mul: (a: Code, b: Code): Code => [a, b, ...simd(0xe6)],
  /** a · b + c, with or without the intermediate rounding, as the engine chooses (relaxed SIMD). */
  relaxedMadd: (a: Code, b: Code, c: Code): Code => [a, b, c, ...simd(0x105)],
};

export const i16x8 = {
  /** The low eight i8 lanes sign-extended to i16. */
  extendLowI8x16: (a: Code): Code => [a, ...simd(0x87)],
};

export const i32x4 = {
  /** The low four i16 lanes sign-extended to i32. */
  extendLowI16x8: (a: Code): Code => [a, ...simd(0xa7)],
  /** Each lane shifted left by `bits`. */
  shl: (a: Code, bits: Code): Code => [a, bits, ...simd(0xab)],
  /** Each i32 lane converted to the nearest f32 (f32x4.convert_i32x4_s). */
  toF32x4: (a: Code): Code => [a, ...simd(0xfa)],
  extractLane: (vector: Code, lane: number): Code => [vector, ...simd(0x1b), lane],
  add: (a: Code, b: Code): Code => [a, b, ...simd(0xae)],
  /** Products of the eight i16 lanes of a and b, summed in pairs into four i32 lanes (exact). */
  dotI16x8: (a: Code, b: Code): Code => [a, b, ...simd(0xba)],
};

// Structured control flow (spec 5.4.1). A block type of 0x40 means no result.
export const block = (...body: Code[]): Code => [0x02, 0x40, body, 0x0b];
export const loop = (...body: Code[]): Code => [0x03, 0x40, body, 0x0b];
export const ifThen = (condition: Code, then: Code, otherwise?: Code): Code =>
  otherwise === undefined
    ? [condition, 0x04, 0x40, then, 0x0b]
    : [condition, 0x04, 0x40, then, 0x05, otherwise, 0x0b];
export const br = (depth: number): Code => [0x0c, ...uleb(depth)];
export const brIf = (depth: number, condition: Code): Code => [condition, 0x0d, ...uleb(depth)];
export const call = (fn: number, ...args: Code[]): Code => [args, 0x10, ...uleb(fn)];
export const drop = (value: Code): Code => [value, 0x1a];

/**
 * `for (i = from; i < to; i += step) body` on unsigned i32s. The body runs
 * inside a block and a loop, so a `br` in it must count those two levels.
 */
export function forRange(i: number, from: Code, to: Code, step: Code, ...body: Code[]): Code {
  return seq(
    set(i, from),
    block(loop(brIf(1, i32.geU(local(i), to)), ...body, set(i, i32.add(local(i), step)), br(0))),
  );
}

/** A function: its signature, its extra locals and its body; locals are numbered after the parameters. */
export interface FunctionSpec {
  readonly name: string;
  readonly params: readonly ValueType[];
  readonly results: readonly ValueType[];
  readonly locals: readonly ValueType[];
  readonly body: Code;
  /** Whether JavaScript can call it. */
  readonly exported: boolean;
}

/** Hands out local indices by name while a function body is written. */
export class Locals {
  private readonly types: ValueType[] = [];
  private readonly paramCount: number;

  constructor(readonly params: readonly ValueType[]) {
    this.paramCount = params.length;
  }

  /** A new local of the given type; its index. */
  add(type: ValueType): number {
    this.types.push(type);
    return this.paramCount + this.types.length - 1;
  }

  declared(): readonly ValueType[] {
    return this.types;
  }
}

export interface ModuleSpec {
  /** The memory is imported as env.memory, so every thread's instance shares the one JavaScript creates. */
  readonly memory: { readonly initialPages: number; readonly maximumPages: number; readonly shared: boolean };
  readonly functions: readonly FunctionSpec[];
}

/** The module's bytes (spec 5.5). Functions are numbered in the order given. */
export function encodeModule(spec: ModuleSpec): Uint8Array<ArrayBuffer> {
  const signatures: string[] = [];
  const typeOf = spec.functions.map((fn) => {
    const key = `${fn.params.join(',')}->${fn.results.join(',')}`;
    if (!signatures.includes(key)) signatures.push(key);
    return signatures.indexOf(key);
  });
  const types = signatures.map((key) => {
    const [params, results] = key.split('->').map((list) => (list === '' ? [] : list.split(',').map(Number)));
    return [0x60, ...uleb(params.length), ...params, ...uleb(results.length), ...results];
  });
  const { initialPages, maximumPages, shared } = spec.memory;
  // Limits flag 0x03: shared with a maximum (threads proposal); 0x01: a maximum.
  const memoryImport = [...utf8('env'), ...utf8('memory'), 0x02, shared ? 0x03 : 0x01, ...uleb(initialPages), ...uleb(maximumPages)];
  const exports = spec.functions.flatMap((fn, index) => (fn.exported ? [[...utf8(fn.name), 0x00, ...uleb(index)]] : []));
  const bodies = spec.functions.map((fn) => {
    // Locals are declared as runs of one type.
    const runs: number[][] = [];
    for (const type of fn.locals) {
      const last = runs[runs.length - 1];
      if (last !== undefined && last[1] === type) last[0]++;
      else runs.push([1, type]);
    }
    const body = [...vector(runs.map(([count, type]) => [...uleb(count), type])), ...flatten(fn.body), 0x0b];
    return [...uleb(body.length), ...body];
  });
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector(types)),
    ...section(2, vector([memoryImport])),
    ...section(3, vector(typeOf.map((t) => uleb(t)))),
    ...section(7, vector(exports)),
    ...section(10, vector(bodies)),
  ]);
}
