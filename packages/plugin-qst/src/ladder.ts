/**
 * The side network (the "ladder") of QST and LST as one Module whose parameter names are the adapter's
 * tensor keys, with the forward each repo computes from the backbone's per-layer states:
 *
 * QST, YouAreSpecialToMe/QST modeling_llama_qst.py (QSTLlamaModel.forward, QSTLlamaForCausalLM.forward):
 *   s = downsample[0](embeddings)
 *   per layer i: z = sigmoid(z[i]); s = (1 - z) * downsample[i](h_i) + z * s; s = qst_layers[i](s)
 *   s = norm_qst(s);  zh = sigmoid(lm_head_z);  out = (1 - zh) * upsample(s) + zh * norm(h_L)
 * with h_i the raw output of backbone layer i (downsample[0] reads both the embeddings and h_0).
 * LST, ylsung/Ladder-Side-Tuning seq2seq/third_party/models/t5/modeling_side_t5.py (T5Stack.forward,
 * use_gate "learnable", add_residual_after False; T5ForConditionalGeneration: side_final_upsample):
 *   s = side_first_downsample(embeddings)
 *   per layer i: g = sigmoid(side_gate_params[i] / T); s = g * s + (1 - g) * side_downsamples[i](h_i); s = side_block[i](s)
 *   out = side_final_upsample(final_side_layer_norm(s))          (no merge_last: the backbone's output is not mixed in)
 * Keys (module paths of QSTLlamaForCausalLM; LST's T5Stack names under `model.`, the decoder stack's place):
 *   qst: model.downsample.{i}.*, model.z.{i}, model.qst_layers.{i}.*, model.norm_qst.weight, upsample.*, lm_head_z
 *   lst: model.side_first_downsample.*, model.side_downsamples.{i}.*, model.side_gate_params.{i},
 *        model.side_block.{i}.*, model.final_side_layer_norm.weight, side_final_upsample.*
 * Initial values are the repos': torch's default Linear init, norms at one, z 0.5, lm_head_z 1, LST
 * gates gate_alpha (LST's Fisher-pruned initialisation of the side blocks from the backbone is not done).
 * Not here: where the rungs come from (features.ts), the hook around it (head.ts).
 */
import {
  Attention, Block, Mlp, Module, ModuleList, ops, RMSNorm, type KvCache, type Linear, type LlamaConfig,
  type RopeInput, type Tensor,
} from '@peft/core-tensor';
import { applyDownsample, downsampleFrom, Group, linearFrom, oneMinus, ParamList, pool, type Downsample, type ParamSource } from './modules.js';
import { GRADIENT_FREE, type SideSettings } from './options.js';

type KernelOptions = ops.KernelOptions;

/** What the ladder reads from the backbone (features.ts provides it, from the states or the cache). */
export interface LadderInput {
  /** The embeddings [B, T, C] (states[0]). */
  embeds: Tensor;
  /** Layer i's rung: its raw output h_i, pooled [B, T, C/r] for a gradient-free downsample, else [B, T, C]. */
  rung(i: number): Tensor;
  /** The backbone's final normed state [B, T, C] (QST's head gate mixes it in). */
  final(): Tensor;
}

/** LlamaDecoderLayer at the side width: the core Block with `prefix` naming its tensors. */
function blockFrom(src: ParamSource, prefix: string, cfg: LlamaConfig, index: number): Block {
  const { hiddenSize: C, numHeads: nh, numKvHeads: nkv, headDim: hd, intermediateSize: I, qkvBias, oBias, mlpBias } = cfg;
  const lin = (name: string, out: number, inF: number, bias: boolean) => linearFrom(src, `${prefix}.${name}`, inF, out, bias);
  const attn = new Attention(cfg, lin('self_attn.q_proj', nh * hd, C, qkvBias), lin('self_attn.k_proj', nkv * hd, C, qkvBias),
    lin('self_attn.v_proj', nkv * hd, C, qkvBias), lin('self_attn.o_proj', C, nh * hd, oBias));
  const mlp = new Mlp(lin('mlp.gate_proj', I, C, mlpBias), lin('mlp.up_proj', I, C, mlpBias), lin('mlp.down_proj', C, I, mlpBias));
  const norm = (name: string) => new RMSNorm(src(`${prefix}.${name}.weight`, [C], { kind: 'full', value: 1 }), cfg.rmsNormEps);
  return new Block(index, attn, mlp, norm('input_layernorm'), norm('post_attention_layernorm'));
}

/** Registers the module-backed downsamples in a ModuleList (pools have nothing to register). */
function downsampleList(group: Group, name: string, downs: Downsample[]): void {
  const list = group.set(name, new ModuleList());
  for (const d of downs) if (d.kind === 'module') list.push(d.module);
}

