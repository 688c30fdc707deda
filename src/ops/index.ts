export { matmul, matmulInto, linear, type MatmulOptions } from './matmul.js';
export {
  add,
  addInto,
  addInPlace,
  sub,
  mul,
  mulInto,
  div,
  map,
  reduceToShape,
  scale,
  scaleInto,
  erf,
  relu,
  gelu,
  geluTanh,
  silu,
  tanh,
  activation,
  activationInto,
  activateInPlace,
  activateGatedInPlace,
  broadcastShapes,
  type Activation,
} from './elementwise.js';
export { softmax, softmaxInto, logSoftmax } from './softmax.js';
export { layerNorm, layerNormInto, rmsNorm, rmsNormInto } from './norm.js';
export { embedding, embeddingInto } from './embedding.js';
export { Workspace } from './workspace.js';
export { F32_MIN, paddingMask, causalMask } from './mask.js';
export { rotary, rotaryMergedInPlace } from './rotary.js';
export { repeatKv } from './repeat-kv.js';
export { dropout, type RandomSource } from './dropout.js';
export { normalizeL2 } from './normalize.js';
