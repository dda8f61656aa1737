/**
 * What folding needs to know about a quantized base (a folder from `peft quantize` or
 * transformers + bitsandbytes): which modules are stored quantized and under which tensor
 * names, the registered quantizer that reads them, the options that re-quantize them with the
 * same settings, and the dtype their weights had before quantization.
 * Not here: streaming and writing (fold.ts), the formats themselves (quant/).
 */
import type { Dtype, RawTensor } from '../../dtype.js';
import { inputError } from '../../errors.js';
import type { ModelFolder } from '../../io/model-folder.js';
import { decodeQuantState } from '../../quant/quant-state.js';
import { resolveOptions, type ResolvedOptions } from '../../plugin/options.js';
import type { QuantizerDef } from '../../plugin/quantizer.js';
import type { Registry } from '../../plugin/registry.js';

export interface QuantModule {
  /** HF module path, e.g. `model.layers.0.mlp.up_proj`. */
  prefix: string;
  type: 'nf4' | 'fp4' | 'int8';
  /** Every stored tensor of the module (packed weight and statistics). */
  names: string[];
}

const STATE_RE = /^(.+)\.weight\.quant_state\.bitsandbytes__(nf4|fp4)$/;
const SCB_RE = /^(.+)\.SCB$/;

/** Quantized modules by prefix, and the module owning each of their tensor names. */
export function findQuantModules(base: ModelFolder): { modules: Map<string, QuantModule>; owner: Map<string, string> } {
  const modules = new Map<string, QuantModule>();
  for (const name of base.tensorNames) {
    const s = STATE_RE.exec(name);
    if (s) modules.set(s[1], { prefix: s[1], type: s[2] as 'nf4' | 'fp4', names: [] });
    const i = SCB_RE.exec(name);
    if (i && base.has(`${i[1]}.weight`) && base.info(`${i[1]}.weight`).dtype === 'I8') modules.set(i[1], { prefix: i[1], type: 'int8', names: [] });
  }
  const owner = new Map<string, string>();
  for (const m of modules.values()) {
    const mine = m.type === 'int8'
      ? [`${m.prefix}.weight`, `${m.prefix}.SCB`, `${m.prefix}.weight_format`].filter((n) => base.has(n))
      : base.tensorNames.filter((n) => n === `${m.prefix}.weight` || n.startsWith(`${m.prefix}.weight.`));
    m.names = mine;
    for (const n of mine) owner.set(n, m.prefix);
  }
  return { modules, owner };
}

const TORCH_DTYPES: Record<string, Dtype> = { bfloat16: 'BF16', float16: 'F16', float32: 'F32' };
const COMPUTE: Record<string, string> = { bfloat16: 'bf16', float16: 'f16', float32: 'f32' };

function stateOf(m: QuantModule, get: (n: string) => RawTensor | undefined) {
  const key = m.names.find((n) => STATE_RE.test(n))!;
  return decodeQuantState(key, get(key)!.data);
}

/** The dtype a dequantized weight is written in by default: quant_state's `dtype` (4-bit), else BF16. */
export function originalDtype(m: QuantModule, get: (n: string) => RawTensor | undefined): Dtype {
  if (m.type === 'int8') return 'BF16';
  return TORCH_DTYPES[stateOf(m, get).dtype] ?? 'BF16';
}

/** The registered quantizer of the module's format, with the options that reproduce its settings. */
export function quantizerFor(
  m: QuantModule, get: (n: string) => RawTensor | undefined, qc: Record<string, unknown>, registry: Registry, where: string,
): { q: QuantizerDef; options: ResolvedOptions } {
  if (!registry.has('quantizer', m.type)) throw inputError('E_INPUT', `no quantizer "${m.type}" is registered to read ${m.prefix}`, where);
  const q = registry.get('quantizer', m.type);
  if (m.type === 'int8') {
    const threshold = typeof qc.llm_int8_threshold === 'number' ? qc.llm_int8_threshold : undefined;
    return { q, options: resolveOptions(q.name, q.options, threshold === undefined ? {} : { threshold }) };
  }
  const s = stateOf(m, get);
  const given: Record<string, unknown> = { blocksize: s.blocksize, double_quant: s.nested_offset !== undefined };
  const compute = COMPUTE[String(qc.bnb_4bit_compute_dtype)];
  if (compute) given.compute_dtype = compute;
  return { q, options: resolveOptions(q.name, q.options, given) };
}
