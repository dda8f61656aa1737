/**
 * @peft/plugin-prompt: soft-prompt methods. PEFT-exact and file-compatible with Hugging Face PEFT:
 * `prompt-tuning` [PROMPT_TUNING], `prefix-tuning` [PREFIX_TUNING], `p-tuning` [P_TUNING]; and two with
 * their own documented formats: `dept` [PROMPT_TUNING_LORA, DePT's type] and `ntk-prefix` [NTK_PREFIX].
 * `register(registry)` adds them; the CLI does that through the oclif hook (hook.ts).
 * Not here: the implementation (methods/, encoders.ts, hooks.ts, ntk-attention.ts, format.ts, peft-config.ts).
 */
import type { MethodDef, Registry } from '@peft/core-tensor';
import { deptMethod } from './methods/dept.js';
import { ntkPrefixMethod } from './methods/ntk-prefix.js';
import { pTuningMethod } from './methods/p-tuning.js';
import { prefixTuningMethod } from './methods/prefix-tuning.js';
import { promptTuningMethod } from './methods/prompt-tuning.js';

export const PROMPT_METHODS: readonly MethodDef[] = [promptTuningMethod, prefixTuningMethod, pTuningMethod, deptMethod, ntkPrefixMethod];

export function register(registry: Registry): void {
  for (const m of PROMPT_METHODS) registry.method(m);
}

export { promptTuningMethod, prefixTuningMethod, pTuningMethod, deptMethod, ntkPrefixMethod };
export { PromptAdapter } from './adapter.js';
export { promptDims, type PromptDims } from './dims.js';
export { PEFT_VERSION } from './peft-config.js';
export { PROMPT_KEY, DEPT_A_KEY, DEPT_B_KEY, ntkKey } from './format.js';
export { ntkAttention, NtkAttention } from './ntk-attention.js';
export { textInitIds } from './init.js';
