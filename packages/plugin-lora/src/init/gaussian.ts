/**
 * init_lora_weights="gaussian" (LoraLayer.reset_lora_parameters, huggingface/peft
 * src/peft/tuners/lora/layer.py): nn.init.normal_(lora_A, std=1 / r), B = 0 — std is 1/r, not 1/sqrt(r).
 * Not here: the default kaiming init (kaiming.ts).
 */
import { randn } from '@peft/core-tensor';
import type { InitInput, InitResult } from './types.js';

export function gaussianInit(x: InitInput): InitResult {
  const t = randn([x.r * x.inFeatures], { std: 1 / x.r, seed: x.seed });
  const A = Float32Array.from(t.data);
  t.dispose();
  return { A, B: new Float32Array(x.outFeatures * x.r) };
}
