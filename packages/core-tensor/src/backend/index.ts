/**
 * Backend selection, and the dtype bridges every caller needs: `getBackend()` picks the native
 * kernels when their binary loads and the reference TS kernels otherwise (override with
 * PEFT_BACKEND=auto|native|reference); `toF32` / `fromF32` convert F32/F16/BF16 tensor bytes.
 */
import { asF32, asU16, bytesOf, dtypeSize, numel, type Dtype, type RawTensor } from '../dtype.js';
import { PeftError } from '../errors.js';
import { kindFromEnv, type BackendKind } from './kind.js';
import { nativeBackend, tryLoadKernels } from './native.js';
import { referenceBackend } from './reference.js';
import type { Backend } from './types.js';

export type { Backend, QuantType4, Quantized4, Quantized8, QuantizedInt8Rows } from './types.js';
export { referenceBackend } from './reference.js';
export { getTrainKernels, missingTrainKernels, nativeTrainKernels, type NativeTrainFns } from './native-train.js';
export { referenceTrainKernels } from './reference-train/index.js';
export type { TrainKernels } from './train-kernels.js';
export {
  loadKernels, nativeBackend, nativeLoadError, nativeSimdLevels, tryLoadKernels, type KernelsNapi, type SimdLevel,
} from './native.js';
export type { BackendKind } from './kind.js';

let native: Backend | undefined;
let auto: Backend | undefined;

/**
 * The backend to compute with. 'native' throws (E_RUNTIME) when the binary is missing; 'auto'
 * falls back to the reference backend, decided once per process.
 */
export function getBackend(kind: BackendKind = kindFromEnv()): Backend {
  if (kind === 'reference') return referenceBackend;
  if (kind === 'native') return (native ??= nativeBackend());
  if (kind !== 'auto') throw new PeftError('E_INPUT', `unknown backend kind '${String(kind)}'`);
  auto ??= tryLoadKernels() ? (native ??= nativeBackend()) : referenceBackend;
  return auto;
}

export type FloatDtype = 'F32' | 'F16' | 'BF16';

function describe(t: RawTensor): string {
  const name = (t as { name?: unknown }).name;
  return typeof name === 'string' ? `tensor '${name}'` : 'tensor';
}

/**
 * The f32 values of an F32, F16 or BF16 tensor. For F32 the result may share memory with `t.data`
 * (it is copied only when the bytes are not 4-byte aligned). F16/BF16 convert into `out` when given
 * (exactly numel long), so a caller streaming many tensors can reuse one buffer.
 */
export function toF32(backend: Backend, t: RawTensor, out?: Float32Array): Float32Array {
  const { dtype } = t;
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') {
    throw new PeftError('E_FORMAT', `${describe(t)}: expected dtype F32, F16 or BF16, got ${dtype}`);
  }
  const want = numel(t.shape) * dtypeSize(dtype);
  if (t.data.byteLength !== want) {
    throw new PeftError(
      'E_FORMAT', `${describe(t)}: ${t.data.byteLength} bytes for ${dtype} shape [${t.shape.join(', ')}], expected ${want}`,
    );
  }
  if (dtype === 'F32') return asF32(t.data);
  return dtype === 'F16' ? backend.f16ToF32(asU16(t.data), out) : backend.bf16ToF32(asU16(t.data), out);
}

/** The bytes of `x` stored as `dtype` (F32: a view of x, no copy; F16/BF16: RNE conversion). */
export function fromF32(backend: Backend, x: Float32Array, dtype: Dtype): Uint8Array {
  if (dtype === 'F32') return bytesOf(x);
  if (dtype === 'F16') return bytesOf(backend.f32ToF16(x));
  if (dtype === 'BF16') return bytesOf(backend.f32ToBf16(x));
  throw new PeftError('E_FORMAT', `cannot write f32 values as ${dtype}: expected F32, F16 or BF16`);
}
