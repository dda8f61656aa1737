import { Args, Flags } from '@oclif/core';
import { PeftCommand } from '../base-command.js';
import { bytes, count, table } from '../format.js';
import { numberFlag } from '../numbers.js';
import { loadRegistry } from '../registry.js';

export default class Compress extends PeftCommand {
  static override summary = 'Compress an adapter into a small .peftz container (ComPEFT), or --decompress one back to a PEFT folder.';
  static override description =
    'ComPEFT keeps the top --density fraction of the update by magnitude and stores each kept value as sign x alpha x std: ' +
    'positions as Rice-coded gaps plus one sign bit each. --method sparsify keeps the values (f16) instead. With --base, ' +
    'ADAPTER is a fine-tuned model folder and its difference from the base is compressed.';

  static override examples = [
    '<%= config.bin %> compress runs/a/adapter --density 0.1 --out runs/a-compeft',
    '<%= config.bin %> compress --decompress runs/a-compeft --out runs/a-restored',
    '<%= config.bin %> compress ./finetuned --base ./base --method sparsify --density 0.05 --out ft.peftz.d',
  ];

  static override args = { input: Args.string({ description: 'PEFT adapter folder (or, with --decompress, a compressed folder / .peftz file)', required: true }) };

  static override flags = {
    alpha: Flags.string({ description: 'ComPEFT scale: kept values become sign x alpha x std [default: 1]' }),
    base: Flags.string({ description: 'base model folder: compress a full model\'s difference from it' }),
    decompress: Flags.boolean({ description: 'turn a compressed container back into a PEFT folder' }),
    density: Flags.string({ description: 'fraction of values kept, in (0, 1] [default: 0.1]' }),
    force: Flags.boolean({ description: 'replace --out if it exists' }),
    method: Flags.string({ description: 'compressor from `peft methods`', default: 'compeft' }),
    out: Flags.string({ char: 'o', description: 'output folder', required: true }),
  };

  public async run() {
    const { args, flags } = await this.parse(Compress);
    const core = await import('@peft/core-tensor');
    const registry = await loadRegistry(this.config);
    if (flags.decompress) {
      const r = await core.decompressAdapter({ input: args.input, out: flags.out, base: flags.base, force: flags.force }, registry);
      if (!this.jsonEnabled()) this.log(`wrote ${r.out}: ${r.tensors} tensors, ${count(r.params)} parameters (${count(r.kept)} nonzero, ${r.method})`);
      return r;
    }
    const options: Record<string, unknown> = {};
    const density = await numberFlag('density', flags.density);
    const alpha = await numberFlag('alpha', flags.alpha);
    if (density !== undefined) options.density = density;
    if (alpha !== undefined) options.alpha = alpha;
    const r = await core.compressAdapter({ adapter: args.input, method: flags.method, options, base: flags.base, out: flags.out, force: flags.force }, registry);
    if (this.jsonEnabled()) return r;
    this.log(table([
      ['method', `${r.method} (density ${r.density})`],
      ['parameters', `${count(r.params)} in ${r.tensors} tensors, ${count(r.kept)} kept`],
      ['size', `${bytes(r.bytes)} (${r.ratio.toFixed(1)}x smaller than fp16)`],
      ['bits/param', `${r.bitsPerParam.toFixed(3)} (entropy bound ${r.entropyBitsPerParam.toFixed(3)})`],
      ['time', `${r.seconds.toFixed(2)} s`],
      ['output', flags.out],
    ]));
    return r;
  }
}
