/**
 * The WebAssembly functions of the SIMD matmul, written with emit.ts. The
 * loop nest that calls them (kernel.ts, driver.ts) is TypeScript; what is here
 * is the part that runs per element: packing, the register-tile
 * microkernel, the products for a few rows (decode) and the FMA-rate probe.
 *
 * Everything addresses the one linear memory in bytes. Matrices are row-major
 * f32; a "panel" is the packed order the microkernel reads (Goto and van de
 * Geijn, "Anatomy of High-Performance Matrix Multiplication", ACM TOMS 2008):
 *
 *   A panel [kc][MR]: MR rows of A interleaved, one column after the other;
 *   B panel [kc][NR]: NR columns of B, one row after the other.
 *
 * Panels are zero-padded to whole tiles, so the microkernel never branches on
 * edges; a partial tile of C goes through a scratch tile.
 */
import {
  call, type Code, drop, encodeModule, F32, f32, f32x4, forRange, type FunctionSpec, I32, i16x8, i32, i32Memory, i32x4, ifThen, local,
  Locals, seq, set, V128, v128, type ValueType,
} from './emit.js';

/** Shape of the register tile and how the module is built. */
export interface GemmModuleOptions {
  /** Rows of the register tile (MR). */
  readonly mr: number;
  /** f32x4 vectors across the tile (NR = 4·nv). */
  readonly nv: number;
  /** Use `f32x4.relaxed_madd` (one fused or unfused multiply-add) instead of `f32x4.mul` + `f32x4.add`. */
  readonly relaxed: boolean;
  readonly maximumPages: number;
}

/**
 * The register tile: 8 columns (2 vectors) by 6 rows with relaxed_madd (12
 * accumulators + 2 vectors of B + 1 broadcast of A = 15 of the 16 xmm
 * registers V8 allocates), by 5 rows with mul + add, whose product needs one
 * more register: at 6 rows that variant spilled accumulators and ran at 60%
 * of its 5-row speed (see docs/performance.md).
 */
export function tileFor(relaxed: boolean): { readonly mr: number; readonly nv: number } {
  return { mr: relaxed ? 6 : 5, nv: 2 };
}

/**
 * Registers for a few-row product with B as [n, k]: `rows` rows of A against
 * `group` rows of B at a time, m·group accumulators (at most 12 with the A
 * vectors, so V8's 16 xmm registers hold them).
 */
export const GEMV_NK_GROUP = [0, 8, 4, 3, 2] as const;
/** Vectors of C per strip for a few-row product with B as [k, n]: m·nv accumulators. */
export const GEMV_KN_VECTORS = [0, 8, 4, 3, 2] as const;

const FLOAT = 4;
const VECTOR = 16;

/** a · b + c, as relaxed_madd or as a separate multiply and add. */
function madd(relaxed: boolean, a: Code, b: Code, c: Code): Code {
  return relaxed ? f32x4.relaxedMadd(a, b, c) : f32x4.add(c, f32x4.mul(a, b));
}

function fn(name: string, params: ValueType[], results: ValueType[], exported: boolean,
  write: (locals: Locals) => Code): FunctionSpec {
  const locals = new Locals(params);
  const body = write(locals);
  return { name, params, results, locals: locals.declared(), body, exported };
}

const inc = (x: number, by: Code): Code => set(x, i32.add(local(x), by));
const imm = i32.const;

/**
 * microkernel(kc, ap, bp, cp, ldc, accumulate): C[MR × NR] (+)= A panel · B panel.
 * ldc is C's row stride in bytes; accumulate ≠ 0 adds to C, else overwrites it.
 * MR·NV accumulators, NV vectors of B and one broadcast of A per step of k.
 */
