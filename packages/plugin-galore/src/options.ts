/**
 * The option schemas of this plugin's optimizers (`peft train --optimizer NAME --set key=value`, shown
 * by `peft methods`) and their translation into the rules' settings. Defaults are the references':
 * galore-torch's recipes (rank 128, update_proj_gap 200, scale 0.25, proj_type std, eps 1e-6; its
 * projector's own scale default is 1.0), GaLoreAdamW8bit's (eps 1e-8, weight_decay 1e-2,
 * min_8bit_size 4096), Natural GaLore's (natural_history 20, damping 1e-3) and OwLore's
 * run_owlore_low_rank.sh / finetuner.py (rank 256, update_proj_gap 100, scale 1, 5 layers every 50 steps).
 * Not here: the rules (galore.ts, eightbit.ts, natural.ts), the entries (optimizers.ts).
 */
import type { OptionsSchema, ResolvedOptions } from '@peft/core-tensor';
import type { AdamSettings } from './adam.js';
import type { GaloreSettings, ProjectionSettings } from './galore.js';
import { PROJ_TYPES, type ProjType } from './projection.js';
import { DEFAULT_TARGETS } from './targets.js';

interface ProjectionDefaults {
  rank: number;
  gap: number;
  scale: number;
}

export function projectionOptions(d: ProjectionDefaults): OptionsSchema {
  return {
    rank: { type: 'integer', min: 1, default: d.rank, description: 'Rank r of the projected gradient and of the optimizer states' },
    update_proj_gap: { type: 'integer', min: 1, default: d.gap, description: 'Steps between recomputations of the projection from the gradient' },
    scale: { type: 'number', min: 0, default: d.scale, description: 'GaLore scale alpha on the projected-back update (> 0)' },
    target_modules: {
      type: 'list', default: DEFAULT_TARGETS,
      description: 'Substrings of the 2-D parameter names to project (* = all); the rest, and matrices whose smaller side is <= rank, get AdamW',
    },
    svd: {
      type: 'enum', choices: ['randomized', 'exact'], default: 'randomized',
      description: 'Projection basis: randomized truncated SVD (seeded) or exact full SVD as galore-torch (slow on large matrices)',
    },
    svd_oversample: { type: 'integer', min: 0, max: 1024, default: 10, description: 'Randomized SVD: extra columns of the range finder' },
    svd_power_iters: { type: 'integer', min: 0, max: 64, default: 2, description: 'Randomized SVD: power iterations (more: more accurate, slower)' },
  };
}

export function adamOptions(d: { eps: number; weightDecay: number }): OptionsSchema {
  return {
    beta1: { type: 'number', min: 0, max: 1, default: 0.9, description: 'Decay of the first-moment average, < 1' },
    beta2: { type: 'number', min: 0, max: 1, default: 0.999, description: 'Decay of the second-moment average, < 1' },
    eps: { type: 'number', min: 0, default: d.eps, description: 'Added to the denominator for stability' },
    weight_decay: { type: 'number', min: 0, default: d.weightDecay, description: 'Decoupled weight decay (p -= lr * wd * p after the update)' },
  };
}

export const PROJ_TYPE_OPTION: OptionsSchema = {
  proj_type: {
    type: 'enum', choices: PROJ_TYPES, default: 'std',
    description: 'Side projected: std = the smaller dimension, reverse_std = the larger, left, right, full = both',
  },
};

const num = (o: ResolvedOptions, key: string) => o[key] as number;

export const adamSettings = (o: ResolvedOptions): AdamSettings => ({
  beta1: num(o, 'beta1'), beta2: num(o, 'beta2'), eps: num(o, 'eps'), weightDecay: num(o, 'weight_decay'),
});

export const projectionSettings = (o: ResolvedOptions, seed: number): ProjectionSettings => ({
  rank: num(o, 'rank'), updateProjGap: num(o, 'update_proj_gap'), scale: num(o, 'scale'), svd: o.svd as 'exact' | 'randomized',
  oversample: num(o, 'svd_oversample'), powerIters: num(o, 'svd_power_iters'), seed,
});

export const galoreSettings = (o: ResolvedOptions, seed: number): GaloreSettings => ({
  ...projectionSettings(o, seed), ...adamSettings(o), projType: o.proj_type as ProjType,
});

export const targetsOf = (o: ResolvedOptions) => o.target_modules as readonly string[];
