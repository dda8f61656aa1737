/**
 * The core's own quantizers: bitsandbytes NF4 / FP4 (4-bit blockwise, optional double quant)
 * and LLM.int8 row-wise int8; and its optimizers, AdamW and SGD (builtin-optimizers.ts). They register like
 * any plugin, so `peft methods`, `peft quantize --type` and `peft train --optimizer` treat them and
 * third-party entries alike.
 */
import {
  bnbQuantizationConfig, dequantize4bitWeight, dequantizeInt8Weight, quantize4bitWeight, quantizeInt8Weight,
} from '../quant/index.js';
import { CORE_OPTIMIZERS } from './builtin-optimizers.js';
import type { QuantizerDef } from './quantizer.js';
import type { Registry } from './registry.js';

type ComputeDtype = 'bfloat16' | 'float16' | 'float32';
const COMPUTE_DTYPES: Record<string, ComputeDtype> = { bf16: 'bfloat16', f16: 'float16', f32: 'float32' };

const fourBitOptions = {
  blocksize: { type: 'integer', min: 32, max: 4096, powerOfTwo: true, default: 64, description: 'Elements per absmax block' },
  double_quant: { type: 'boolean', default: true, description: 'Quantize the absmax values again (8-bit, block 256)' },
  compute_dtype: { type: 'enum', choices: ['bf16', 'f16', 'f32'], default: 'bf16', description: 'dtype of matmuls at inference' },
} as const;

function fourBit(type: 'nf4' | 'fp4', description: string): QuantizerDef {
  const settings = (o: Record<string, unknown>) => ({
    type,
    blocksize: o.blocksize as number,
    doubleQuant: o.double_quant as boolean,
    computeDtype: COMPUTE_DTYPES[o.compute_dtype as string],
  });
  return {
    name: type,
    description,
    options: fourBitOptions,
    quantize: (prefix, w, shape, o, { backend }) => quantize4bitWeight(backend, prefix, w, [...shape], settings(o)),
    dequantize: (prefix, get, { backend, out }) => dequantize4bitWeight(backend, prefix, get, out),
    config: (o, skipModules) => bnbQuantizationConfig({ ...settings(o), skipModules: [...skipModules] }),
  };
}

const int8: QuantizerDef = {
  name: 'int8',
  description: 'LLM.int8 storage: row-wise absmax int8 (bitsandbytes Linear8bitLt)',
  options: {
    threshold: { type: 'number', min: 0, default: 6.0, description: 'Outlier threshold used at inference (llm_int8_threshold)' },
  },
  quantize: (prefix, w, shape, _o, { backend }) => quantizeInt8Weight(backend, prefix, w, [...shape]),
  dequantize: (prefix, get, { backend, out }) => dequantizeInt8Weight(backend, prefix, get, out),
  config: (o, skipModules) =>
    bnbQuantizationConfig({ type: 'int8', threshold: o.threshold as number, skipModules: [...skipModules] }),
};

export function registerBuiltins(registry: Registry): void {
  registry.quantizer(fourBit('nf4', 'bitsandbytes 4-bit NormalFloat, blockwise absmax (QLoRA)'));
  registry.quantizer(fourBit('fp4', 'bitsandbytes 4-bit float (1 sign, 2 exponent, 1 mantissa bits), blockwise absmax'));
  registry.quantizer(int8);
  for (const optimizer of CORE_OPTIMIZERS) registry.optimizer(optimizer);
}
