/**
 * `--adapter DIR` for eval / generate. The core finds the method registered for the folder's
 * `peft_type` (resolveAdapter in core tasks/adapters/apply.ts, through registry.methodFor) before any
 * model is loaded; the CLI knows no method by name. Tensors PEFT would not apply are not applied: each
 * such warning is one line on stderr as it happens and is collected for the command's --json output.
 */
import type { ApplyAdapter, Registry } from '@peft/core-tensor';

/** Checks the adapter and finds its method; the returned function applies it, adding to `warnings`. */
export async function resolveAdapter(registry: Registry, dir: string, warnings: string[]): Promise<ApplyAdapter> {
  const core = await import('@peft/core-tensor');
  const adapter = await core.resolveAdapter(dir, registry);
  return async (model) => {
    for (const w of await adapter.apply(model)) {
      warnings.push(w);
      process.stderr.write(`Warning: ${w}\n`);
    }
  };
}

/** Warning lines of a report on stderr, one each. */
export function printWarnings(warnings: readonly string[]): void {
  for (const w of warnings) process.stderr.write(`Warning: ${w}\n`);
}
