/**
 * The `quantization_config` entry of a bitsandbytes model's config.json: what transformers'
 * BitsAndBytesConfig.to_dict() returns (src/transformers/utils/quantization_config.py), keys in the
 * sorted order config.json is written with. And the reverse: a summary for `peft inspect`.
 *
 * The blocksize is not part of it: each tensor's quant_state carries its own.
 */
import { PeftError } from '../errors.js';
import type { ComputeDtype } from './quant-state.js';

export type BnbType = 'nf4' | 'fp4' | 'int8';

export interface BnbConfigOptions {
  type: BnbType;
  /** accepted for symmetry with the quantizer; transformers does not record it */
  blocksize?: number;
  doubleQuant?: boolean;
  computeDtype?: ComputeDtype;
  /** modules left unquantized (transformers: llm_int8_skip_modules, used by 4-bit too) */
  skipModules?: string[];
  /** llm_int8_threshold, the LLM.int8 outlier threshold used at inference (default 6.0) */
  threshold?: number;
}

/**
 * BitsAndBytesConfig(...).to_dict(). Fields a user did not set keep transformers' defaults
 * (quant type "fp4", compute dtype "float32", storage "uint8"), so an int8 config looks exactly like
 * BitsAndBytesConfig(load_in_8bit=True). NOTE for writers: transformers' post_init rejects an int
 * llm_int8_threshold, so it must be serialized as `6.0`, not JSON.stringify's `6`.
 */
export function bnbQuantizationConfig(o: BnbConfigOptions): Record<string, unknown> {
  if (o.type !== 'nf4' && o.type !== 'fp4' && o.type !== 'int8') {
    throw new PeftError('E_INPUT', `bitsandbytes type must be nf4, fp4 or int8, got '${String(o.type)}'`);
  }
  const four = o.type !== 'int8';
  return {
    _load_in_4bit: four,
    _load_in_8bit: !four,
    bnb_4bit_compute_dtype: o.computeDtype ?? 'float32',
    bnb_4bit_quant_storage: 'uint8',
    bnb_4bit_quant_type: four ? o.type : 'fp4',
    bnb_4bit_use_double_quant: o.doubleQuant ?? false,
    llm_int8_enable_fp32_cpu_offload: false,
    llm_int8_has_fp16_weight: false,
    llm_int8_skip_modules: o.skipModules ? [...o.skipModules] : null,
    llm_int8_threshold: o.threshold ?? 6.0,
    load_in_4bit: four,
    load_in_8bit: !four,
    quant_method: 'bitsandbytes',
  };
}

export interface QuantizationSummary {
  method: 'bitsandbytes';
  bits: 4 | 8;
  type: BnbType;
  doubleQuant: boolean;
  computeDtype: string;
  /** modules stored quantized: 4-bit quant_state tensors, or int8 SCB tensors */
  quantizedModules: number;
}

/**
 * The bitsandbytes type a quantization_config describes (load_in_4bit + bnb_4bit_quant_type, default
 * fp4 as BitsAndBytesConfig; load_in_8bit), or undefined when it is not a bitsandbytes one.
 */
export function bnbTypeOf(qc: Readonly<Record<string, unknown>>): BnbType | undefined {
  if (qc.quant_method !== 'bitsandbytes') return undefined;
  const four = (qc.load_in_4bit ?? qc._load_in_4bit) === true;
  const eight = (qc.load_in_8bit ?? qc._load_in_8bit) === true;
  if (!four && !eight) return undefined;
  const type = four ? (qc.bnb_4bit_quant_type ?? 'fp4') : 'int8';
  if (type !== 'nf4' && type !== 'fp4' && type !== 'int8') {
    throw new PeftError('E_FORMAT', `quantization_config: unknown bnb_4bit_quant_type ${JSON.stringify(type)}`);
  }
  return type;
}

const STATE_RE = /\.weight\.quant_state\.bitsandbytes__(nf4|fp4)$/;

/**
 * Summarizes a bitsandbytes quantization from a config.json object (or its quantization_config)
 * and the checkpoint's tensor names; undefined when the config is not a bitsandbytes one.
 */
export function describeQuantization(config: object, tensorNames: string[]): QuantizationSummary | undefined {
  const root = config as Record<string, unknown>;
  const qc = (typeof root.quantization_config === 'object' && root.quantization_config !== null
    ? root.quantization_config
    : root) as Record<string, unknown>;
  const type = bnbTypeOf(qc);
  if (type === undefined) return undefined;
  const four = type !== 'int8';
  const quantizedModules = four
    ? tensorNames.filter((n) => STATE_RE.test(n)).length
    : tensorNames.filter((n) => n.endsWith('.SCB')).length;
  return {
    method: 'bitsandbytes',
    bits: four ? 4 : 8,
    type,
    doubleQuant: four && qc.bnb_4bit_use_double_quant === true,
    computeDtype: typeof qc.bnb_4bit_compute_dtype === 'string' ? qc.bnb_4bit_compute_dtype : 'float32',
    quantizedModules,
  };
}