function microkernel(o: GemmModuleOptions): FunctionSpec {
  const { mr, nv } = o;
  const nr = 4 * nv;
  return fn('microkernel', [I32, I32, I32, I32, I32, I32], [], false, (l) => {
    const [kc, ap, bp, cp, ldc, accumulate] = [0, 1, 2, 3, 4, 5];
    const acc = Array.from({ length: mr * nv }, () => l.add(V128));
    const bv = Array.from({ length: nv }, () => l.add(V128));
    const av = l.add(V128);
    const p = l.add(I32);
    // One step of k. The loop is not unrolled: V8's TurboFan schedules the
    // loads of an unrolled body ahead of its multiply-adds and then spills the
    // accumulators to the stack (measured: 6×8 unrolled 4 times ran at a third
    // of the speed of the plain loop, which keeps all 15 vectors in registers).
    const step = seq(
      ...bv.map((b, j) => set(b, v128.load(local(bp), 4 * j * FLOAT))),
      ...Array.from({ length: mr }, (_, i) => seq(
        set(av, v128.load32Splat(local(ap), i * FLOAT)),
        ...bv.map((b, j) => set(acc[i * nv + j], madd(o.relaxed, local(av), local(b), local(acc[i * nv + j])))),
      )),
    );
    const storeRows = (add: boolean): Code => seq(
      ...Array.from({ length: mr }, (_, i) => seq(
        ...Array.from({ length: nv }, (_, j) => v128.store(local(cp),
          add ? f32x4.add(v128.load(local(cp), j * VECTOR), local(acc[i * nv + j])) : local(acc[i * nv + j]),
          j * VECTOR)),
        inc(cp, local(ldc)),
      )),
    );
    return seq(
      ...acc.map((x) => set(x, v128.zero())),
      forRange(p, imm(0), local(kc), imm(1), step, inc(ap, imm(mr * FLOAT)), inc(bp, imm(nr * FLOAT))),
      ifThen(local(accumulate), storeRows(true), storeRows(false)),
    );
  });
}

/**
 * packA(src, lda, mc, kc, dst): A[mc × kc] (row stride lda bytes) into
 * ⌈mc / MR⌉ panels [kc][MR], rows past mc zero.
 */
function packA(o: GemmModuleOptions): FunctionSpec {
  const { mr } = o;
  return fn('packA', [I32, I32, I32, I32, I32], [], true, (l) => {
    const [src, lda, mc, kc, dst] = [0, 1, 2, 3, 4];
    const [ip, ii, p, row, out] = [l.add(I32), l.add(I32), l.add(I32), l.add(I32), l.add(I32)];
    return forRange(ip, imm(0), local(mc), imm(mr),
      forRange(ii, imm(0), imm(mr), imm(1),
        // out walks the panel's column for row ii: stride MR floats.
        set(out, i32.add(local(dst), i32.shl(i32.add(i32.mul(local(ip), local(kc)), local(ii)), imm(2)))),
        set(row, i32.add(local(src), i32.mul(i32.add(local(ip), local(ii)), local(lda)))),
        ifThen(i32.ltU(i32.add(local(ip), local(ii)), local(mc)),
          forRange(p, imm(0), local(kc), imm(1),
            f32.store(local(out), f32.load(i32.add(local(row), i32.shl(local(p), imm(2))))),
            inc(out, imm(mr * FLOAT))),
          forRange(p, imm(0), local(kc), imm(1),
            f32.store(local(out), f32.const(0)),
            inc(out, imm(mr * FLOAT))))));
  });
}

/**
 * packB(src, rowStep, colStep, kc, nc, dst): B[kc × nc], element (p, j) at
 * src + p·rowStep + j·colStep bytes, into ⌈nc / NR⌉ panels [kc][NR], columns
 * past nc zero. B as [k, n] has colStep 4: each row of a panel is NR
 * contiguous floats, copied as vectors. B as [n, k] (an nn.Linear weight)
 * has rowStep 4: a panel is NR weight rows, read four floats at a time and
 * turned into panel rows by 4×4 transposes in registers.
 */
