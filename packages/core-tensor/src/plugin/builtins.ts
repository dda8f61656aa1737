/**
 * The core's own quantizers: bitsandbytes NF4 / FP4 (4-bit blockwise, optional double quant)
 * and LLM.int8 row-wise int8 (their read-back side, quant_method "bitsandbytes", in
 * quant/builtin-formats.ts); and its optimizers, AdamW and SGD (builtin-optimizers.ts). They register like
 * any plugin, so `peft methods`, `peft quantize --type` and `peft train --optimizer` treat them and
 * third-party entries alike.
 */
import type { RawTensor } from '../dtype.js';
import { FP4_FORMAT, INT8_FORMAT, NF4_FORMAT } from '../quant/builtin-formats.js';
import { bnbQuantizationConfig } from '../quant/config.js';
import { quantize4bitWeight } from '../quant/bnb4bit.js';
import { quantizeInt8Weight } from '../quant/int8.js';
import { decodeQuantState } from '../quant/quant-state.js';
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

const FROM_TORCH: Record<string, string> = { bfloat16: 'bf16', float16: 'f16', float32: 'f32' };

/** A 4-bit module's settings as stored: blocksize and double quant from its quant_state, compute dtype from the config. */
function fourBitOptionsOf(qc: Readonly<Record<string, unknown>>, prefix: string, get: (n: string) => RawTensor | undefined) {
  const key = [`${prefix}.weight.quant_state.bitsandbytes__nf4`, `${prefix}.weight.quant_state.bitsandbytes__fp4`].find((k) => get(k))!;
  const s = decodeQuantState(key, get(key)!.data);
  const given: Record<string, unknown> = { blocksize: s.blocksize, double_quant: s.nested_offset !== undefined };
  const compute = FROM_TORCH[String(qc.bnb_4bit_compute_dtype)];
  if (compute) given.compute_dtype = compute;
  return given;
}

function fourBit(type: 'nf4' | 'fp4', description: string): QuantizerDef {
  const settings = (o: Record<string, unknown>) => ({
    type,
    blocksize: o.blocksize as number,
    doubleQuant: o.double_quant as boolean,
    computeDtype: COMPUTE_DTYPES[o.compute_dtype as string],
  });
  return {
    ...(type === 'nf4' ? NF4_FORMAT : FP4_FORMAT),
    description,
    options: fourBitOptions,
    quantize: (prefix, w, shape, o, { backend }) => quantize4bitWeight(backend, prefix, w, [...shape], settings(o)),
    config: (o, skipModules) => bnbQuantizationConfig({ ...settings(o), skipModules: [...skipModules] }),
    optionsFromConfig: fourBitOptionsOf,
  };
}

const int8: QuantizerDef = {
  ...INT8_FORMAT,
  description: 'LLM.int8 storage: row-wise absmax int8 (bitsandbytes Linear8bitLt)',
  options: {
    threshold: { type: 'number', min: 0, default: 6.0, description: 'Outlier threshold used at inference (llm_int8_threshold)' },
  },
  quantize: (prefix, w, shape, _o, { backend }) => quantizeInt8Weight(backend, prefix, w, [...shape]),
  config: (o, skipModules) =>
    bnbQuantizationConfig({ type: 'int8', threshold: o.threshold as number, skipModules: [...skipModules] }),
  optionsFromConfig: (qc) => (typeof qc.llm_int8_threshold === 'number' ? { threshold: qc.llm_int8_threshold } : {}),
};

export function registerBuiltins(registry: Registry): void {
  registry.quantizer(fourBit('nf4', 'bitsandbytes 4-bit NormalFloat, blockwise absmax (QLoRA)'));
  registry.quantizer(fourBit('fp4', 'bitsandbytes 4-bit float (1 sign, 2 exponent, 1 mantissa bits), blockwise absmax'));
  registry.quantizer(int8);
  for (const optimizer of CORE_OPTIMIZERS) registry.optimizer(optimizer);
}
