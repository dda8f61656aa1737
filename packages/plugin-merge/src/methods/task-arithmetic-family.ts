/**
 * The task-arithmetic family as data: mergekit's eight GeneralizedTaskArithmeticMerge presets
 * (mergekit/merge_methods/registry.py), same names, same consensus / sparsification / defaults.
 * Adding a variant is one more row.
 */
import type { TaskArithmeticSettings } from './task-arithmetic.js';

export const TASK_ARITHMETIC_FAMILY: readonly TaskArithmeticSettings[] = [
  {
    name: 'task_arithmetic', description: 'Task Arithmetic: base + weighted sum of task vectors',
    paper: 'https://arxiv.org/abs/2212.04089', consensus: null, sparsification: null, defaultNormalize: false, defaultRescale: false,
  },
  {
    name: 'ties', description: 'TIES: magnitude top-k per task vector, sign election, disjoint mean',
    paper: 'https://arxiv.org/abs/2306.01708', consensus: 'sum', sparsification: 'magnitude', defaultNormalize: true, defaultRescale: false,
  },
  {
    name: 'dare_ties', description: 'DARE TIES: random drop with L1 rescale, then TIES sign election',
    paper: 'https://arxiv.org/abs/2311.03099', consensus: 'sum', sparsification: 'random', defaultNormalize: false, defaultRescale: true,
  },
  {
    name: 'dare_linear', description: 'DARE: random drop with L1 rescale, weighted sum of task vectors',
    paper: 'https://arxiv.org/abs/2311.03099', consensus: null, sparsification: 'random', defaultNormalize: false, defaultRescale: true,
  },
  {
    name: 'breadcrumbs', description: 'Model Breadcrumbs: drop the largest (gamma) and smallest deltas, weighted sum',
    paper: 'https://arxiv.org/abs/2312.06795', consensus: null, sparsification: 'magnitude_outliers', defaultNormalize: false, defaultRescale: false,
  },
  {
    name: 'breadcrumbs_ties', description: 'Model Breadcrumbs with TIES sign election',
    paper: 'https://arxiv.org/abs/2312.06795', consensus: 'sum', sparsification: 'magnitude_outliers', defaultNormalize: false, defaultRescale: false,
  },
  {
    name: 'della', description: 'DELLA: magnitude-ranked random drop (MagPrune), L1 rescale, sign election',
    paper: 'https://arxiv.org/abs/2406.11617', consensus: 'sum', sparsification: 'della_magprune', defaultNormalize: true, defaultRescale: true,
  },
  {
    name: 'della_linear', description: 'DELLA without sign election: MagPrune, L1 rescale, weighted sum',
    paper: 'https://arxiv.org/abs/2406.11617', consensus: null, sparsification: 'della_magprune', defaultNormalize: false, defaultRescale: true,
  },
];
