/**
 * DoRA (Liu et al. 2024, https://arxiv.org/abs/2402.09353) as PEFT computes it
 * (huggingface/peft src/peft/tuners/lora/dora.py DoraLinearLayer, variants.py DoraLinearVariant):
 *
 *   weight_norm     = ||W + s·B·A|| per output row, DETACHED (paper §4.3: treated as a constant)
 *   mag_norm_scale  = m / weight_norm                                   [out], gradient flows to m only
 *   result_dora     = (mag_norm_scale - 1) · base_result + mag_norm_scale · B(A(x_d)) · s
 *   y               = base(x) + result_dora  =  mag_norm_scale · (W x + s B A x_d) + bias   (no dropout)
 *
 * base_result is base(x) - bias when dropout is off (identity or eval); with dropout on, PEFT
 * recomputes it on the dropped input, F.linear(x_d, W), without bias. m starts as ||W + s B A||
 * (initialMagnitude). W is read in row blocks (a 4-bit base is dequantized a chunk at a time).
 * Not here: plain LoRA (layer.ts), merging DoRA into W (core / plugin-merge via delta()).
 */
import { noGrad, ops, rowNorms, tensor, type Tensor } from '@peft/core-tensor';
import type { LoraLinear } from '../layer.js';

type KernelOptions = ops.KernelOptions;

export interface DoraInputs {
  /** the LoRA branch's input (dropped when `dropped`) [.., in] */
  x: Tensor;
  dropped: boolean;
  /** base(x), bias included [.., out] */
  result: Tensor;
  /** B(A(x)) without scaling [.., out] */
  lora: Tensor;
  /** [out] */
  magnitude: Tensor;
}

/** ||W + s·B·A|| per row for the layer's current A, B: DoRA's m at initialisation. f64 [out]. */
export function initialMagnitude(layer: LoraLinear): Float64Array {
  return noGrad(() => rowNorms(layer.base_layer.weight, layer.lora_A.data, layer.lora_B.data, layer.spec.r, layer.spec.scale));
}

export function doraForward(layer: LoraLinear, d: DoraInputs, opts?: KernelOptions): Tensor {
  const base = layer.base_layer;
  // weight_norm.detach(): a constant, so no gradient reaches A or B through it
  const norm = tensor(initialMagnitude(layer), [layer.outFeatures], { dtype: d.magnitude.dtype === 'f64' ? 'f64' : 'f32' });
  const scale = ops.div(d.magnitude, norm); // mag_norm_scale [out]
  let baseResult: Tensor;
  if (!d.dropped) baseResult = base.bias ? ops.sub(d.result, base.bias) : d.result;
  else baseResult = ops.linear(d.x, base.weight, undefined, opts);
  const dora = ops.add(
    ops.mul(ops.addScalar(scale, -1), baseResult),
    ops.mulScalar(ops.mul(scale, d.lora), layer.spec.scale),
  );
  return ops.add(d.result, dora);
}
