/**
 * GaLoreAdamW8bit (galore_torch/adamw8bit.py) over bitsandbytes' 8-bit blockwise Adam (Optimizer2State
 * "adam", optim/optimizer.py init_state / update_step; Dettmers et al. 2022, arXiv 2110.02861):
 * - both moments are 8-bit: exp_avg as `state1` codes of the signed dynamic map, exp_avg_sq as `state2`
 *   codes of the unsigned map, each with an F32 absmax per block of 256 values (`absmax1`, `absmax2`);
 *   a state of fewer than min_8bit_size (4096) values stays F32 (state1 / state2), as bitsandbytes does.
 *   For a projected parameter that count is of the low-rank gradient R, as init_state sees it.
 * - one step (bitsandbytes' CPU backend, backends/cpu/ops.py _optimizer_update_8bit_blockwise_cpu):
 *   dequantize the moments, a torch.optim.AdamW step (weight decay as p *= 1 - lr·wd before the update;
 *   bitsandbytes' CUDA kernel applies it after, a difference of order lr²·wd), requantize with the new
 *   per-block absmax. On the run's kernels: dequantizeBlockwise8, adamwStep, quantizeBlockwise8.
 * - a projected parameter: R = project(G); the step writes its update into a zeroed R-shaped buffer with
 *   weight decay 0 (GaLore swaps p.data for zeros and sets the group's weight_decay to 0), then
 *   p += scale · back(update) and p -= lr · wd · p.
 * Defaults are GaLoreAdamW8bit's: eps 1e-8, weight_decay 1e-2.
 * Not here: the codes (dynamic-maps.ts), the projection (projection.ts, basis.ts).
 */
import { numel, PeftError, type SlotSpec, type StateArray, type TrainKernels, type UpdateRule } from '@peft/core-tensor';
import { adamHyper, checkAdam, decoupledDecay, type AdamSettings } from './adam.js';
import { refreshBasis } from './basis.js';
import { SIGNED_DYNAMIC_MAP, UNSIGNED_DYNAMIC_MAP } from './dynamic-maps.js';
import { checkProjection, matrixShape, projectionHyper, refreshesAt, type GaloreSettings } from './galore.js';
import { basisOut, basisSlots, Projection, sideOf } from './projection.js';

/** bitsandbytes' blocksize for blockwise optimizer states (init_state). */
export const STATE_BLOCKSIZE = 256;

export interface EightBitSettings extends AdamSettings {
  /** States of fewer values stay F32 (bitsandbytes' min_8bit_size). */
  min8bitSize: number;
}

function checkEightBit(owner: string, o: EightBitSettings): void {
  checkAdam(owner, o);
  if (!(Number.isSafeInteger(o.min8bitSize) && o.min8bitSize >= 1)) {
    throw new PeftError('E_INPUT', `${owner}: min_8bit_size must be an integer >= 1, got ${o.min8bitSize}`);
  }
}

/** The moment slots of an Adam state over `shape`: 8-bit codes + absmax from min_8bit_size values, else F32. */
export function momentSlots(shape: readonly number[], min8bitSize: number): SlotSpec[] {
  if (numel(shape) < min8bitSize) {
    return [{ name: 'state1', dtype: 'F32', shape }, { name: 'state2', dtype: 'F32', shape }];
  }
  const blocks = [Math.ceil(numel(shape) / STATE_BLOCKSIZE)];
  return [
    { name: 'state1', dtype: 'U8', shape }, { name: 'absmax1', dtype: 'F32', shape: blocks },
    { name: 'state2', dtype: 'U8', shape }, { name: 'absmax2', dtype: 'F32', shape: blocks },
  ];
}

/** One bitsandbytes Adam step of `target` from g over the moment slots (momentSlots' layout). */
function adamStep(k: TrainKernels, target: Float32Array, g: Float32Array, slots: readonly StateArray[], lr: number,
  weightDecay: number, o: AdamSettings, step: number): void {
  const n = target.length;
  if (!(slots[0] instanceof Uint8Array)) {
    k.adamwStep(target, g, slots[0] as Float32Array, slots[1] as Float32Array, n, lr, o.beta1, o.beta2, o.eps, weightDecay, step);
    return;
  }
  const [c1, a1, c2, a2] = slots as [Uint8Array, Float32Array, Uint8Array, Float32Array];
  const m = new Float32Array(n);
  const v = new Float32Array(n);
  k.dequantizeBlockwise8(c1, a1, SIGNED_DYNAMIC_MAP, STATE_BLOCKSIZE, m);
  k.dequantizeBlockwise8(c2, a2, UNSIGNED_DYNAMIC_MAP, STATE_BLOCKSIZE, v);
  k.adamwStep(target, g, m, v, n, lr, o.beta1, o.beta2, o.eps, weightDecay, step);
  k.quantizeBlockwise8(m, SIGNED_DYNAMIC_MAP, STATE_BLOCKSIZE, c1, a1);
  k.quantizeBlockwise8(v, UNSIGNED_DYNAMIC_MAP, STATE_BLOCKSIZE, c2, a2);
}

/** bitsandbytes' Adam8bit for the parameters GaLore does not project (its moments shaped like the parameter). */
export function adam8bitRule(o: EightBitSettings, k: TrainKernels): UpdateRule {
  checkEightBit('galore-8bit', o);
  return {
    name: 'adam8bit',
    slotShapes: (shape) => momentSlots(shape, o.min8bitSize),
    hyper: { ...adamHyper(o), min_8bit_size: o.min8bitSize },
    update: (p, g, state, lr, step) => adamStep(k, p, g, state, lr, o.weightDecay, o, step),
  };
}

/** GaLoreAdamW8bit's update of a projected parameter. */
export function galore8bitRule(o: GaloreSettings & EightBitSettings, k: TrainKernels): UpdateRule {
  checkProjection('galore-8bit', o);
  checkEightBit('galore-8bit', o);
  const projection = (shape: readonly number[]) => {
    const [m, n] = matrixShape('galore-8bit', shape);
    return new Projection(k, sideOf(o.projType, m, n), m, n, o.rank);
  };
  return {
    name: 'galore-8bit',
    slotShapes(shape) {
      const pr = projection(shape);
      return [...momentSlots(pr.low, o.min8bitSize), ...basisSlots(pr.side, pr.m, pr.n, o.rank)];
    },
    hyper: { ...projectionHyper(o), proj_type: o.projType, ...adamHyper(o), min_8bit_size: o.min8bitSize },
    update(p, g, state, lr, step, shape, name) {
      const pr = projection(shape);
      const moments = momentSlots(pr.low, o.min8bitSize).length;
      const bases = state.slice(moments) as Float32Array[];
      if (refreshesAt(step, o.updateProjGap)) refreshBasis(k, g, pr.m, pr.n, o.rank, o, name, step, basisOut(pr.side, bases));
      const r = new Float32Array(pr.low[0] * pr.low[1]);
      pr.project(g, bases, r);
      const update = new Float32Array(r.length);
      adamStep(k, update, r, state.slice(0, moments), lr, 0, o, step);
      pr.addBack(p, update, bases, o.scale);
      decoupledDecay(p, lr, o.weightDecay);
    },
  };
}
