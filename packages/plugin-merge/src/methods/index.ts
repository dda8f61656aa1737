/**
 * The merge methods this plugin registers: mergekit's linear, slerp, model_stock and the
 * task-arithmetic family (task_arithmetic, ties, dare_ties, dare_linear, breadcrumbs,
 * breadcrumbs_ties, della, della_linear), under mergekit's names; and cat, PEFT's exact
 * concatenation of adapters' factors.
 */
import type { MergerDef, Registry } from '@peft/core-tensor';
import { cat } from './cat.js';
import { linear } from './linear.js';
import { modelStock } from './model-stock.js';
import { slerp } from './slerp.js';
import { taskArithmetic } from './task-arithmetic.js';
import { TASK_ARITHMETIC_FAMILY } from './task-arithmetic-family.js';

export const MERGE_METHODS: readonly MergerDef[] = [cat, linear, slerp, modelStock, ...TASK_ARITHMETIC_FAMILY.map(taskArithmetic)];

export function registerMergeMethods(registry: Registry): void {
  for (const m of MERGE_METHODS) registry.merger(m);
}

export { defineMergeMethod, type MergeMethodMeta } from './define.js';
export { taskArithmetic, type TaskArithmeticSettings } from './task-arithmetic.js';
export { TASK_ARITHMETIC_FAMILY } from './task-arithmetic-family.js';
export { sparsify, type SparsifyArgs, type SparsifyMethod } from './sparsify.js';
