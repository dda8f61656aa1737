/**
 * What the five methods share around attach / loadAdapter: the activations' dtype (the encoders' tensors
 * are made in it: f32, or f64 in gradient checks), freezing the base, installing hooks without leaking
 * the tensors when the model refuses them, and loaded tensors as constants the hooks own.
 * Not here: any method's math.
 */
import { keep, noGrad, tensor, tidy, type Llama, type ModelHooks, type Tensor, type TensorFloatDtype } from '@peft/core-tensor';

/** The dtype of the model's activations (what its embedding lookup returns). */
export function activationDtype(model: Llama): TensorFloatDtype {
  return noGrad(() => tidy(() => model.embed(Int32Array.of(0)).dtype as TensorFloatDtype));
}

/** Freezes the base (PeftModel._setup_prompt_encoder: every base parameter requires_grad False) and installs `hooks`. */
export function install(model: Llama, hooks: ModelHooks): void {
  try {
    model.setHooks(hooks);
  } catch (e) {
    hooks.dispose?.();
    throw e;
  }
  model.requiresGrad(false);
}

/** Loaded values as a tensor no scope frees and nothing trains (the hooks own it). */
export function constant(values: Float32Array, shape: readonly number[], dtype: TensorFloatDtype): Tensor {
  return keep(tensor(values, shape, { dtype }));
}

/** Disposes every tensor of `named`. */
export const disposeAll = (named: readonly [string, Tensor][]) => () => named.forEach(([, t]) => t.dispose());
