/**
 * What an initialiser gets and gives. A and B are f32 row-major, A [r, in] and B [out, r]; the
 * data-dependent inits also return the new base weight: `residual` f32 [out, in] (PiSSA, OLoRA:
 * stored back in the base's own format) or `quantized`, an NF4 weight that replaces the base (LoftQ).
 * Not here: the inits themselves (one file each).
 */
import type { Quant4Data } from '@peft/core-tensor';

export interface InitInput {
  module: string;
  outFeatures: number;
  inFeatures: number;
  r: number;
  scale: number;
  seed: number;
  /** The base weight W [out, in] as f32 (dequantized when frozen); read only by the inits that need it. */
  weight: () => Float32Array;
}

export interface InitResult {
  A: Float32Array;
  B: Float32Array;
  residual?: Float32Array;
  quantized?: Quant4Data;
}
