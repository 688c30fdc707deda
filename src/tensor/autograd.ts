/**
 * Reverse-mode automatic differentiation on a tape, as PyTorch's autograd:
 * while recording is on, an op whose inputs include a tensor that requires
 * gradients gives its output a `GradNode` that knows how to turn the output's
 * gradient into its inputs' gradients. `backward(loss)` walks those nodes in
 * reverse topological order and adds each leaf's gradient into `leaf.grad`.
 *
 * Inference pays one boolean test per op: when no input requires gradients
 * (weights loaded for inference never do) nothing is recorded or allocated.
 */
import { ShapeError } from '../errors.js';
import { Tensor, shapeString } from './tensor.js';

/** How one op's output gradient flows back to its inputs. */
export interface GradNode {
  /** The op's name, for error messages and debugging. */
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /** d(loss)/d(output) → d(loss)/d(input) for each input, `undefined` where an input needs none. */
  backward(grad: Float32Array): readonly (Float32Array | undefined)[];
}

let recording = true;

/** Whether ops record the tape (on unless inside `noGrad`). */
export function isGradEnabled(): boolean {
  return recording;
}

/** Run `fn` without recording: evaluation, generation and optimizer updates. */
export function noGrad<T>(fn: () => T): T {
  const previous = recording;
  recording = false;
  try {
    return fn();
  } finally {
    recording = previous;
  }
}

/** True when an op over these inputs must record: recording is on and one input requires gradients. */
export function needsGrad(a: Tensor | undefined, b?: Tensor, c?: Tensor): boolean {
  return recording && ((a?.requiresGrad ?? false) || (b?.requiresGrad ?? false) || (c?.requiresGrad ?? false));
}

/** Attach the backward rule of the op that produced `out`; returns `out`. */
export function record(out: Tensor, op: string, inputs: readonly Tensor[], backward: GradNode['backward']): Tensor {
  out.requiresGrad = true;
  out.gradNode = { op, inputs, backward };
  return out;
}

/** Tensors reachable from `root` through grad nodes, inputs before the tensors computed from them. */
function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // An explicit stack: a deep model's graph would overflow recursion.
  const stack: { t: Tensor; expanded: boolean }[] = [{ t: root, expanded: false }];
  while (stack.length > 0) {
    const top = stack.pop()!;
    if (top.expanded) {
      order.push(top.t);
      continue;
    }
    if (visited.has(top.t)) continue;
    visited.add(top.t);
    stack.push({ t: top.t, expanded: true });
    for (const input of top.t.gradNode?.inputs ?? []) {
      if (input.requiresGrad && !visited.has(input)) stack.push({ t: input, expanded: false });
    }
  }
  return order;
}

/**
 * Sum gradients arriving at `t` along different paths. A backward rule may hand
 * the same array to several inputs (add passes its gradient through to both),
 * so a first arrival is kept as is and copied before anything is added to it.
 */
function accumulate(into: Map<Tensor, Float32Array>, owned: Set<Float32Array>, t: Tensor, g: Float32Array): void {
  const have = into.get(t);
  if (!have) {
    into.set(t, g);
    return;
  }
  if (owned.has(have)) {
    for (let i = 0; i < have.length; i++) have[i] += g[i];
    return;
  }
  const sum = new Float32Array(have.length);
  for (let i = 0; i < sum.length; i++) sum[i] = have[i] + g[i];
  owned.add(sum);
  into.set(t, sum);
}

/**
 * Back-propagate from `root` (a scalar loss, or any tensor with an explicit
 * `grad` of its shape). Leaves (tensors that require gradients and were not
 * computed by a recorded op) get the gradient added into `.grad`, so several
 * backward passes accumulate, as in PyTorch.
 */
export function backward(root: Tensor, grad?: Tensor): void {
  if (!root.requiresGrad) throw new ShapeError(`backward: ${root} does not require gradients (no input of the computation did)`);
  if (!grad && root.size !== 1) throw new ShapeError(`backward: ${root} is not a scalar; pass its gradient explicitly`);
  if (grad && grad.size !== root.size) throw new ShapeError(`backward: gradient ${grad} does not match ${root}`);
  const grads = new Map<Tensor, Float32Array>();
  const owned = new Set<Float32Array>();
  grads.set(root, grad ? Float32Array.from(grad.f32()) : new Float32Array([1]));
  const order = topologicalOrder(root);
  for (let i = order.length - 1; i >= 0; i--) {
    const t = order[i];
    const g = grads.get(t);
    if (!g) continue;
    grads.delete(t);
    const node = t.gradNode;
    if (!node) {
      addToGrad(t, g);
      continue;
    }
    const inputGrads = node.backward(g);
    node.inputs.forEach((input, j) => {
      const ig = inputGrads[j];
      if (ig && input.requiresGrad) {
        if (ig.length !== input.size) {
          throw new ShapeError(`backward of ${node.op}: gradient of ${ig.length} values for input ${shapeString(input.shape)}`);
        }
        accumulate(grads, owned, input, ig);
      }
    });
  }
}

function addToGrad(leaf: Tensor, g: Float32Array): void {
  if (!leaf.grad) {
    leaf.grad = new Tensor('f32', leaf.shape, Float32Array.from(g));
    return;
  }
  const have = leaf.grad.data as Float32Array;
  for (let i = 0; i < have.length; i++) have[i] += g[i];
}
