/**
 * GaLoreAdamW's update of a projected parameter (galore_torch/adamw.py AdamW.step with a "rank" group,
 * Zhao et al. 2024, arXiv 2403.03507): every update_proj_gap steps of this parameter — at its steps 1,
 * gap+1, 2·gap+1, ... (galore-torch: `iter % update_proj_gap == 0` with iter its step count before the
 * increment) — the basis P is recomputed from the current gradient; then
 *   R = project(G);  Adam moments on R (shaped like R: m x r or r x n);  p -= step_size · scale · back(N)
 *   p -= lr · wd · p
 * The moments are kept as they are when P changes (galore-torch neither resets nor rotates them).
 * State per parameter: exp_avg, exp_avg_sq [R's shape] and ortho_matrix (ortho_left / ortho_right for
 * proj_type full), all F32, so a checkpoint holds P, the moments and the step and a resumed run goes on
 * bit for bit. Memory for m >= n (std): 2·m·r + n·r values instead of AdamW's 2·m·n.
 * Not here: which parameters are projected (targets.ts), the bases (basis.ts).
 */
import { PeftError, type SlotSpec, type TrainKernels, type UpdateRule } from '@peft/core-tensor';
import { adamHyper, checkAdam, decoupledDecay, direction, type AdamSettings } from './adam.js';
import { refreshBasis, type BasisSettings } from './basis.js';
import { basisOut, basisSlots, Projection, sideOf, type ProjType } from './projection.js';

export interface ProjectionSettings extends BasisSettings {
  rank: number;
  updateProjGap: number;
  scale: number;
}

export interface GaloreSettings extends ProjectionSettings, AdamSettings {
  projType: ProjType;
}

export function checkProjection(owner: string, o: ProjectionSettings): void {
  const bad = (msg: string) => new PeftError('E_INPUT', `${owner}: ${msg}`);
  if (!(Number.isSafeInteger(o.rank) && o.rank >= 1)) throw bad(`rank must be an integer >= 1, got ${o.rank}`);
  if (!(Number.isSafeInteger(o.updateProjGap) && o.updateProjGap >= 1)) throw bad(`update_proj_gap must be an integer >= 1, got ${o.updateProjGap}`);
  if (!(Number.isFinite(o.scale) && o.scale > 0)) throw bad(`scale must be a number > 0, got ${o.scale}`);
}

export const projectionHyper = (o: ProjectionSettings) => ({
  rank: o.rank, update_proj_gap: o.updateProjGap, scale: o.scale, svd: o.svd, svd_oversample: o.oversample,
  svd_power_iters: o.powerIters,
});

/** [m, n] of a projected parameter (the rule is only given 2-D ones). */
export function matrixShape(owner: string, shape: readonly number[]): [number, number] {
  if (shape.length !== 2) throw new PeftError('E_RUNTIME', `${owner}: a projected parameter must be 2-D, got [${shape.join(', ')}]`);
  return [shape[0], shape[1]];
}

/** Whether step (1-based, this parameter's) recomputes the basis. */
export const refreshesAt = (step: number, gap: number) => (step - 1) % gap === 0;

export function galoreRule(o: GaloreSettings, k: TrainKernels): UpdateRule {
  checkProjection('galore', o);
  checkAdam('galore', o);
  const projection = (shape: readonly number[]) => {
    const [m, n] = matrixShape('galore', shape);
    return new Projection(k, sideOf(o.projType, m, n), m, n, o.rank);
  };
  return {
    name: 'galore',
    slotShapes(shape): SlotSpec[] {
      const pr = projection(shape);
      return [
        { name: 'exp_avg', dtype: 'F32', shape: pr.low }, { name: 'exp_avg_sq', dtype: 'F32', shape: pr.low },
        ...basisSlots(pr.side, pr.m, pr.n, o.rank),
      ];
    },
    hyper: { ...projectionHyper(o), proj_type: o.projType, ...adamHyper(o) },
    update(p, g, state, lr, step, shape, name) {
      const pr = projection(shape);
      const [m, v, ...bases] = state as Float32Array[];
      if (refreshesAt(step, o.updateProjGap)) refreshBasis(k, g, pr.m, pr.n, o.rank, o, name, step, basisOut(pr.side, bases));
      const r = new Float32Array(m.length);
      pr.project(g, bases, r);
      const dir = new Float32Array(m.length);
      direction(k, dir, r, m, v, o, step);
      pr.addBack(p, dir, bases, lr * o.scale);
      decoupledDecay(p, lr, o.weightDecay);
    },
  };
}
