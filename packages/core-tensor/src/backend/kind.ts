/** Which kernels to compute with: PEFT_BACKEND, read once here so getBackend and getTrainKernels agree. */
import { PeftError } from '../errors.js';

export type BackendKind = 'auto' | 'native' | 'reference';
const KINDS: readonly string[] = ['auto', 'native', 'reference'];

export function kindFromEnv(): BackendKind {
  const v = process.env.PEFT_BACKEND;
  if (v === undefined || v === '') return 'auto';
  if (!KINDS.includes(v)) {
    throw new PeftError('E_INPUT', `PEFT_BACKEND must be one of ${KINDS.join(', ')}, got '${v}'`);
  }
  return v as BackendKind;
}
