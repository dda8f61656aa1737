/**
 * PEFT's default init (init_lora_weights=True; LoraLayer.reset_lora_parameters in
 * huggingface/peft src/peft/tuners/lora/layer.py): A = kaiming_uniform_(a=sqrt(5)), B = 0, so the
 * adapter starts as the identity. kaiming_uniform_ with a = sqrt 5 has gain sqrt(2 / (1 + a²)) =
 * sqrt(1/3) and bound gain·sqrt(3 / fan_in) = 1 / sqrt(in): A ~ U(-1/sqrt(in), 1/sqrt(in)).
 * init_lora_weights=False leaves both factors at nn.Linear's own init, the same kaiming bound over
 * each one's fan-in: B ~ U(-1/sqrt(r), 1/sqrt(r)) too, so the adapter does NOT start at zero.
 * Not here: the data-dependent inits (pissa.ts, olora.ts, loftq.ts).
 */
import { uniform } from '@peft/core-tensor';
import type { InitInput, InitResult } from './types.js';

/** Seeded U(-bound, bound) values, f32 [n]. */
export function uniformValues(n: number, bound: number, seed: number): Float32Array {
  const t = uniform([n], -bound, bound, { seed });
  const v = Float32Array.from(t.data);
  t.dispose();
  return v;
}

export function kaimingInit(x: InitInput): InitResult {
  return { A: uniformValues(x.r * x.inFeatures, 1 / Math.sqrt(x.inFeatures), x.seed), B: new Float32Array(x.outFeatures * x.r) };
}

/** init_lora_weights=False: both factors random (nn.Linear's reset_parameters). */
export function randomInit(x: InitInput): InitResult {
  return {
    A: uniformValues(x.r * x.inFeatures, 1 / Math.sqrt(x.inFeatures), x.seed),
    B: uniformValues(x.outFeatures * x.r, 1 / Math.sqrt(x.r), x.seed ^ 0x5bd1e995),
  };
}
