/**
 * Natural GaLore (SubSpaceAdamW with proj_type "natural_galore", code/natural_galore/subspace_adamw.py):
 * GaLore with the two-sided projection of its Tucker decomposition — for a 2-D gradient R = U_rᵀ G V_r
 * [r, r], U_r / V_r its top-r left / right singular vectors (tensorly's HOOI starts and, for a matrix,
 * stays there; basis.ts's sign convention is svd_flip's) — recomputed every update_proj_gap steps;
 * R goes through the natural-gradient transform (woodbury.ts) before the Adam moments; the update is
 * p -= step_size · scale · U_r N V_rᵀ, then p -= lr · wd · p. Defaults: history 20, damping 1e-3 (the
 * repo hard-codes it), eps 1e-6.
 * State per parameter: exp_avg, exp_avg_sq [r, r], ortho_left [m, r], ortho_right [r, n] and the
 * history grad_history [s, r·r], all F32.
 * Not here: online_* variants (factors trained by AdamW instead of recomputed).
 */
import { PeftError, type TrainKernels, type UpdateRule } from '@peft/core-tensor';
import { adamHyper, checkAdam, decoupledDecay, direction, type AdamSettings } from './adam.js';
import { refreshBasis } from './basis.js';
import { checkProjection, matrixShape, projectionHyper, refreshesAt, type ProjectionSettings } from './galore.js';
import { basisOut, basisSlots, Projection } from './projection.js';
import { naturalGradient } from './woodbury.js';

export interface NaturalSettings extends ProjectionSettings, AdamSettings {
  /** Projected gradients kept (s). */
  history: number;
  /** λ of the Fisher approximation λI + G Gᵀ. */
  damping: number;
}

export function naturalGaloreRule(o: NaturalSettings, k: TrainKernels): UpdateRule {
  checkProjection('natural-galore', o);
  checkAdam('natural-galore', o);
  const bad = (msg: string) => new PeftError('E_INPUT', `natural-galore: ${msg}`);
  if (!(Number.isSafeInteger(o.history) && o.history >= 1)) throw bad(`natural_history must be an integer >= 1, got ${o.history}`);
  if (!(Number.isFinite(o.damping) && o.damping > 0)) throw bad(`damping must be a number > 0, got ${o.damping}`);
  const r = o.rank;
  const projection = (shape: readonly number[]) => {
    const [m, n] = matrixShape('natural-galore', shape);
    return new Projection(k, 'full', m, n, r);
  };
  return {
    name: 'natural-galore',
    slotShapes(shape) {
      const pr = projection(shape);
      return [
        { name: 'exp_avg', dtype: 'F32', shape: [r, r] }, { name: 'exp_avg_sq', dtype: 'F32', shape: [r, r] },
        ...basisSlots('full', pr.m, pr.n, r), { name: 'grad_history', dtype: 'F32', shape: [o.history, r * r] },
      ];
    },
    hyper: { ...projectionHyper(o), natural_history: o.history, damping: o.damping, ...adamHyper(o) },
    update(p, g, state, lr, step, shape, name) {
      const pr = projection(shape);
      const [m, v, left, right, history] = state as Float32Array[];
      if (refreshesAt(step, o.updateProjGap)) refreshBasis(k, g, pr.m, pr.n, r, o, name, step, basisOut('full', [left, right]));
      const low = new Float32Array(r * r);
      pr.project(g, [left, right], low);
      const ng = naturalGradient(low, history, step, o.history, o.damping);
      const dir = new Float32Array(r * r);
      direction(k, dir, ng, m, v, o, step);
      pr.addBack(p, dir, [left, right], lr * o.scale);
      decoupledDecay(p, lr, o.weightDecay);
    },
  };
}