function packB(o: GemmModuleOptions): FunctionSpec {
  const nr = 4 * o.nv;
  return fn('packB', [I32, I32, I32, I32, I32, I32], [], true, (l) => {
    const [src, rowStep, colStep, kc, nc, dst] = [0, 1, 2, 3, 4, 5];
    const [jp, jj, p, from, out, kc4] = [l.add(I32), l.add(I32), l.add(I32), l.add(I32), l.add(I32), l.add(I32)];
    const rows = Array.from({ length: nr }, () => l.add(I32));
    const v = Array.from({ length: 4 }, () => l.add(V128));
    const t = Array.from({ length: 4 }, () => l.add(V128));
    const wholePanel = i32.ltU(i32.add(local(jp), imm(nr - 1)), local(nc));
    const panelStart = set(out, i32.add(local(dst), i32.shl(i32.mul(local(jp), local(kc)), imm(2))));
    const vectorRows = seq(
      panelStart,
      set(from, i32.add(local(src), i32.mul(local(jp), local(colStep)))),
      forRange(p, imm(0), local(kc), imm(1),
        ...Array.from({ length: o.nv }, (_, j) => v128.store(local(out), v128.load(local(from), j * VECTOR), j * VECTOR)),
        inc(from, local(rowStep)), inc(out, imm(nr * FLOAT))));
    // Columns jj of the panel for p from `first` on, one float at a time (zero past nc).
    const byColumn = (first: Code): Code => forRange(jj, imm(0), imm(nr), imm(1),
      set(out, i32.add(local(dst), i32.shl(i32.add(i32.mul(local(jp), local(kc)), i32.add(i32.mul(first, imm(nr)), local(jj))), imm(2)))),
      set(from, i32.add(i32.add(local(src), i32.mul(i32.add(local(jp), local(jj)), local(colStep))), i32.mul(first, local(rowStep)))),
      ifThen(i32.ltU(i32.add(local(jp), local(jj)), local(nc)),
        forRange(p, first, local(kc), imm(1),
          f32.store(local(out), f32.load(local(from))),
          inc(from, local(rowStep)), inc(out, imm(nr * FLOAT))),
        forRange(p, first, local(kc), imm(1),
          f32.store(local(out), f32.const(0)),
          inc(out, imm(nr * FLOAT)))));
    // Four weight rows r0..r3 at p..p+3 → four panel rows (columns r0..r3 at p, p+1, p+2, p+3).
    const lanes = (...f: number[]): number[] => f.flatMap((lane) => [0, 1, 2, 3].map((byte) => 4 * lane + byte));
    const transpose4 = (block: number): Code => seq(
      ...v.map((x, r) => set(x, v128.load(i32.add(local(rows[4 * block + r]), i32.shl(local(p), imm(2)))))),
      set(t[0], v128.shuffle(local(v[0]), local(v[1]), lanes(0, 4, 1, 5))),
      set(t[1], v128.shuffle(local(v[2]), local(v[3]), lanes(0, 4, 1, 5))),
      set(t[2], v128.shuffle(local(v[0]), local(v[1]), lanes(2, 6, 3, 7))),
      set(t[3], v128.shuffle(local(v[2]), local(v[3]), lanes(2, 6, 3, 7))),
      v128.store(local(out), v128.shuffle(local(t[0]), local(t[1]), lanes(0, 1, 4, 5)), block * VECTOR),
      v128.store(local(out), v128.shuffle(local(t[0]), local(t[1]), lanes(2, 3, 6, 7)), (nr + 4 * block) * FLOAT),
      v128.store(local(out), v128.shuffle(local(t[2]), local(t[3]), lanes(0, 1, 4, 5)), (2 * nr + 4 * block) * FLOAT),
      v128.store(local(out), v128.shuffle(local(t[2]), local(t[3]), lanes(2, 3, 6, 7)), (3 * nr + 4 * block) * FLOAT),
    );
    const transposedRows = seq(
      panelStart,
      ...rows.map((r, j) => set(r, i32.add(local(src), i32.mul(i32.add(local(jp), imm(j)), local(colStep))))),
      forRange(p, imm(0), local(kc4), imm(4),
        ...Array.from({ length: o.nv }, (_, block) => transpose4(block)),
        inc(out, imm(4 * nr * FLOAT))),
      byColumn(local(kc4)));
    return seq(
      set(kc4, i32.and(local(kc), imm(-4))),
      forRange(jp, imm(0), local(nc), imm(nr),
        ifThen(wholePanel,
          ifThen(i32.eqz(i32.sub(local(colStep), imm(FLOAT))), vectorRows,
            ifThen(i32.eqz(i32.sub(local(rowStep), imm(FLOAT))), transposedRows, byColumn(imm(0)))),
          byColumn(imm(0)))));
  });
}

/**
 * copyTile(src, dst, rows, cols, ldc, accumulate): the top-left rows × cols
 * of a scratch tile [MR][NR] into C (row stride ldc bytes), added or stored.
 */
function copyTile(o: GemmModuleOptions): FunctionSpec {
  const nr = 4 * o.nv;
  return fn('copyTile', [I32, I32, I32, I32, I32, I32], [], false, (l) => {
    const [src, dst, rows, cols, ldc, accumulate] = [0, 1, 2, 3, 4, 5];
    const [i, j, from, to] = [l.add(I32), l.add(I32), l.add(I32), l.add(I32)];
    const copy = (add: boolean): Code => forRange(i, imm(0), local(rows), imm(1),
      set(from, i32.add(local(src), i32.mul(local(i), imm(nr * FLOAT)))),
      set(to, i32.add(local(dst), i32.mul(local(i), local(ldc)))),
      forRange(j, imm(0), local(cols), imm(1),
        f32.store(local(to), add ? f32.add(f32.load(local(to)), f32.load(local(from))) : f32.load(local(from))),
        inc(from, imm(FLOAT)), inc(to, imm(FLOAT))));
    return ifThen(local(accumulate), copy(true), copy(false));
  });
}

