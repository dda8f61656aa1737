/**
 * Gradient check by central differences in f64, as torch.autograd.gradcheck but projected: with a
 * fixed random r shaped like fn's output, the analytic d(r . fn)/dx from backward is compared with
 * (r . fn(x + eps e_j) - r . fn(x - eps e_j)) / 2 eps for every element j of every input that
 * requires grad. One projection checks the whole vector-Jacobian product at a fraction of the cost.
 */
import { PeftError } from '../errors.js';
import { noGrad } from '../ops/tape.js';
import { randn } from '../tensor/create.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { backward } from './backward.js';

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  /** Pass when |analytic - numeric| <= atol + rtol * |numeric| (defaults 1e-5, 1e-3). */
  atol?: number;
  rtol?: number;
  /** Seed of the projection r (default 0). */
  seed?: number;
}

export interface GradcheckResult {
  ok: boolean;
  maxAbsError: number;
  /** Up to 10 mismatches, e.g. "input 1 [3]: analytic 0.5, numeric 0.25". */
  failures: string[];
}

function project(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], r: Float64Array): number {
  return noGrad(() => tidy(() => {
    const d = fn(...inputs).data;
    let s = 0;
    for (let i = 0; i < d.length; i++) s += d[i] * r[i];
    return s;
  }));
}

/** Analytic d(r . fn)/d(input) for each input that requires grad (zeros when no gradient arrived). */
function analytic(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], r: Tensor): (Float64Array | undefined)[] {
  for (const x of inputs) {
    x.grad?.dispose();
    x.grad = undefined;
  }
  const out = tidy(() => fn(...inputs));
  if (out.dtype !== 'f64') throw new PeftError('E_INPUT', `gradcheck: fn must return an f64 tensor, got ${out.dtype}`);
  backward(out, r);
  out.dispose();
  return inputs.map((x) => {
    if (!x.requiresGrad) return undefined;
    const g = x.grad ? Float64Array.from(x.grad.data) : new Float64Array(x.size);
    x.grad?.dispose();
    x.grad = undefined;
    return g;
  });
}

/** Checks fn's gradients w.r.t. every input that requires grad (those must be f64). Leaves .grad unset. */
export function gradcheck(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts?: GradcheckOptions): GradcheckResult {
  const { eps = 1e-6, atol = 1e-5, rtol = 1e-3, seed = 0 } = opts ?? {};
  for (const [i, x] of inputs.entries()) {
    if (x.requiresGrad && x.dtype !== 'f64') throw new PeftError('E_INPUT', `gradcheck: input ${i} is ${x.dtype}, needs f64`);
  }
  const shape = noGrad(() => tidy(() => fn(...inputs).shape));
  const r = randn(shape, { dtype: 'f64', seed });
  const rd = r.data as Float64Array;
  const grads = analytic(fn, inputs, r);
  const failures: string[] = [];
  let maxAbsError = 0;
  inputs.forEach((x, i) => {
    const a = grads[i];
    if (!a) return;
    const d = x.data;
    for (let j = 0; j < d.length; j++) {
      const orig = d[j];
      d[j] = orig + eps;
      const plus = project(fn, inputs, rd);
      d[j] = orig - eps;
      const minus = project(fn, inputs, rd);
      d[j] = orig;
      const numeric = (plus - minus) / (2 * eps);
      const err = Math.abs(a[j] - numeric);
      maxAbsError = Math.max(maxAbsError, Number.isNaN(err) ? Infinity : err);
      if (!(err <= atol + rtol * Math.abs(numeric)) && failures.length < 10) {
        failures.push(`input ${i} [${j}]: analytic ${a[j]}, numeric ${numeric}`);
      }
    }
  });
  r.dispose(); // only now: rd is a view of its storage (native memory is detached on free)
  return { ok: failures.length === 0, maxAbsError, failures };
}
