export { matmul, linear, type MatmulOptions } from './matmul.js';
export {
  add,
  addInto,
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
export { embedding } from './embedding.js';
export { F32_MIN, paddingMask, causalMask } from './mask.js';
export { rotary } from './rotary.js';
export { repeatKv } from './repeat-kv.js';
export { dropout, type RandomSource } from './dropout.js';
export { normalizeL2 } from './normalize.js';