/**
 * block(mc, nc, kc, aPacked, bPacked, c, ldc, accumulate, scratch): every
 * tile of C[mc × nc] from packed A (⌈mc/MR⌉ panels) and packed B (⌈nc/NR⌉
 * panels). The inner loop walks down a column of tiles, so one B panel stays
 * in L1 while the A panels stream from L2.
 */
function blockFn(o: GemmModuleOptions, microkernelIndex: number, copyTileIndex: number): FunctionSpec {
  const { mr } = o;
  const nr = 4 * o.nv;
  return fn('block', [I32, I32, I32, I32, I32, I32, I32, I32, I32], [], true, (l) => {
    const [mc, nc, kc, aPacked, bPacked, c, ldc, accumulate, scratch] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
    const [jr, ir, ap, bp, cp, rows, cols] = [l.add(I32), l.add(I32), l.add(I32), l.add(I32), l.add(I32), l.add(I32), l.add(I32)];
    const min = (a: Code, b: Code): Code => i32.select(a, b, i32.ltU(a, b));
    return forRange(jr, imm(0), local(nc), imm(nr),
      set(bp, i32.add(local(bPacked), i32.shl(i32.mul(local(jr), local(kc)), imm(2)))),
      set(cols, min(imm(nr), i32.sub(local(nc), local(jr)))),
      forRange(ir, imm(0), local(mc), imm(mr),
        set(ap, i32.add(local(aPacked), i32.shl(i32.mul(local(ir), local(kc)), imm(2)))),
        set(cp, i32.add(i32.add(local(c), i32.mul(local(ir), local(ldc))), i32.shl(local(jr), imm(2)))),
        set(rows, min(imm(mr), i32.sub(local(mc), local(ir)))),
        ifThen(i32.and(i32.eqz(i32.sub(local(rows), imm(mr))), i32.eqz(i32.sub(local(cols), imm(nr)))),
          call(microkernelIndex, local(kc), local(ap), local(bp), local(cp), local(ldc), local(accumulate)),
          seq(
            call(microkernelIndex, local(kc), local(ap), local(bp), local(scratch), imm(nr * FLOAT), imm(0)),
            call(copyTileIndex, local(scratch), local(cp), local(rows), local(cols), local(ldc), local(accumulate))))));
  });
}

/** Sum of the four lanes of a vector, as one f32. */
function horizontalSum(vector: number): Code {
  return f32.add(
    f32.add(f32x4.extractLane(local(vector), 0), f32x4.extractLane(local(vector), 1)),
    f32.add(f32x4.extractLane(local(vector), 2), f32x4.extractLane(local(vector), 3)));
}

/** How a weight is stored, and how four of them become an f32x4 in a register. */
export type WeightStorage = 'f32' | 'bf16' | 'int8';
const STORAGE: Record<WeightStorage, { suffix: string; bytesLog2: number; load: (address: Code) => Code }> = {
  f32: { suffix: '', bytesLog2: 2, load: (at) => v128.load(at) },
  // bf16 is the top half of an f32.
  bf16: { suffix: 'Bf16', bytesLog2: 1, load: (at) => i32x4.shl(v128.load16x4U(at), imm(16)) },
  int8: { suffix: 'Int8', bytesLog2: 0, load: (at) => i32x4.toF32x4(i32x4.extendLowI16x8(i16x8.extendLowI8x16(v128.load32Zero(at)))) },
};

/** The exported name of the few-row [n, k] product for `m` rows and a weight storage. */
export function gemvNKName(storage: WeightStorage, m: number): `gemvNK${string}` {
  return `gemvNK${STORAGE[storage].suffix}${m}`;
}

/**
 * gemvNK{,Bf16,Int8}{m}(a, lda, b, ldb, kBytes, n, c, ldc): C[m × n] = A[m × k] · Bᵀ
 * for B as [n, k] (an nn.Linear weight) stored as f32, bf16 or int8 (widened
 * in registers as it is loaded), m ≤ 4, no packing: each group of weight rows
 * is read once and used for every row of A, the sums running along k in
 * vectors. kBytes is k·4 (A's row), a multiple of 16, and n a multiple of the
 * group (the caller zero-pads both); strides are in bytes.
 */
