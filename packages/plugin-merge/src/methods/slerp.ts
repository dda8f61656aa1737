/**
 * slerp (mergekit/merge_methods/slerp.py): spherical interpolation between the base (t = 0) and
 * exactly one other model (t = 1), over the whole flattened tensor. Directions come from copies
 * normalised when their norm exceeds 1e-8; when |cos| > 0.9995 the two are nearly colinear and the
 * result is the plain lerp (1 - t) v0 + t v1; otherwise, with θ = acos(cos),
 * out = sin((1 - t) θ) / sin θ · v0 + sin(t θ) / sin θ · v1 on the unnormalised tensors.
 * Scalars are computed in f64 (mergekit: numpy f32 scalars), the result rounded to f32.
 */
import { defineMergeMethod, f32, num } from './define.js';

const DOT_THRESHOLD = 0.9995;
const EPS = 1e-8;

function norm(v: Float32Array): number {
  let s = 0;
  for (let j = 0; j < v.length; j++) s += v[j] * v[j];
  return Math.sqrt(s);
}

/** Coefficients (s0, s1) of v0 and v1. */
export function slerpCoefficients(t: number, v0: Float32Array, v1: Float32Array): [number, number] {
  const n0 = norm(v0);
  const n1 = norm(v1);
  const d0 = n0 > EPS ? n0 : 1;
  const d1 = n1 > EPS ? n1 : 1;
  let dot = 0;
  for (let j = 0; j < v0.length; j++) dot += f32(v0[j] / d0) * f32(v1[j] / d1);
  if (Math.abs(dot) > DOT_THRESHOLD) return [1 - t, t];
  const theta0 = Math.acos(dot);
  const sin0 = Math.sin(theta0);
  const thetaT = theta0 * t;
  return [Math.sin(theta0 - thetaT) / sin0, Math.sin(thetaT) / sin0];
}

export const slerp = defineMergeMethod(
  {
    name: 'slerp',
    description: 'Spherical interpolation between the base model and one other',
    paper: 'https://en.wikipedia.org/wiki/Slerp',
    base: 'required',
    models: { min: 1, max: 1 },
    options: { t: { type: 'number', description: 'Interpolation factor: 0 gives the base model, 1 the other one' } },
    required: ['t'],
  },
  ({ base, models, global, out }) => {
    const v0 = base!;
    const v1 = models[0];
    const [s0, s1] = slerpCoefficients(num(global, 't'), v0, v1);
    const a = f32(s0);
    const b = f32(s1);
    for (let j = 0; j < out.length; j++) out[j] = f32(a * v0[j]) + f32(b * v1[j]);
    return out;
  },
);
