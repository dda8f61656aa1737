/**
 * How the core's own quantizers read their folders back: bitsandbytes NF4 / FP4 and LLM.int8, all
 * under quant_method "bitsandbytes" (transformers' BitsAndBytesConfig), told apart by load_in_4bit
 * + bnb_4bit_quant_type / load_in_8bit. plugin/builtins.ts adds quantize, config and options to
 * make them registry entries; `builtinQuantizers` is the lookup a loader uses when it is given no
 * registry (library users: `Llama.fromFolder(dir)` reads bitsandbytes folders as it always did).
 * Not here: the layouts (bnb4bit.ts, int8.ts), loading them into memory (bnb-frozen.ts).
 */
import { dequantize4bitWeight } from './bnb4bit.js';
import { frozen4bit, frozenInt8, layout4bit, layoutInt8 } from './bnb-frozen.js';
import { bnbTypeOf, type BnbType } from './config.js';
import type { QuantFormat, QuantizerLookup } from './format.js';
import { dequantizeInt8Weight } from './int8.js';
import { findQuantizer } from './lookup.js';

/** Whether qc is a bitsandbytes config of `type` (a config naming an unknown 4-bit type is no one's). */
function isBnb(qc: Readonly<Record<string, unknown>>, type: BnbType): boolean {
  try {
    return bnbTypeOf(qc) === type;
  } catch {
    return false;
  }
}

/** NF4 or FP4: the quant_state of each tensor names its type, so either reads a folder of the other. */
function fourBit(type: 'nf4' | 'fp4'): QuantFormat {
  return {
    name: type,
    quantMethod: 'bitsandbytes',
    matches: (qc) => isBnb(qc, type),
    dequantize: (prefix, get, { backend, out }) => dequantize4bitWeight(backend, prefix, get, out),
    layout: layout4bit,
    frozen: frozen4bit,
  };
}

export const NF4_FORMAT: QuantFormat = fourBit('nf4');
export const FP4_FORMAT: QuantFormat = fourBit('fp4');
export const INT8_FORMAT: QuantFormat = {
  name: 'int8',
  quantMethod: 'bitsandbytes',
  matches: (qc) => isBnb(qc, 'int8'),
  dequantize: (prefix, get, { backend, out }) => dequantizeInt8Weight(backend, prefix, get, out),
  layout: layoutInt8,
  frozen: frozenInt8,
};

const BUILTIN: readonly QuantFormat[] = [NF4_FORMAT, FP4_FORMAT, INT8_FORMAT];

/** The lookup over the built-in formats only (a plugin's folder needs the registry: Registry.quantizerFor). */
export const builtinQuantizers: QuantizerLookup = {
  quantizerFor: (qc, where) => findQuantizer(BUILTIN, qc, where),
};
