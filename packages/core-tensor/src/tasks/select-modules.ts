/**
 * Which weights `peft quantize` touches. Llama-family Linear projections by default;
 * `--target` widens or narrows the set, `--skip` removes modules from it.
 * Patterns match a module name exactly, as a dotted suffix (`mlp.down_proj`, `lm_head`),
 * or as a glob where `*` matches any run of characters (`model.layers.0.*`).
 */
export const DEFAULT_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`);
}

export function matchesModule(moduleName: string, pattern: string): boolean {
  if (pattern.includes('*')) return globToRegExp(pattern).test(moduleName);
  return moduleName === pattern || moduleName.endsWith(`.${pattern}`);
}

export interface ModuleSelection {
  targets: readonly string[];
  skip: readonly string[];
}

/** The module prefix of a quantizable weight tensor, or undefined when it stays as it is. */
export function selectModule(tensorName: string, shape: readonly number[], sel: ModuleSelection): string | undefined {
  if (!tensorName.endsWith('.weight') || shape.length !== 2) return undefined;
  const module = tensorName.slice(0, -'.weight'.length);
  if (!sel.targets.some((p) => matchesModule(module, p))) return undefined;
  if (sel.skip.some((p) => matchesModule(module, p))) return undefined;
  return module;
}
