/**
 * The registry entries: `galore`, `galore-8bit`, `natural-galore`, `owlore`. Each splits every parameter
 * group of the run (OptimizerContext.groups, with their options and lr scales) into two rule groups,
 * `<group>:galore` for the parameters the projection targets (targets.ts) and `<group>:adamw` for the
 * rest — galore-torch's param groups — and computes on the run's kernels (ctx.kernels), so
 * `--backend reference` reaches every kernel they call.
 * Not here: the rules (galore.ts, eightbit.ts, natural.ts), OwLore's sampling (owlore/).
 */
import {
  createParamOptimizer, type Optimizer, type OptimizerContext, type OptimizerDef, type ResolvedOptions, type RuleGroup,
  type UpdateRule,
} from '@peft/core-tensor';
import { galoreAdamwRule } from './adam.js';
import { adam8bitRule, galore8bitRule } from './eightbit.js';
import { galoreRule } from './galore.js';
import { naturalGaloreRule } from './natural.js';
import {
  adamOptions, adamSettings, galoreSettings, PROJ_TYPE_OPTION, projectionOptions, projectionSettings, targetsOf,
} from './options.js';
import { PROB_MODES, type ProbMode } from './owlore/layers.js';
import { withLayerSampling } from './owlore/optimizer.js';
import { splitByProjection } from './targets.js';

interface Rules {
  projected: UpdateRule;
  rest: UpdateRule;
}

/** One optimizer named `name`: per context group, the projected parameters under `rules.projected`, the rest under `rules.rest`. */
function projectedOptimizer(name: string, ctx: OptimizerContext, rules: (o: ResolvedOptions) => Rules): Optimizer {
  const groups: RuleGroup[] = ctx.groups.flatMap((g) => {
    const { projected, rest } = splitByProjection(g.params, targetsOf(g.options), g.options.rank as number);
    const r = rules(g.options);
    return [
      { name: `${g.name}:galore`, params: projected, rule: r.projected, lrScale: g.lrScale },
      { name: `${g.name}:adamw`, params: rest, rule: r.rest, lrScale: g.lrScale },
    ];
  });
  return createParamOptimizer(name, groups);
}

const galoreRules = (ctx: OptimizerContext) => (o: ResolvedOptions): Rules => ({
  projected: galoreRule(galoreSettings(o, ctx.seed), ctx.kernels), rest: galoreAdamwRule(adamSettings(o), ctx.kernels),
});

export const galoreOptimizer: OptimizerDef = {
  name: 'galore',
  description: 'GaLore: AdamW with low-rank projected gradients and moments (galore-torch GaLoreAdamW, arXiv 2403.03507)',
  options: {
    ...projectionOptions({ rank: 128, gap: 200, scale: 0.25 }), ...PROJ_TYPE_OPTION, ...adamOptions({ eps: 1e-6, weightDecay: 0 }),
  },
  create: (_params, _options, ctx) => projectedOptimizer('galore', ctx, galoreRules(ctx)),
};

export const galore8bitOptimizer: OptimizerDef = {
  name: 'galore-8bit',
  description: 'GaLore with 8-bit blockwise moments (galore-torch GaLoreAdamW8bit over bitsandbytes Adam8bit)',
  options: {
    ...projectionOptions({ rank: 128, gap: 200, scale: 0.25 }), ...PROJ_TYPE_OPTION, ...adamOptions({ eps: 1e-8, weightDecay: 1e-2 }),
    min_8bit_size: { type: 'integer', min: 1, default: 4096, description: 'States of fewer values stay 32-bit (bitsandbytes min_8bit_size)' },
  },
  create: (_params, _options, ctx) => projectedOptimizer('galore-8bit', ctx, (o) => {
    const eight = { ...adamSettings(o), min8bitSize: o.min_8bit_size as number };
    return { projected: galore8bitRule({ ...galoreSettings(o, ctx.seed), ...eight }, ctx.kernels), rest: adam8bitRule(eight, ctx.kernels) };
  }),
};

export const naturalGaloreOptimizer: OptimizerDef = {
  name: 'natural-galore',
  description: 'Natural GaLore: two-sided GaLore with a natural-gradient (Woodbury) transform of the projected gradient (arXiv 2410.16029)',
  options: {
    ...projectionOptions({ rank: 128, gap: 200, scale: 0.25 }), ...adamOptions({ eps: 1e-6, weightDecay: 0 }),
    natural_history: { type: 'integer', min: 1, max: 1024, default: 20, description: 'Projected gradients kept for the Fisher approximation' },
    damping: { type: 'number', min: 0, default: 1e-3, description: 'Damping lambda of the Fisher approximation lambda*I + G G^T (> 0)' },
  },
  create: (_params, _options, ctx) => projectedOptimizer('natural-galore', ctx, (o) => ({
    projected: naturalGaloreRule({
      ...projectionSettings(o, ctx.seed), ...adamSettings(o), history: o.natural_history as number, damping: o.damping as number,
    }, ctx.kernels),
    rest: galoreAdamwRule(adamSettings(o), ctx.kernels),
  })),
};

export const owloreOptimizer: OptimizerDef = {
  name: 'owlore',
  description: 'OwLore: GaLore on decoder layers sampled by their outlier ratio, resampled every few steps (arXiv 2405.18380)',
  options: {
    ...projectionOptions({ rank: 256, gap: 100, scale: 1 }), ...PROJ_TYPE_OPTION, ...adamOptions({ eps: 1e-6, weightDecay: 0 }),
    active_layers: { type: 'integer', min: 1, default: 5, description: 'Decoder layers trained at a time (the others frozen)' },
    resample_every: { type: 'integer', min: 1, default: 50, description: 'Steps between two samplings of the active layers' },
    prob_mode: { type: 'enum', choices: PROB_MODES, default: 'owl', description: 'Layer probabilities: owl = by outlier ratio, owl_reverse, uniform, increase, decrease (with depth)' },
    outlier_threshold: { type: 'number', min: 0, default: 13, description: 'M: a weight is an outlier above M x the layer mean magnitude' },
    outlier_scores: { type: 'list', default: [], description: 'Per-layer outlier ratios to sample by (one per layer); default: computed from the trainable weights' },
  },
  create(params, options, ctx) {
    const inner = projectedOptimizer('owlore', ctx, galoreRules(ctx));
    const scores = (options.outlier_scores as readonly string[]).map(Number);
    return withLayerSampling(inner, params, {
      activeLayers: options.active_layers as number, resampleEvery: options.resample_every as number,
      mode: options.prob_mode as ProbMode, threshold: options.outlier_threshold as number, scores, seed: ctx.seed,
    });
  },
};

export const GALORE_OPTIMIZERS: readonly OptimizerDef[] = [galoreOptimizer, galore8bitOptimizer, naturalGaloreOptimizer, owloreOptimizer];
