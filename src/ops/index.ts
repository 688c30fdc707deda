export { matmul, linear, type MatmulOptions } from './matmul.js';
export {
  add,
  sub,
  mul,
  div,
  map,
  scale,
  erf,
  relu,
  gelu,
  geluTanh,
  silu,
  tanh,
  activation,
  broadcastShapes,
  type Activation,
} from './elementwise.js';
export { softmax, logSoftmax } from './softmax.js';
export { layerNorm, rmsNorm } from './norm.js';
export { embedding } from './embedding.js';
export { F32_MIN, paddingMask, causalMask } from './mask.js';