function gemvNK(o: GemmModuleOptions, m: number, storage: WeightStorage): FunctionSpec {
  const group = GEMV_NK_GROUP[m];
  const { bytesLog2, load } = STORAGE[storage];
  return fn(gemvNKName(storage, m), [I32, I32, I32, I32, I32, I32, I32, I32], [], true, (l) => {
    const [a, lda, b, ldb, kBytes, n, c, ldc] = [0, 1, 2, 3, 4, 5, 6, 7];
    const [j, q, qb] = [l.add(I32), l.add(I32), l.add(I32)];
    const rowOfB = Array.from({ length: group }, () => l.add(I32));
    const acc = Array.from({ length: m * group }, () => l.add(V128));
    const av = Array.from({ length: m }, () => l.add(V128));
    const bv = l.add(V128);
    return forRange(j, imm(0), local(n), imm(group),
      ...rowOfB.map((r, g) => set(r, i32.add(local(b), i32.mul(i32.add(local(j), imm(g)), local(ldb))))),
      ...acc.map((x) => set(x, v128.zero())),
      forRange(q, imm(0), local(kBytes), imm(VECTOR),
        // q walks A's f32 row; qb the same column in B's storage.
        set(qb, bytesLog2 === 2 ? local(q) : i32.shrU(local(q), imm(2 - bytesLog2))),
        ...av.map((x, i) => set(x, v128.load(i32.add(i32.add(local(a), i32.mul(imm(i), local(lda))), local(q))))),
        ...rowOfB.map((r, g) => seq(
          set(bv, load(i32.add(local(r), local(qb)))),
          ...av.map((x, i) => set(acc[i * group + g], madd(o.relaxed, local(x), local(bv), local(acc[i * group + g])))),
        ))),
      ...Array.from({ length: m }, (_, i) => seq(...rowOfB.map((_, g) => f32.store(
        i32.add(i32.add(local(c), i32.mul(imm(i), local(ldc))), i32.shl(i32.add(local(j), imm(g)), imm(2))),
        horizontalSum(acc[i * group + g]))))));
  });
}

/** Rows of a resident weight interleaved together (gemvRows): a multiple of every group gemvRows uses. */
export const ROWS_BLOCK = 8;
/** Weight rows gemvRows takes at a time for m rows of A: groups that divide ROWS_BLOCK, m·group accumulators. */
export const GEMV_ROWS_GROUP = [0, 8, 4, 2, 2] as const;

/** The exported name of the few-row product over a resident weight's interleaved rows. */
export function gemvRowsName(storage: WeightStorage, m: number): `gemvRows${string}` {
  return `gemvRows${STORAGE[storage].suffix}${m}`;
}

/**
 * gemvRows{,Bf16,Int8}{m}(a, lda, b, kBytes, n, c, ldc): gemvNK's product,
 * the same sums in the same order (so the same bits), over a weight [n, k]
 * laid out for streaming: blocks of ROWS_BLOCK rows, each stored as
 * [k / 4][ROWS_BLOCK][4], so the four weights of every row the product
 * takes next are adjacent and one block is read front to back, where gemvNK
 * reads `group` rows side by side. kBytes is k·4 (a multiple of 16) and n a
 * multiple of ROWS_BLOCK (the caller zero-pads both).
 */
function gemvRows(o: GemmModuleOptions, m: number, storage: WeightStorage): FunctionSpec {
  const group = GEMV_ROWS_GROUP[m];
  const { bytesLog2, load } = STORAGE[storage];
  const vectorBytes = 4 << bytesLog2;
  return fn(gemvRowsName(storage, m), [I32, I32, I32, I32, I32, I32, I32], [], true, (l) => {
    const [a, lda, b, kBytes, n, c, ldc] = [0, 1, 2, 3, 4, 5, 6];
    const [j, q, qb, rows] = [l.add(I32), l.add(I32), l.add(I32), l.add(I32)];
    const acc = Array.from({ length: m * group }, () => l.add(V128));
    const av = Array.from({ length: m }, () => l.add(V128));
    const bv = l.add(V128);
    return forRange(j, imm(0), local(n), imm(group),
      // rows: the first of this group's rows in its block (the block's weights take kBytes >> (2 - bytesLog2) bytes a row).
      set(rows, i32.add(local(b), i32.add(
        i32.mul(i32.and(local(j), imm(-ROWS_BLOCK)), i32.shrU(local(kBytes), imm(2 - bytesLog2))),
        i32.mul(i32.and(local(j), imm(ROWS_BLOCK - 1)), imm(vectorBytes))))),
      ...acc.map((x) => set(x, v128.zero())),
      forRange(q, imm(0), local(kBytes), imm(VECTOR),
        // q walks A's f32 row; qb the block's position for the same four columns.
        set(qb, i32.add(local(rows), i32.shl(local(q), imm(bytesLog2 + 1)))),
        ...av.map((x, i) => set(x, v128.load(i32.add(i32.add(local(a), i32.mul(imm(i), local(lda))), local(q))))),
        ...Array.from({ length: group }, (_, g) => seq(
          set(bv, load(i32.add(local(qb), imm(g * vectorBytes)))),
          ...av.map((x, i) => set(acc[i * group + g], madd(o.relaxed, local(x), local(bv), local(acc[i * group + g])))),
        ))),
      ...Array.from({ length: m }, (_, i) => seq(...Array.from({ length: group }, (_, g) => f32.store(
        i32.add(i32.add(local(c), i32.mul(imm(i), local(ldc))), i32.shl(i32.add(local(j), imm(g)), imm(2))),
        horizontalSum(acc[i * group + g]))))));
  });
}

