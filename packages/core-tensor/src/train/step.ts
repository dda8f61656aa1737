/**
 * One optimizer step's forward/backward over its micro-batches, and evaluation. Each micro loss is
 * scaled by trainedTokens_micro / trainedTokens_step before backward, so the accumulated gradient is the
 * gradient of the whole step's token mean, and the step's loss is the token-weighted mean of the micro
 * losses. Every tensor a micro-batch makes is freed when its backward is done (a scope around it).
 * Not here: clipping and the update (trainer.ts), the optimizers (optim/).
 */
import { noGrad } from '../ops/tape.js';
import { PeftError } from '../errors.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { dropoutSeed } from './plan.js';
import type { Batch, LossContext, TrainJob } from './types.js';

function checkBatch(b: Batch, where: string): void {
  const n = b.B * b.T;
  if (!(Number.isSafeInteger(n) && n > 0 && b.inputIds.length === n && b.labels.length === n)) {
    throw new PeftError('E_INPUT', `${where}: batch of B=${b.B}, T=${b.T} has ${b.inputIds.length} ids and ${b.labels.length} labels`);
  }
  if (!(Number.isSafeInteger(b.trainedTokens) && b.trainedTokens >= 0)) {
    throw new PeftError('E_INPUT', `${where}: trainedTokens must be an integer >= 0, got ${b.trainedTokens}`);
  }
}

/** Forward + backward of one micro-batch with its loss scaled by `weight`; returns the unscaled loss. */
function micro(job: TrainJob, b: Batch, ctx: LossContext, weight: number): number {
  return tidy(() => {
    const loss: Tensor = job.lossFn(b, ctx);
    if (loss.size !== 1) throw new PeftError('E_RUNTIME', `lossFn returned shape [${loss.shape.join(', ')}], expected a scalar`);
    if (!loss.requiresGrad) {
      throw new PeftError('E_RUNTIME', 'lossFn returned a loss that does not require grad (no trainable parameter reaches it)');
    }
    const value = loss.item();
    if (Number.isFinite(value)) (weight === 1 ? loss : loss.mulScalar(weight)).backward();
    return value;
  });
}

/**
 * Accumulates the grads of one step over `batches` (its micro-batches). Returns the token-weighted loss
 * and trained tokens; the loss is the first non-finite micro loss when there is one (the rest are skipped).
 */
export function accumulate(job: TrainJob, batches: readonly Batch[], step: number, seed: number): { loss: number; tokens: number } {
  let tokens = 0;
  for (const b of batches) {
    checkBatch(b, `step ${step}`);
    tokens += b.trainedTokens;
  }
  if (tokens === 0) throw new PeftError('E_INPUT', `step ${step}: its batches have no trained tokens (every label is -100)`);
  let loss = 0;
  for (let m = 0; m < batches.length; m++) {
    const b = batches[m];
    if (b.trainedTokens === 0) continue;
    const weight = b.trainedTokens / tokens;
    const value = micro(job, b, { step, micro: m, dropoutSeed: dropoutSeed(seed, step, m) }, weight);
    if (!Number.isFinite(value)) return { loss: value, tokens };
    loss += weight * value;
  }
  return { loss, tokens };
}

/**
 * Gives grads this step only to the params the optimizer will update (Optimizer.activeParams, e.g.
 * OwLore's sampled layers): the others get requiresGrad off until the next step asks again. Nothing
 * happens for an optimizer without activeParams.
 */
export function selectTrainedParams(job: TrainJob, step: number): void {
  if (!job.optimizer.activeParams) return;
  const active = job.optimizer.activeParams(step);
  for (const [name, p] of job.params) p.requiresGrad = active === undefined || active.has(name);
}

/** Frees every param's grad (torch's zero_grad(set_to_none=True)): the next backward writes fresh ones. */
export function zeroGrads(params: readonly [string, Tensor][]): void {
  for (const [, p] of params) {
    p.grad?.dispose();
    p.grad = undefined;
  }
}

/** Token-weighted mean loss over the validation batches, under noGrad; undefined when they score no token. */
export function evaluate(job: TrainJob, batches: readonly Batch[]): { loss: number; tokens: number } | undefined {
  let lossSum = 0;
  let tokens = 0;
  for (const b of batches) {
    checkBatch(b, 'validation');
    const r = noGrad(() => tidy(() => job.evalLossFn!(b)));
    lossSum += r.lossSum;
    tokens += r.tokens;
  }
  return tokens > 0 ? { loss: lossSum / tokens, tokens } : undefined;
}
