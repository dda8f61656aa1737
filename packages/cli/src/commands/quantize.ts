import { Args, Flags } from '@oclif/core';
import { PeftCommand } from '../base-command.js';
import { loadRegistry } from '../registry.js';
import { quantizeOptions, runQuantize, printSummary } from '../quantize-run.js';

export default class Quantize extends PeftCommand {
  static override summary = 'Quantize the Linear weights of a model folder (bitsandbytes NF4 / FP4 / int8, or a plugin quantizer).';
  static override description =
    'Streams the model tensor by tensor and writes a folder that transformers + bitsandbytes load: packed 4-bit weights with ' +
    'absmax / quant_map / quant_state tensors (or int8 + SCB), and config.json with quantization_config. ' +
    'Embeddings, norms and lm_head stay as they are unless named in --target.';

  static override examples = [
    '<%= config.bin %> quantize ./tiny-llama --out ./tiny-llama-nf4',
    '<%= config.bin %> quantize ./tiny-llama --out ./tiny-llama-fp4 --type fp4 --blocksize 128 --no-double-quant',
    '<%= config.bin %> quantize ./tiny-llama --out ./tiny-llama-int8 --type int8 --skip "model.layers.0.*"',
  ];

  static override args = {
    model: Args.string({ description: 'Hugging Face model folder (config.json + safetensors)', required: true }),
  };

  static override flags = {
    backend: Flags.string({ description: 'kernel backend', options: ['auto', 'native', 'reference'], default: 'auto' }),
    blocksize: Flags.integer({ description: 'elements per absmax block (4-bit types; 32..4096, power of two) [default: 64]' }),
    'compute-dtype': Flags.string({ description: 'dtype of matmuls at inference [default: bf16]', options: ['bf16', 'f16', 'f32'] }),
    'double-quant': Flags.boolean({ description: 'quantize the absmax values again (4-bit types) [default: true]', allowNo: true }),
    force: Flags.boolean({ description: 'replace --out if an earlier peft quantize wrote it', default: false }),
    out: Flags.string({ char: 'o', description: 'output folder (written atomically)', required: true }),
    set: Flags.string({ description: 'quantizer option key=value (see `peft methods`)', multiple: true, default: [] }),
    skip: Flags.string({ description: 'modules to leave unquantized: names, dotted suffixes or globs, comma-separated' }),
    target: Flags.string({ description: 'modules to quantize (default: q,k,v,o,gate,up,down projections), comma-separated' }),
    type: Flags.string({ char: 't', description: 'quantizer (built-in nf4, fp4, int8, or one a plugin adds)', default: 'nf4' }),
  };

  public async run() {
    const { args, flags } = await this.parse(Quantize);
    const registry = await loadRegistry(this.config);
    const quantizer = registry.get('quantizer', flags.type);
    const options = await quantizeOptions(quantizer, flags);
    const summary = await runQuantize({ model: args.model, flags, quantizer, options, json: this.jsonEnabled() });
    if (!this.jsonEnabled()) this.log(printSummary(summary, flags.out));
    return summary;
  }
}
