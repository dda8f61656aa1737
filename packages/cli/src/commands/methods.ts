import { Flags } from '@oclif/core';
import { describeOption, ENTRY_KINDS, type EntryKind } from '@peft/core-tensor';
import { PeftCommand } from '../base-command.js';
import { loadRegistry } from '../registry.js';

export default class Methods extends PeftCommand {
  static override summary = 'List the methods that the core and installed plugins provide, with their options.';
  static override examples = ['<%= config.bin %> methods', '<%= config.bin %> methods --kind quantizer --json'];

  static override flags = {
    kind: Flags.string({ description: 'only this kind', options: [...ENTRY_KINDS] }),
  };

  public async run() {
    const { flags } = await this.parse(Methods);
    const registry = await loadRegistry(this.config);
    const kinds = (flags.kind ? [flags.kind] : ENTRY_KINDS) as EntryKind[];
    const result = Object.fromEntries(
      kinds.map((kind) => [kind, registry.list(kind).map(({ name, description, options }) => ({ name, description, options }))]),
    );
    if (this.jsonEnabled()) return result;
    for (const [kind, entries] of Object.entries(result)) {
      if (!entries.length) continue;
      this.log(`${kind}s:`);
      for (const e of entries) {
        this.log(`  ${e.name.padEnd(12)} ${e.description}`);
        for (const [key, spec] of Object.entries(e.options)) {
          const def = spec.default === undefined ? '' : ` (default ${JSON.stringify(spec.default)})`;
          this.log(`      --set ${key}=<${describeOption(spec)}>${def}  ${spec.description}`);
        }
      }
    }
    return result;
  }
}