/** The exported name of the function that lays a weight stored so out for gemvRows. */
export function interleaveRowsName(storage: WeightStorage): `interleaveRows${string}` {
  return `interleaveRows${STORAGE[storage].suffix}`;
}

/**
 * interleaveRows{,Bf16,Int8}(src, dst, kBytes, n): weight rows [n][k] in their
 * stored form (k a multiple of 4, n of ROWS_BLOCK) into gemvRows' blocks;
 * kBytes is k·4. Four weights move as one vector (f32) or as one or two i32
 * words (int8, bf16).
 */
function interleaveRows(storage: WeightStorage): FunctionSpec {
  const { suffix, bytesLog2 } = STORAGE[storage];
  const vectorBytes = 4 << bytesLog2;
  return fn(`interleaveRows${suffix}`, [I32, I32, I32, I32], [], true, (l) => {
    const [src, dst, kBytes, n] = [0, 1, 2, 3];
    const [r, q, from, to, rowBytes] = [l.add(I32), l.add(I32), l.add(I32), l.add(I32), l.add(I32)];
    const move = vectorBytes === VECTOR
      ? v128.store(local(to), v128.load(local(from)))
      : seq(...Array.from({ length: vectorBytes / 4 }, (_, w) => i32Memory.store(local(to), i32Memory.load(local(from), 4 * w), 4 * w)));
    return seq(
      set(rowBytes, i32.shrU(local(kBytes), imm(2 - bytesLog2))),
      forRange(r, imm(0), local(n), imm(1),
        set(from, i32.add(local(src), i32.mul(local(r), local(rowBytes)))),
        set(to, i32.add(local(dst), i32.add(i32.mul(i32.and(local(r), imm(-ROWS_BLOCK)), local(rowBytes)),
          i32.mul(i32.and(local(r), imm(ROWS_BLOCK - 1)), imm(vectorBytes))))),
        forRange(q, imm(0), local(rowBytes), imm(vectorBytes),
          move,
          inc(from, imm(vectorBytes)), inc(to, imm(ROWS_BLOCK * vectorBytes)))));
  });
}

/**
 * gemvKN{m}(a, lda, b, ldb, k, nBytes, c, ldc, accumulate): C[m × n] (+)= A[m × k] · B
 * for B as [k, n] (GPT-2's Conv1D), m ≤ 4, no packing: C is made in strips
 * of a few vectors held in registers while B's rows are walked down the
 * strip. nBytes is n·4, a multiple of the strip (the caller zero-pads B's
 * rows); accumulate ≠ 0 starts the sums from C, so k can come in slices.
 */
function gemvKN(o: GemmModuleOptions, m: number): FunctionSpec {
  const vectors = GEMV_KN_VECTORS[m];
  return fn(`gemvKN${m}`, [I32, I32, I32, I32, I32, I32, I32, I32, I32], [], true, (l) => {
    const [a, lda, b, ldb, k, nBytes, c, ldc, accumulate] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
    const [j, p, bp, ap] = [l.add(I32), l.add(I32), l.add(I32), l.add(I32)];
    const acc = Array.from({ length: m * vectors }, () => l.add(V128));
    const av = Array.from({ length: m }, () => l.add(V128));
    const bv = l.add(V128);
    const cAddress = (i: number): Code => i32.add(i32.add(local(c), i32.mul(imm(i), local(ldc))), local(j));
    const forEachSum = (each: (x: number, address: Code, offset: number) => Code): Code => seq(...Array.from({ length: m },
      (_, i) => seq(...Array.from({ length: vectors }, (_, v) => each(acc[i * vectors + v], cAddress(i), v * VECTOR)))));
    return forRange(j, imm(0), local(nBytes), imm(vectors * VECTOR),
      ifThen(local(accumulate),
        forEachSum((x, address, offset) => set(x, v128.load(address, offset))),
        forEachSum((x) => set(x, v128.zero()))),
      set(bp, i32.add(local(b), local(j))),
      set(ap, local(a)),
      forRange(p, imm(0), local(k), imm(1),
        ...av.map((x, i) => set(x, v128.load32Splat(i32.add(local(ap), i32.mul(imm(i), local(lda)))))),
        ...Array.from({ length: vectors }, (_, v) => seq(
          set(bv, v128.load(local(bp), v * VECTOR)),
          ...av.map((x, i) => set(acc[i * vectors + v], madd(o.relaxed, local(x), local(bv), local(acc[i * vectors + v])))),
        )),
        inc(ap, imm(FLOAT)), inc(bp, local(ldb))),
      forEachSum((x, address, offset) => v128.store(address, local(x), offset)));
  });
}

