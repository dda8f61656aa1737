import { Args } from '@oclif/core';
import { PeftCommand } from '../base-command.js';
import { bytes, count, table } from '../format.js';
import { loadRegistry } from '../registry.js';

export default class Inspect extends PeftCommand {
  static override summary = 'Show what a model folder, quantized folder, PEFT adapter folder or safetensors file holds.';
  static override examples = [
    '<%= config.bin %> inspect ./tiny-llama',
    '<%= config.bin %> inspect ./tiny-llama-nf4 --json',
    '<%= config.bin %> inspect ./tiny-llama/model.safetensors',
  ];

  static override args = {
    path: Args.string({ description: 'model folder, adapter folder, compressed adapter (.peftz or its folder) or .safetensors file', required: true }),
  };

  public async run() {
    const { args } = await this.parse(Inspect);
    const { inspectPath } = await import('@peft/core-tensor');
    const r = await inspectPath(args.path, { registry: await loadRegistry(this.config) });
    if (this.jsonEnabled()) return r;
    const rows: string[][] = [['path', r.path]];
    if (r.architecture) rows.push(['architecture', `${r.architecture} (${r.modelType ?? '?'})`]);
    if (r.shape && Object.keys(r.shape).length) {
      rows.push(['config', Object.entries(r.shape).map(([k, v]) => `${k}=${v}`).join(' ')]);
    }
    rows.push(['files', String(r.files)], ['tensors', String(r.tensors)], ['parameters', count(r.parameters)]);
    rows.push(['bytes', bytes(r.bytes)]);
    const dtypes = Object.entries(r.dtypes).map(([d, c]) => `${d} ${c!.tensors} (${bytes(c!.bytes)})`);
    if (dtypes.length) rows.push(['dtypes', dtypes.join(', ')]);
    if (r.compressed) {
      const c = r.compressed;
      rows.push(['compressed', `${c.method} density=${+c.density.toPrecision(3)} kept=${count(c.kept)} ${c.bitsPerParam.toFixed(3)} bits/param (${c.ratioVsFp16.toFixed(1)}x smaller than fp16)`]);
    } else if (r.adapter) {
      const { dir: _dir, ...a } = r.adapter;
      rows.push(['adapter', describe(a)]);
      const p = r.prompt;
      if (p) rows.push(['prompt', `virtual_tokens=${p.virtualTokens} init=${p.init} ${Object.entries(p.shapes).map(([k, s]) => `${k}=[${s.join(', ')}]`).join(' ')}`]);
    } else {
      const q = r.quantization;
      rows.push(['quantization', q ? describe(q) : 'none']);
    }
    if (r.metadata) rows.push(['metadata', JSON.stringify(r.metadata)]);
    this.log(table(rows));
    return r;
  }
}

function describe(q: object): string {
  return Object.entries(q).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`).join(' ');
}
