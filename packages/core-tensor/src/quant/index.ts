/**
 * Quantization formats compatible with bitsandbytes / transformers checkpoints: NF4 and FP4 4-bit
 * weights (with double quantization), LLM.int8 weights, their config.json entry, and the tables;
 * and the read-back side of every quantizer (format.ts): the lookup from quantization_config,
 * stored layouts, frozen weights in memory. Kernels come from a Backend (see ../backend); this
 * layer owns layouts and file semantics.
 */
export { DYNAMIC_MAP, FP4, FP4_BITS, FP4_THRESHOLDS, NF4, NF4_THRESHOLDS, quantMap } from '../backend/quant-tables.js';
export {
  absmaxOffset, dequantize4bitWeight, doubleDequantize, doubleQuantize, quantize4bitWeight, type Quantize4bitOptions,
} from './bnb4bit.js';
export { dequantizeInt8Weight, quantizeInt8Weight } from './int8.js';
export {
  bnbQuantizationConfig, describeQuantization, type BnbConfigOptions, type BnbType, type QuantizationSummary,
} from './config.js';
export {
  decodeQuantState, encodeQuantState, formatQuantState, pythonFloatRepr, type ComputeDtype, type QuantState4,
} from './quant-state.js';
export {
  storedLayout, weightModules, type DequantizeContext, type FrozenContext, type QuantFormat, type QuantizerLookup,
  type StoredIndex, type StoredLayout, type StoredTensors,
} from './format.js';
export { findQuantizer, quantMethodOf } from './lookup.js';
export { builtinQuantizers, FP4_FORMAT, INT8_FORMAT, NF4_FORMAT } from './builtin-formats.js';
export { checkDequantized, packedFromDequantize } from './packed.js';