/**
 * fmaPeak(iterations) → f32: 12 independent multiply-add chains on registers
 * only, 96 flops an iteration: the most any matmul in this module can reach
 * on this engine and CPU. Returns a sum so the work is not dead.
 */
function fmaPeak(o: GemmModuleOptions): FunctionSpec {
  return fn('fmaPeak', [I32], [F32], true, (l) => {
    const [iterations] = [0];
    const acc = Array.from({ length: 12 }, () => l.add(V128));
    const [x, y, i] = [l.add(V128), l.add(V128), l.add(I32)];
    return seq(
      set(x, f32x4.splat(f32.const(0.999))),
      set(y, f32x4.splat(f32.const(1e-3))),
      ...acc.map((a) => set(a, v128.zero())),
      forRange(i, imm(0), local(iterations), imm(1),
        ...acc.map((a) => set(a, madd(o.relaxed, local(x), local(y), local(a))))),
      acc.slice(1).reduce<Code>((sum, a) => f32.add(sum, f32x4.extractLane(local(a), 0)), f32x4.extractLane(local(acc[0]), 0)),
    );
  });
}

/**
 * widen{Bf16,Int8,Int8ToI16}(src, dst, count): `count` weights (a multiple of
 * 4, or of 8 for i16) from their stored form at src to f32 (or i16) at dst.
 * A bf16 is the top half of an f32: zero-extended to 32 bits and shifted
 * left by 16 it is that f32. int8 is sign-extended, and converted exactly to
 * f32. (A byte shuffle with a zero vector did the bf16 step 3× slower in V8.)
 */
function widen(name: string, unit: number, srcBytes: number, dstBytes: number, convert: (address: Code) => Code): FunctionSpec {
  return fn(name, [I32, I32, I32], [], true, (l) => {
    const [src, dst, count] = [0, 1, 2];
    const i = l.add(I32);
    return forRange(i, imm(0), local(count), imm(unit),
      v128.store(i32.add(local(dst), i32.mul(local(i), imm(dstBytes))), convert(i32.add(local(src), i32.mul(local(i), imm(srcBytes))))));
  });
}

// The same conversions the gemvNK products make as they load (STORAGE).
const widenBf16 = (): FunctionSpec => widen('widenBf16', 4, 2, 4, STORAGE.bf16.load);
const widenInt8 = (): FunctionSpec => widen('widenInt8', 4, 1, 4, STORAGE.int8.load);
const widenInt8ToI16 = (): FunctionSpec => widen('widenInt8ToI16', 8, 1, 2, (at) => v128.load8x8S(at));

/**
 * dotI16(a, m, q, n, kBytes, out, ldo): out[i][j] = Σ_p a[i][p] · q[j][p] as
 * exact i32 sums, for i16 rows of A [m][kBytes / 2] and of Q [n][kBytes / 2];
 * m a multiple of 4, n of 2, kBytes of 16 (the caller zero-pads). Tiles of
 * 4 rows × 2 weight rows: 8 accumulators of i32x4.dot_i16x8_s.
 */
