/**
 * torch.optim.SGD (torch 1.13 `_single_tensor_sgd`, torch/optim/sgd.py), in f32 op by op as torch's CPU
 * kernels evaluate it, so the result matches torch bit for bit:
 *   d = g + wd * p                                       (d_p.add(param, alpha=weight_decay))
 *   buf = d on the first step, else buf * momentum + (1 - dampening) * d
 *   d = nesterov ? d + momentum * buf : buf              (when momentum != 0)
 *   p = p - lr * d
 * One rule; plain SGD, momentum, dampening, nesterov and weight decay are its settings.
 */
import { PeftError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { fma32 } from './f32.js';
import { createParamOptimizer, type UpdateRule } from './param-state.js';
import type { Optimizer } from './types.js';

export interface SgdOptions {
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
}

function check(o: Required<SgdOptions>): void {
  const bad = (msg: string) => new PeftError('E_INPUT', `sgd: ${msg}`);
  if (!(o.momentum >= 0)) throw bad(`momentum must be >= 0, got ${o.momentum}`);
  if (!(o.weightDecay >= 0)) throw bad(`weight_decay must be >= 0, got ${o.weightDecay}`);
  if (!Number.isFinite(o.dampening)) throw bad(`dampening must be finite, got ${o.dampening}`);
  // torch: "Nesterov momentum requires a momentum and zero dampening"
  if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0)) throw bad('nesterov needs momentum > 0 and dampening 0');
}

export function sgdRule(options: SgdOptions = {}): UpdateRule {
  const o = { momentum: options.momentum ?? 0, dampening: options.dampening ?? 0, nesterov: options.nesterov ?? false,
    weightDecay: options.weightDecay ?? 0 };
  check(o);
  const wd = Math.fround(o.weightDecay);
  const mom = Math.fround(o.momentum);
  const keep = Math.fround(1 - o.dampening);
  return {
    name: 'sgd',
    slotShapes: (shape) => (o.momentum !== 0 ? [{ name: 'momentum_buffer', dtype: 'F32', shape }] : []),
    hyper: { momentum: o.momentum, dampening: o.dampening, nesterov: o.nesterov, weight_decay: o.weightDecay },
    update(p, g, state, lr, step) {
      const buf = state[0] as Float32Array;
      const alpha = Math.fround(-lr);
      for (let i = 0; i < p.length; i++) {
        let d = g[i];
        if (wd !== 0) d = fma32(p[i], wd, d);
        if (mom !== 0) {
          const b = step === 1 ? d : fma32(d, keep, Math.fround(buf[i] * mom));
          buf[i] = b;
          d = o.nesterov ? fma32(b, mom, d) : b;
        }
        p[i] = fma32(d, alpha, p[i]);
      }
    },
  };
}

export function createSgd(params: readonly [string, Tensor][], options?: SgdOptions): Optimizer {
  return createParamOptimizer('sgd', [{ name: 'default', params, rule: sgdRule(options) }]);
}
