/**
 * Reverse-mode autograd over the tape the ops record on (ops/tape.ts): backward, the gradient
 * table and gradcheck. It sits above ops/ (the table names each op's backward); ops never import it.
 */
export { backward } from './backward.js';
export { gradcheck, type GradcheckOptions, type GradcheckResult } from './gradcheck.js';
export { gradients } from './gradients.js';