function dotI16(): FunctionSpec {
  const rows = 4;
  const group = 2;
  return fn('dotI16', [I32, I32, I32, I32, I32, I32, I32], [], true, (l) => {
    const [a, m, q, n, kBytes, out, ldo] = [0, 1, 2, 3, 4, 5, 6];
    const [i, j, pb] = [l.add(I32), l.add(I32), l.add(I32)];
    const rowOfA = Array.from({ length: rows }, () => l.add(I32));
    const rowOfQ = Array.from({ length: group }, () => l.add(I32));
    const acc = Array.from({ length: rows * group }, () => l.add(V128));
    const qv = Array.from({ length: group }, () => l.add(V128));
    const av = l.add(V128);
    const laneSum = (x: number): Code => i32.add(
      i32.add(i32x4.extractLane(local(x), 0), i32x4.extractLane(local(x), 1)),
      i32.add(i32x4.extractLane(local(x), 2), i32x4.extractLane(local(x), 3)));
    return forRange(j, imm(0), local(n), imm(group),
      ...rowOfQ.map((r, g) => set(r, i32.add(local(q), i32.mul(i32.add(local(j), imm(g)), local(kBytes))))),
      forRange(i, imm(0), local(m), imm(rows),
        ...rowOfA.map((r, t) => set(r, i32.add(local(a), i32.mul(i32.add(local(i), imm(t)), local(kBytes))))),
        ...acc.map((x) => set(x, v128.zero())),
        forRange(pb, imm(0), local(kBytes), imm(VECTOR),
          ...qv.map((x, g) => set(x, v128.load(i32.add(local(rowOfQ[g]), local(pb))))),
          ...rowOfA.map((r, t) => seq(
            set(av, v128.load(i32.add(local(r), local(pb)))),
            ...qv.map((x, g) => set(acc[t * group + g], i32x4.add(local(acc[t * group + g]), i32x4.dotI16x8(local(av), local(x))))),
          ))),
        ...Array.from({ length: rows }, (_, t) => seq(...Array.from({ length: group }, (_, g) => i32Memory.store(
          i32.add(i32.add(local(out), i32.mul(i32.add(local(i), imm(t)), local(ldo))), i32.shl(i32.add(local(j), imm(g)), imm(2))),
          laneSum(acc[t * group + g])))))));
  });
}

/**
 * The module's bytes for one tile shape and instruction choice, importing a
 * shared memory (worker threads) or a plain one; the functions are built once
 * for every variant asked for.
 */
export function gemmModuleBytes(o: GemmModuleOptions, sharedVariants: readonly boolean[]): Uint8Array<ArrayBuffer>[] {
  // Function indices: the order of this list.
  const functions: FunctionSpec[] = [microkernel(o), copyTile(o)];
  functions.push(blockFn(o, 0, 1), packA(o), packB(o), fmaPeak(o));
  for (let m = 1; m <= 4; m++) functions.push(gemvNK(o, m, 'f32'), gemvNK(o, m, 'bf16'), gemvNK(o, m, 'int8'), gemvKN(o, m));
  functions.push(widenBf16(), widenInt8(), widenInt8ToI16(), dotI16());
  for (const storage of ['f32', 'bf16', 'int8'] as const) {
    for (let m = 1; m <= 4; m++) functions.push(gemvRows(o, m, storage));
    functions.push(interleaveRows(storage));
  }
  return sharedVariants.map((shared) => encodeModule({ memory: { initialPages: 1, maximumPages: o.maximumPages, shared }, functions }));
}

/** The exports of an instance of the module. */
export interface GemmExports {
  block(mc: number, nc: number, kc: number, aPacked: number, bPacked: number, c: number, ldc: number, accumulate: number, scratch: number): void;
  packA(src: number, lda: number, mc: number, kc: number, dst: number): void;
  packB(src: number, rowStep: number, colStep: number, kc: number, nc: number, dst: number): void;
  fmaPeak(iterations: number): number;
  widenBf16(src: number, dst: number, count: number): void;
  widenInt8(src: number, dst: number, count: number): void;
  widenInt8ToI16(src: number, dst: number, count: number): void;
  dotI16(a: number, m: number, q: number, n: number, kBytes: number, out: number, ldo: number): void;
  [gemv: `gemvNK${string}`]: (a: number, lda: number, b: number, ldb: number, kBytes: number, n: number, c: number, ldc: number) => void;
  [gemv: `gemvRows${string}`]: (a: number, lda: number, b: number, kBytes: number, n: number, c: number, ldc: number) => void;
  [interleave: `interleaveRows${string}`]: (src: number, dst: number, kBytes: number, n: number) => void;
  [gemv: `gemvKN${number}`]: (a: number, lda: number, b: number, ldb: number, k: number, nBytes: number, c: number, ldc: number,
    accumulate: number) => void;
}

/** A tiny module using one instruction: it validates only where the engine has that instruction. */
function probeBytes(instruction: Code): Uint8Array<ArrayBuffer> {
  const probe: FunctionSpec = { name: 'probe', params: [], results: [], locals: [], exported: false, body: drop(instruction) };
  return encodeModule({ memory: { initialPages: 1, maximumPages: 1, shared: false }, functions: [probe] });
}

/** Validates where the engine has 128-bit SIMD. */
export function simdProbeBytes(): Uint8Array<ArrayBuffer> {
  return probeBytes(f32x4.add(v128.zero(), v128.zero()));
}

/** Validates where the engine has relaxed SIMD. */
export function relaxedProbeBytes(): Uint8Array<ArrayBuffer> {
  return probeBytes(f32x4.relaxedMadd(v128.zero(), v128.zero(), v128.zero()));
}
