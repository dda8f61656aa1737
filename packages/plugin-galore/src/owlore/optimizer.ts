/**
 * OwLore as an Optimizer: GaLore (the inner optimizer, OwLore's finetuner.py builds GaLoreAdamW) over
 * layers sampled every `resample_every` steps. Resampling k (0-based) holds for steps
 * k·resample_every + 1 .. (k + 1)·resample_every (the callback switches at global_step % interval == 0,
 * step 0 included). Only the parameters of the sampled layers, and those outside every layer, are
 * updated; the others are frozen for the step: `activeParams(step)` tells the trainer, which then
 * computes no grads for them (OwLore sets requires_grad = False). Frozen parameters keep their GaLore
 * state and step count (torch's state is per parameter and skipped without a grad), so their bases
 * are recomputed on their own schedule when they are sampled again.
 * State: the inner optimizer's, plus `owlore.step` (the steps taken) and the sampling settings, checked
 * on load, so a resumed run samples the same layers at the same steps.
 * Not here: the probabilities (layers.ts), the draw (sampling.ts), GaLore (galore.ts).
 */
import { PeftError, type Optimizer, type OptimizerState, type Tensor } from '@peft/core-tensor';
import { planLayers, layerOf, type ProbOptions } from './layers.js';
import { choiceWithoutReplacement, eventStream } from './sampling.js';

export interface OwloreSettings extends ProbOptions {
  activeLayers: number;
  resampleEvery: number;
  seed: number;
}

const STEP_KEY = 'owlore.step';

/** `inner` over `params`, updating only the layers sampled for each step. */
export function withLayerSampling(inner: Optimizer, params: readonly [string, Tensor][], o: OwloreSettings): Optimizer {
  const bad = (msg: string) => new PeftError('E_INPUT', `owlore: ${msg}`);
  if (!(Number.isSafeInteger(o.activeLayers) && o.activeLayers >= 1)) throw bad(`active_layers must be an integer >= 1, got ${o.activeLayers}`);
  if (!(Number.isSafeInteger(o.resampleEvery) && o.resampleEvery >= 1)) throw bad(`resample_every must be an integer >= 1, got ${o.resampleEvery}`);
  const plan = planLayers(params, o);
  if (o.activeLayers > plan.layers.length) throw bad(`active_layers is ${o.activeLayers} but only ${plan.layers.length} layers have trainable parameters`);
  const settings = {
    'owlore.active_layers': o.activeLayers, 'owlore.resample_every': o.resampleEvery, 'owlore.prob_mode': o.mode,
    'owlore.probs': JSON.stringify(plan.probs), 'owlore.layers': JSON.stringify(plan.layers),
  };
  const always = params.filter(([n]) => layerOf(n) === undefined).map(([n]) => n);
  const cache = new Map<number, ReadonlySet<string>>();
  const activeAt = (step: number): ReadonlySet<string> => {
    const event = Math.floor((step - 1) / o.resampleEvery);
    let set = cache.get(event);
    if (!set) {
      const picked = new Set(choiceWithoutReplacement(plan.probs, o.activeLayers, eventStream(o.seed, event)).map((i) => plan.layers[i]));
      set = new Set([...always, ...params.filter(([n]) => picked.has(layerOf(n)!)).map(([n]) => n)]);
      cache.clear();
      cache.set(event, set);
    }
    return set;
  };
  let steps = 0;
  let asked: number | undefined;
  return {
    activeParams: (step) => {
      if (!(Number.isSafeInteger(step) && step >= 1)) throw new PeftError('E_INPUT', `owlore: step must be an integer >= 1, got ${step}`);
      asked = step;
      return activeAt(step);
    },
    step(lr) {
      if (asked !== undefined && asked !== steps + 1) {
        throw new PeftError('E_RUNTIME', `owlore: the trainer asked for step ${asked}'s layers, but this optimizer's next step is ${steps + 1}`);
      }
      const active = activeAt(steps + 1);
      // A caller that computed grads for frozen layers anyway (not the trainer): they are not applied.
      const hidden = params.filter(([n, t]) => t.grad && !active.has(n)).map(([, t]) => [t, t.grad!] as const);
      for (const [t] of hidden) t.grad = undefined;
      try {
        inner.step(lr);
      } finally {
        for (const [t, g] of hidden) t.grad = g;
      }
      steps++;
    },
    stateSpec: () => inner.stateSpec(),
    stateDict(): OptimizerState {
      const s = inner.stateDict();
      return { tensors: s.tensors, meta: { ...s.meta, ...settings, [STEP_KEY]: steps } };
    },
    loadStateDict(state) {
      const { [STEP_KEY]: saved, ...meta } = state.meta;
      for (const [key, want] of Object.entries(settings)) {
        if (meta[key] !== want) throw bad(`${key.slice('owlore.'.length)} is ${want} but the saved optimizer state was made with ${String(meta[key])}`);
        delete meta[key];
      }
      if (typeof saved !== 'number' || !Number.isSafeInteger(saved) || saved < 0) {
        throw new PeftError('E_FORMAT', `owlore state: no valid "${STEP_KEY}"`);
      }
      inner.loadStateDict({ tensors: state.tensors, meta });
      steps = saved;
      asked = undefined;
    },
    dispose: () => inner.dispose(),
  };
}
