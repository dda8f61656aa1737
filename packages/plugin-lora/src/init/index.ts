/**
 * init_lora_weights -> the initialiser. Each returns f32 A [r, in] and B [out, r], and the
 * data-dependent ones a new base weight (types.ts).
 * Not here: applying the result to the model (attach.ts).
 */
import type { InitKind } from '../config.js';
import { gaussianInit } from './gaussian.js';
import { kaimingInit, randomInit } from './kaiming.js';
import { loftqInit } from './loftq.js';
import { oloraInit } from './olora.js';
import { pissaInit } from './pissa.js';
import type { InitInput, InitResult } from './types.js';

export type { InitInput, InitResult } from './types.js';

export function initialise(kind: InitKind, x: InitInput, loftqIter: number): InitResult {
  switch (kind) {
    case 'default': return kaimingInit(x);
    case 'random': return randomInit(x);
    case 'gaussian': return gaussianInit(x);
    case 'pissa': return pissaInit(x);
    case 'olora': return oloraInit(x);
    case 'loftq': return loftqInit(x, loftqIter);
  }
}
