/**
 * The side network's small modules, named as their torch counterparts so the module tree's parameter
 * names are the repos' state-dict keys: LayerNorm (nn.LayerNorm), the downsamples (QST's AdapterLinear
 * in QSTConfig.py: adapter_A -> activation -> adapter_B -> post_layer_norm; LST's nn.Linear; the
 * gradient-free MaxPool1d(r) / AdaptiveAvgPool1d(h/r)), a ParameterList, and a plain container.
 * Every tensor comes from a ParamSource: freshly initialised (training) or read from an adapter file
 * (inference), so one builder names and shapes the tensors for both.
 * Not here: the ladder that wires them (ladder.ts).
 */
import { Linear, Module, noGrad, ops, PeftError, type Tensor } from '@peft/core-tensor';
import type { DownsampleKind } from './options.js';

type KernelOptions = ops.KernelOptions;

/** How a fresh tensor starts: torch's defaults (nn.Linear: U(+-1/sqrt(fan_in)) for weight and bias), or a constant. */
export type Init = { kind: 'uniform'; bound: number } | { kind: 'full'; value: number };

/** Makes (or loads) the tensor with this full name and shape. */
export type ParamSource = (name: string, shape: readonly number[], init: Init) => Tensor;

/** A Module whose children are set by name (`model` of QSTLlamaModel, the ladder's parts). */
export class Group extends Module {
  set<M extends Module>(name: string, m: M): M {
    return this.addModule(name, m);
  }
}

/** nn.ParameterList: parameters named 0, 1, ... (QST's `z`, LST's `side_gate_params`). */
export class ParamList extends Module {
  readonly items: Tensor[];
  constructor(items: Tensor[]) {
    super();
    this.items = items.map((t, i) => this.addParameter(String(i), t));
  }
}

/** nn.LayerNorm(C): weight (ones) and bias (zeros), eps 1e-5. */
export class LayerNorm extends Module {
  constructor(readonly weight: Tensor, readonly bias: Tensor, readonly eps = 1e-5) {
    super();
    this.addParameter('weight', weight);
    this.addParameter('bias', bias);
  }

  forward(x: Tensor): Tensor {
    return ops.layernorm(x, this.weight, this.bias, this.eps);
  }
}

/** nn.Linear(inF, out) from the source, `prefix` its module path. */
export function linearFrom(src: ParamSource, prefix: string, inF: number, out: number, bias: boolean): Linear {
  const init: Init = { kind: 'uniform', bound: 1 / Math.sqrt(inF) };
  return new Linear(src(`${prefix}.weight`, [out, inF], init), bias ? src(`${prefix}.bias`, [out], init) : undefined);
}

/**
 * QST's AdapterLinear as qst.py configures it: adapter_A Linear(h, adapter_dim, bias=False) -> swish ->
 * adapter_B Linear(adapter_dim, h/r, bias=False) -> post_layer_norm LayerNorm(h/r). Both Linears start
 * from kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in)). Its dropout is an identity: QSTConfig.py picks
 * nn.Identity when dropout > 0 and Dropout(p=0) otherwise.
 */
export class AdapterDown extends Module {
  readonly adapter_A: Linear;
  readonly adapter_B: Linear;
  readonly post_layer_norm: LayerNorm;

  constructor(src: ParamSource, prefix: string, inF: number, dim: number, out: number) {
    super();
    this.adapter_A = this.addModule('adapter_A', linearFrom(src, `${prefix}.adapter_A`, inF, dim, false));
    this.adapter_B = this.addModule('adapter_B', linearFrom(src, `${prefix}.adapter_B`, dim, out, false));
    const ln = new LayerNorm(src(`${prefix}.post_layer_norm.weight`, [out], { kind: 'full', value: 1 }),
      src(`${prefix}.post_layer_norm.bias`, [out], { kind: 'full', value: 0 }));
    this.post_layer_norm = this.addModule('post_layer_norm', ln);
  }

  forward(x: Tensor, opts?: KernelOptions): Tensor {
    return this.post_layer_norm.forward(this.adapter_B.forward(ops.silu(this.adapter_A.forward(x, opts)), opts));
  }
}

/**
 * x [.., C] -> [.., C / r]: MaxPool1d(kernel r, stride r) or AdaptiveAvgPool1d(C / r) over the channels
 * (with r | C both reduce each run of r channels). No parameters and no gradient.
 */
export function pool(x: Tensor, kind: 'maxpool' | 'avgpool', r: number): Tensor {
  const C = x.shape[x.rank - 1];
  const w = C / r;
  return noGrad(() => {
    const runs = x.reshape([...x.shape.slice(0, -1), w, r]);
    const y = kind === 'maxpool' ? ops.max(runs, -1) : ops.mean(runs, -1);
    return y;
  });
}

/** A downsample [.., h] -> [.., h/r]: a module with parameters, or a pool (gradient-free). */
export type Downsample = { kind: 'module'; module: Linear | AdapterDown } | { kind: 'maxpool' | 'avgpool'; r: number };

/** `linear` has a bias, as LST's scripts/ladder_side_tuning_base.sh sets add_bias_sampling True. */
export function downsampleFrom(src: ParamSource, prefix: string, kind: DownsampleKind, h: number, r: number, adapterDim: number): Downsample {
  if (kind === 'maxpool' || kind === 'avgpool') return { kind, r };
  if (kind === 'linear') return { kind: 'module', module: linearFrom(src, prefix, h, h / r, true) };
  if (kind === 'adapter') return { kind: 'module', module: new AdapterDown(src, prefix, h, adapterDim, h / r) };
  throw new PeftError('E_INPUT', `unknown downsample ${JSON.stringify(kind)}`);
}

export function applyDownsample(d: Downsample, x: Tensor, opts?: KernelOptions): Tensor {
  return d.kind === 'module' ? d.module.forward(x, opts) : pool(x, d.kind, d.r);
}

/** 1 - t (the complementary gate weight). */
export const oneMinus = (t: Tensor): Tensor => ops.addScalar(ops.neg(t), 1);
