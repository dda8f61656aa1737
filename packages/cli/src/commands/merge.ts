import { Args, Flags } from '@oclif/core';
import { printWarnings } from '../adapter.js';
import { PeftCommand } from '../base-command.js';
import { bytes, table } from '../format.js';
import { MERGE_PARAM_FLAGS, numbers, splitParams } from '../merge-args.js';
import { loadRegistry } from '../registry.js';

const many = (description: string) => Flags.string({ description, multiple: true });

export default class Merge extends PeftCommand {
  static override summary = 'Merge models (mergekit recipes and methods), merge LoRA adapters, or fold adapters into a base.';
  static override description =
    'Four forms: a mergekit recipe (`peft merge RECIPE.yml`); a model merge from flags (--method with --model ... and --base); ' +
    'folding (`peft merge BASE --adapter A ...`: writes a full model, a 4-bit base is dequantized or, with --requantize, re-quantized); ' +
    'and an adapter merge (--adapter A --adapter B --method cat|linear|ties|dare_linear|dare_ties, no BASE). Inputs stream tensor ' +
    'by tensor; 4-bit folders from `peft quantize` are dequantized on the fly. --check only reports compatibility.';

  static override examples = [
    '<%= config.bin %> merge recipe.yml --out merged',
    '<%= config.bin %> merge --method ties --base B --model M1 --model M2 --weight 0.5 --density 0.5 --out merged',
    '<%= config.bin %> merge ./base-nf4 --adapter runs/a/adapter --dtype bf16 --out folded',
    '<%= config.bin %> merge --adapter runs/a/adapter --adapter runs/b/adapter --method linear --weight 0.5 --weight 0.5 --out ab',
  ];

  static override args = { input: Args.string({ description: 'mergekit recipe (.yml / .yaml), or the base model folder to fold adapters into' }) };

  static override flags = {
    adapter: many('PEFT adapter folder (repeatable)'),
    base: Flags.string({ description: 'base model folder of a model merge' }),
    check: Flags.boolean({ description: 'only check that the inputs are compatible (architecture, tensors, shapes, vocabularies, tokenizers)' }),
    density: many('fraction kept by sparsifying methods (once, or once per input)'),
    dtype: Flags.string({ description: 'output dtype', options: ['bf16', 'f16', 'f32'] }),
    epsilon: many('della: spread of keep probabilities'),
    force: Flags.boolean({ description: 'replace --out if an earlier peft merge wrote it' }),
    gamma: many('breadcrumbs: fraction of largest values dropped'),
    lambda: many('scale of the merged task vector'),
    method: Flags.string({ char: 'm', description: 'merge method (see `peft methods --kind merger`), or cat for adapters' }),
    model: many('model folder to merge (repeatable)'),
    normalize: Flags.boolean({ description: 'divide by the sum of weights', allowNo: true }),
    out: Flags.string({ char: 'o', description: 'output folder (not needed with --check)' }),
    rank: Flags.integer({ description: 'adapter merges: rank of the result [default: the largest input rank]', min: 1 }),
    requantize: Flags.boolean({ description: 'folding into a 4-bit/int8 base: quantize the result again with the base\'s settings' }),
    rescale: Flags.boolean({ description: 'rescale kept values to the original L1 norm (dare, della)', allowNo: true }),
    seed: Flags.integer({ description: 'seed of random methods (dare, della) [default: 0]' }),
    set: many('other method parameter key=value (repeatable)'),
    t: many('slerp: interpolation factor'),
    weight: many('weight (once, or once per input)'),
  };

  public async run() {
    const { args, flags: f } = await this.parse(Merge);
    const core = await import('@peft/core-tensor');
    const fail = (m: string) => new core.PeftError('E_INPUT', m);
    const registry = await loadRegistry(this.config);
    const adapters = f.adapter ?? [];
    const needOut = () => f.out ?? (() => { throw fail('missing --out'); })();
    if (adapters.length && f.check) throw fail('--check applies to model merges (adapters are checked when merged)');
    if (adapters.length) {
      const weights = numbers('weight', f.weight, fail);
      if (args.input) {
        const r = await core.foldAdapters({ base: args.input, adapters, weights, dtype: f.dtype as 'bf16' | undefined, requantize: f.requantize, out: needOut(), force: f.force }, registry);
        printWarnings(r.warnings);
        if (!this.jsonEnabled()) this.log(`folded ${adapters.length} adapter(s) into ${r.foldedModules} modules: ${needOut()} (${bytes(r.bytesOut)}, ${r.seconds.toFixed(2)} s)`);
        return r;
      }
      if (!f.method) throw fail('an adapter merge needs --method (cat, linear, ties, dare_linear, dare_ties, ...)');
      const density = numbers('density', f.density, fail);
      if (density && density.length > 1) throw fail('adapter merges take one --density');
      const r = await core.mergeAdapters({
        adapters, weights, method: f.method, density: density?.[0], rank: f.rank, seed: f.seed, out: needOut(), force: f.force,
        options: core.parseSetPairs(f.set ?? []),
      }, registry);
      printWarnings(r.warnings);
      if (!this.jsonEnabled()) this.log(`merged ${r.adapters} adapters (${r.method}) over ${r.modules} modules at rank ${r.rank}: relative reconstruction error ${r.relError.toExponential(3)}`);
      return r;
    }
    const models = f.model ?? [];
    const values = Object.fromEntries(MERGE_PARAM_FLAGS.map((k) => [k, f[k]]));
    const set: Record<string, unknown> = { ...core.parseSetPairs(f.set ?? []) };
    if (f.normalize !== undefined) set.normalize = f.normalize;
    if (f.rescale !== undefined) set.rescale = f.rescale;
    const { global, perInput } = splitParams(values, models.length, set, fail);
    const recipe = args.input && /\.ya?ml$/i.test(args.input);
    if (args.input && !recipe) throw fail(`${args.input}: give a .yml/.yaml recipe, or adapters (--adapter) to fold into this base`);
    if (recipe && (models.length || f.method || f.base)) throw fail('give either a recipe or --method/--base/--model flags, not both');
    const plan = recipe
      ? await core.readMergeRecipe(args.input!)
      : core.planFromFlags({ method: f.method ?? (() => { throw fail('missing --method (or a recipe file)'); })(), base: f.base,
        models: models.map((path, i) => ({ path, params: perInput[i] })), params: global });
    if (f.check) {
      const report = await core.checkMerge(plan, registry);
      if (!this.jsonEnabled()) this.log(`compatible: ${report.inputs.length} inputs, ${report.tensors} tensors, ${report.numLayers} layers (${report.method})`);
      return report;
    }
    const live = !this.jsonEnabled() && process.stderr.isTTY;
    const r = await core.runMerge(plan, registry, {
      out: needOut(), seed: f.seed, dtype: f.dtype as 'bf16' | undefined, force: f.force, inputs: recipe ? [args.input!] : [],
      onProgress: live ? (e) => process.stderr.write(`\r\x1b[2Kmerging tensor ${e.index + 1}/${e.total}`) : undefined,
    });
    if (live) process.stderr.write('\n');
    if (this.jsonEnabled()) return r;
    this.log(table([
      ['method', r.method], ['output', `${r.out} (${r.tensors} tensors, ${bytes(r.bytesOut)}, ${r.dtype})`],
      ['read', `${bytes(r.bytesIn)} at ${r.mbPerSecond.toFixed(0)} MB/s`], ['time', `${r.seconds.toFixed(2)} s`],
    ]));
    return r;
  }
}
