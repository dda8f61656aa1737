/**
 * Optimizer.activeParams (OwLore's per-step layer sampling): the trainer asks before each step's forward
 * pass which params the step updates and gives grads to those only; the others have no grad at the
 * update (no grad buffer, not moved), and the choice changes from step to step. Without activeParams
 * every param gets its grad as before.
 */
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Batch } from '../src/data/index.js';
import { createSgd, type Optimizer } from '../src/optim/index.js';
import { tensor } from '../src/tensor/create.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { train } from '../src/train/index.js';

let work: string;
beforeAll(async () => {
  work = await fsp.mkdtemp(join(tmpdir(), 'peft-active-'));
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

const batch: Batch = { inputIds: Int32Array.of(1), labels: Int32Array.of(1), B: 1, T: 1, trainedTokens: 1 };

/** Two params pulled towards 1 and -1; `active(step)` names what a step may update (undefined: no such method). */
async function run(active?: (step: number) => ReadonlySet<string>) {
  const params: [string, Tensor][] = [['a', tensor([0, 0], [2], { requiresGrad: true })], ['b', tensor([0], [1], { requiresGrad: true })]];
  const sgd = createSgd(params);
  const seen: string[][] = [];
  const optimizer: Optimizer = {
    ...sgd,
    step(lr) {
      seen.push(params.filter(([, t]) => t.grad).map(([n]) => n));
      sgd.step(lr);
    },
    ...(active ? { activeParams: active } : {}),
  };
  const [a, b] = [params[0][1], params[1][1]];
  await train({
    params, optimizer, trainBatches: () => [batch],
    lossFn: () => {
      const da = a.sub(tensor([1, 1], [2]));
      const db = b.sub(tensor([-1], [1]));
      return da.mul(da).sum().add(db.mul(db).sum());
    },
    save: async () => {},
  }, { outDir: join(work, `run-${Math.random().toString(36).slice(2)}`), steps: 4, lr: 0.1, seed: 1, schedule: 'constant', handleSigint: false, maxGradNorm: 0 });
  return { seen, a: Array.from(a.data), b: Array.from(b.data) };
}

it('gives grads to the params the optimizer names for each step, and to no other', async () => {
  const r = await run((step) => new Set(step % 2 === 1 ? ['a'] : ['b']));
  expect(r.seen).toEqual([['a'], ['b'], ['a'], ['b']]);
  // a moved at steps 1 and 3 (0 -> 0.2 -> 0.36), b at steps 2 and 4
  expect(r.a.map((x) => +x.toFixed(6))).toEqual([0.36, 0.36]);
  expect(r.b.map((x) => +x.toFixed(6))).toEqual([-0.36]);
});

it('gives every param its grad when the optimizer has no activeParams', async () => {
  const r = await run();
  expect(r.seen).toEqual([['a', 'b'], ['a', 'b'], ['a', 'b'], ['a', 'b']]);
});
