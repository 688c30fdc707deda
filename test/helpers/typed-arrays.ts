import { setFusedAttentionKernel } from '../../src/kernels/attention.js';
import { jsAttentionKernel } from '../../src/kernels/attention-js.js';
import { setElementwiseKernel } from '../../src/kernels/elementwise.js';

/**
 * Counts typed arrays made while `fn` runs: every typed array constructor is
 * replaced by a counting proxy (the arrays it makes are the real kind), and
 * `subarray`, whose views are made through the unpatched constructor, is
 * counted too. `where` names the caller of each, for a failing assertion.
 */
export function countTypedArrays(fn: () => void): { count: number; where: string[] } {
  const kinds = ['Float32Array', 'Float64Array', 'Int32Array', 'Uint32Array', 'Uint16Array', 'Int16Array', 'Int8Array', 'Uint8Array'] as const;
  const globals = globalThis as unknown as Record<string, unknown>;
  const saved = kinds.map((name) => globals[name] as { new (...args: unknown[]): unknown; prototype: { subarray: (...args: unknown[]) => unknown } });
  const where: string[] = [];
  const seen = () => where.push(new Error().stack?.split('\n')[3]?.trim() ?? '?');
  kinds.forEach((name, i) => {
    const real = saved[i];
    globals[name] = new Proxy(real, {
      construct(target, args, newTarget) {
        seen();
        return Reflect.construct(target, args, newTarget === globals[name] ? target : newTarget) as object;
      },
    });
    const subarray = real.prototype.subarray;
    real.prototype.subarray = function (this: unknown, ...args: unknown[]) {
      seen();
      return subarray.apply(this, args);
    };
  });
  try {
    fn();
  } finally {
    kinds.forEach((name, i) => {
      globals[name] = saved[i];
      delete (saved[i].prototype as { subarray?: unknown }).subarray;
    });
  }
  return { count: where.length, where };
}

/** Index of the first element where a and b differ as f32 bits (NaN-safe), or −1 when they are identical. */
export function firstDifference(a: { f32(): Float32Array }, b: { f32(): Float32Array }): number {
  const x = new Uint32Array(a.f32().slice().buffer);
  const y = new Uint32Array(b.f32().slice().buffer);
  if (x.length !== y.length) return 0;
  return x.findIndex((bits, i) => bits !== y[i]);
}

/**
 * The arrays of `countTypedArrays` made outside the WebAssembly matmul kernel,
 * which makes views of its memory per product (src/kernels/wasm/kernel.ts):
 * what the attention, the elementwise ops and the session's buffers make.
 */
export function outsideWasmKernel(where: readonly string[]): string[] {
  return where.filter((at) => !at.includes('/kernels/wasm/'));
}

/**
 * Runs fn with the fused attention and the elementwise ops on their TypeScript
 * paths, the browser's (the attention-js kernel; the ops' own loops), whatever
 * the addon provides, then puts back the kernels that were active.
 */
export function onTypeScriptOps<T>(fn: () => T): T {
  const attention = setFusedAttentionKernel(jsAttentionKernel);
  const elementwise = setElementwiseKernel(undefined);
  try {
    return fn();
  } finally {
    setFusedAttentionKernel(attention);
    setElementwiseKernel(elementwise);
  }
}