export class SideNetwork extends Module {
  readonly layers: Block[] = [];
  readonly downs: Downsample[] = [];
  /** LST's side_first_downsample (QST reuses downs[0] on the embeddings). */
  readonly first: Downsample | undefined;
  readonly gates: Tensor[];
  readonly norm: RMSNorm;
  readonly upsample: Linear;
  readonly headGate: Tensor | undefined;

  constructor(readonly settings: SideSettings, readonly base: LlamaConfig, readonly side: LlamaConfig, src: ParamSource) {
    super();
    const qst = settings.method === 'qst';
    const { hiddenSize: C, numLayers: L } = base;
    const { r, adapterDim, downsample } = settings;
    const w = side.hiddenSize;
    const model = this.addModule('model', new Group());
    const names = qst
      ? { downs: 'downsample', gates: 'z', layers: 'qst_layers', norm: 'norm_qst', up: 'upsample' }
      : { downs: 'side_downsamples', gates: 'side_gate_params', layers: 'side_block', norm: 'final_side_layer_norm', up: 'side_final_upsample' };
    // LST keeps a Linear first downsample even when the others pool (VL-T5/src/my_transformers/modeling_t5.py).
    const firstKind = GRADIENT_FREE.has(downsample) ? 'linear' : downsample;
    this.first = qst ? undefined : downsampleFrom(src, 'model.side_first_downsample', firstKind, C, r, adapterDim);
    if (this.first?.kind === 'module') model.set('side_first_downsample', this.first.module);
    for (let i = 0; i < L; i++) this.downs.push(downsampleFrom(src, `model.${names.downs}.${i}`, downsample, C, r, adapterDim));
    downsampleList(model, names.downs, this.downs);
    this.gates = Array.from({ length: L }, (_, i) => qst
      ? src(`model.z.${i}`, [w], { kind: 'full', value: 0.5 })
      : src(`model.side_gate_params.${i}`, [1], { kind: 'full', value: settings.gateAlpha }));
    model.set(names.gates, new ParamList(this.gates));
    const layers = model.set(names.layers, new ModuleList<Block>());
    for (let i = 0; i < L; i++) this.layers.push(layers.push(blockFrom(src, `model.${names.layers}.${i}`, side, i)));
    this.norm = model.set(names.norm, new RMSNorm(src(`model.${names.norm}.weight`, [w], { kind: 'full', value: 1 }), side.rmsNormEps));
    this.upsample = this.addModule(names.up, linearFrom(src, names.up, w, C, true));
    this.headGate = qst ? this.addParameter('lm_head_z', src('lm_head_z', [C], { kind: 'full', value: 1 })) : undefined;
  }

  /** input -> [B, T, C] for the LM head; `kv` is the side layers' own cache (generation). */
  forward(input: LadderInput, rot: RopeInput, kv: KvCache | undefined, opts?: KernelOptions): Tensor {
    return this.settings.method === 'qst' ? this.#qst(input, rot, kv, opts) : this.#lst(input, rot, kv, opts);
  }

  /** downsample i applied to rung i (the rung is already pooled for a gradient-free downsample). */
  #down(d: Downsample, rung: Tensor, opts?: KernelOptions): Tensor {
    return d.kind === 'module' ? d.module.forward(rung, opts) : rung;
  }

  #qst(input: LadderInput, rot: RopeInput, kv: KvCache | undefined, opts?: KernelOptions): Tensor {
    const d0 = this.downs[0];
    let s = d0.kind === 'module' ? d0.module.forward(input.embeds, opts) : pool(input.embeds, d0.kind, d0.r);
    this.layers.forEach((layer, i) => {
      const z = ops.sigmoid(this.gates[i]);
      s = ops.add(ops.mul(oneMinus(z), this.#down(this.downs[i], input.rung(i), opts)), ops.mul(z, s));
      s = layer.forward(s, rot, kv, opts);
    });
    s = this.norm.forward(s, opts);
    const zh = ops.sigmoid(this.headGate!);
    return ops.add(ops.mul(oneMinus(zh), this.upsample.forward(s, opts)), ops.mul(zh, input.final()));
  }

  #lst(input: LadderInput, rot: RopeInput, kv: KvCache | undefined, opts?: KernelOptions): Tensor {
    let s = applyDownsample(this.first!, input.embeds, opts);
    this.layers.forEach((layer, i) => {
      const g = ops.sigmoid(ops.mulScalar(this.gates[i], 1 / this.settings.gateT));
      s = ops.add(ops.mul(g, s), ops.mul(oneMinus(g), this.#down(this.downs[i], input.rung(i), opts)));
      s = layer.forward(s, rot, kv, opts);
    });
    return this.upsample.forward(this.norm.forward(s, opts), opts);
  }
}
