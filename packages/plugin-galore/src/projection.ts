/**
 * GaLore's projections of a gradient G [m, n] onto rank r (galore_torch/galore_projector.py
 * GaLoreProjector.project / project_back), on the run's GEMM kernels:
 *   side 'right': R = G Pᵀ [m, r], P = V_rᵀ [r, n];      back: R P
 *   side 'left':  R = Pᵀ G [r, n], P = U_r [m, r];       back: P R
 *   side 'full':  R = U_rᵀ G V_r [r, r];                  back: U_r R V_rᵀ   (Natural GaLore's Tucker too)
 * proj_type picks the side: std projects onto the smaller dimension (right when m >= n), reverse_std onto
 * the larger, left / right / full always so. project_back's `scale` is folded into the GEMM's alpha.
 * Not here: computing the bases (basis.ts), the optimizer state around them (galore.ts).
 */
import type { SlotSpec, TrainKernels } from '@peft/core-tensor';
import type { BasisOut } from './basis.js';

export const PROJ_TYPES = ['std', 'reverse_std', 'left', 'right', 'full'] as const;
export type ProjType = (typeof PROJ_TYPES)[number];
export type Side = 'left' | 'right' | 'full';

export function sideOf(projType: ProjType, m: number, n: number): Side {
  if (projType === 'std') return m >= n ? 'right' : 'left';
  if (projType === 'reverse_std') return m >= n ? 'left' : 'right';
  return projType;
}

/** The shape of R for a [m, n] parameter. */
export function lowRankShape(side: Side, m: number, n: number, r: number): [number, number] {
  return side === 'right' ? [m, r] : side === 'left' ? [r, n] : [r, r];
}

/** The basis slots (galore-torch's `ortho_matrix`; two of them, left and right, for 'full'). */
export function basisSlots(side: Side, m: number, n: number, r: number): SlotSpec[] {
  const left: SlotSpec = { name: side === 'full' ? 'ortho_left' : 'ortho_matrix', dtype: 'F32', shape: [m, r] };
  const right: SlotSpec = { name: side === 'full' ? 'ortho_right' : 'ortho_matrix', dtype: 'F32', shape: [r, n] };
  return side === 'right' ? [right] : side === 'left' ? [left] : [left, right];
}

/** The basis slot arrays as refreshBasis wants them. */
export function basisOut(side: Side, slots: readonly Float32Array[]): BasisOut {
  return side === 'right' ? { right: slots[0] } : side === 'left' ? { left: slots[0] } : { left: slots[0], right: slots[1] };
}

/** A projection of one [m, n] parameter; `bases` are its basis slots (left and/or right, as basisSlots). */
export class Projection {
  readonly low: [number, number];

  constructor(readonly k: TrainKernels, readonly side: Side, readonly m: number, readonly n: number, readonly r: number) {
    this.low = lowRankShape(side, m, n, r);
  }

  /** out [low] = the projection of g [m, n]. */
  project(g: Float32Array, bases: readonly Float32Array[], out: Float32Array): void {
    const { k, m, n, r } = this;
    if (this.side === 'right') k.gemm(false, true, m, r, n, 1, g, bases[0], 0, out);
    else if (this.side === 'left') k.gemm(true, false, r, n, m, 1, bases[0], g, 0, out);
    else {
      const t = new Float32Array(r * n);
      k.gemm(true, false, r, n, m, 1, bases[0], g, 0, t); // U_rᵀ G [r, n]
      k.gemm(false, true, r, r, n, 1, t, bases[1], 0, out); // · V_r
    }
  }

  /** p [m, n] += alpha · project_back(d), d [low]. */
  addBack(p: Float32Array, d: Float32Array, bases: readonly Float32Array[], alpha: number): void {
    const { k, m, n, r } = this;
    if (this.side === 'right') k.gemm(false, false, m, n, r, alpha, d, bases[0], 1, p);
    else if (this.side === 'left') k.gemm(false, false, m, n, r, alpha, bases[0], d, 1, p);
    else {
      const t = new Float32Array(m * r);
      k.gemm(false, false, m, r, r, 1, bases[0], d, 0, t); // U_r D [m, r]
      k.gemm(false, false, m, n, r, alpha, t, bases[1], 1, p); // · V_rᵀ
    }
  }
}
