/**
 * Which options `peft train --set key=value` sets: the method's or the optimizer's. `optimizer.KEY=V`
 * always goes to the optimizer; a plain KEY goes to the method unless only the optimizer's schema has
 * it (`--optimizer galore --set rank=4` next to LoRA's `r`). A key both schemas have (target_modules)
 * stays the method's; the optimizer's then needs the prefix. Unknown keys go to the method, whose
 * check names the valid ones.
 */
import type { OptionsSchema } from '@peft/core-tensor';

const PREFIX = 'optimizer.';

export function routeSetPairs(pairs: Readonly<Record<string, string>>, method: OptionsSchema, optimizer: OptionsSchema):
  { method: Record<string, string>; optimizer: Record<string, string> } {
  const out = { method: {} as Record<string, string>, optimizer: {} as Record<string, string> };
  for (const [key, value] of Object.entries(pairs)) {
    if (key.startsWith(PREFIX)) out.optimizer[key.slice(PREFIX.length)] = value;
    else if (!Object.hasOwn(method, key) && Object.hasOwn(optimizer, key)) out.optimizer[key] = value;
    else out.method[key] = value;
  }
  return out;
}
