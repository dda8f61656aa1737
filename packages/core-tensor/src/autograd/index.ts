/** Reverse-mode autograd: the tape, backward, no-grad mode, the gradient table and gradcheck. */
export { backward } from './backward.js';
export { gradcheck, type GradcheckOptions, type GradcheckResult } from './gradcheck.js';
export { gradients } from './gradients.js';
export type { GradFn, Grads, Node } from './node.js';
export { isGradEnabled, needsGrad, noGrad, record } from './tape.js';
