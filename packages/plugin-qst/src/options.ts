/**
 * The options of `qst` and `lst` (what `peft methods` prints and `--set` is checked against), the typed
 * settings both methods work with, and the side network's LlamaConfig: the base's own config with the
 * hidden and intermediate sizes divided by r and the head count kept, so the head dim shrinks by r, as
 * YouAreSpecialToMe/QST modeling_llama_qst.py (QSTLlamaModel.__init__: config_copy_qst) and
 * ylsung/Ladder-Side-Tuning seq2seq/third_party/models/t5/modeling_side_t5.py (T5Stack: side_config,
 * d_kv // r) build it. The side layers are the base architecture's decoder layers (biases included).
 * Not here: the network (ladder.ts), the adapter files (format.ts), the feature cache (feature-cache.ts).
 */
import { PeftError, type LlamaConfig, type OptionsSchema, type ResolvedOptions } from '@peft/core-tensor';

export type Ladder = 'qst' | 'lst';
export type DownsampleKind = 'adapter' | 'linear' | 'maxpool' | 'avgpool';
/** maxpool / avgpool have no parameters: their features are a fixed function of the backbone's states. */
export const GRADIENT_FREE: ReadonlySet<DownsampleKind> = new Set(['maxpool', 'avgpool']);

export interface SideSettings {
  method: Ladder;
  /** Reduction factor: side width = hidden_size / r. */
  r: number;
  /** Width inside the `adapter` downsample (QST's peft_hidden_size). */
  adapterDim: number;
  downsample: DownsampleKind;
  /** LST gates sigmoid(alpha / T): the initial alpha and the temperature T (modeling_side_t5.py). */
  gateAlpha: number;
  gateT: number;
  cacheFeatures: boolean;
  cacheMaxMb: number;
}

const DOWNSAMPLE = ['adapter', 'linear', 'maxpool', 'avgpool'] as const;
const DOWNSAMPLE_HELP = 'adapter: Linear(h->adapter_dim) -> SiLU -> Linear(adapter_dim->h/r) -> LayerNorm (QST); ' +
  'linear: Linear(h->h/r) (LST); maxpool: MaxPool1d(r) (QST\'s first version); avgpool: AdaptiveAvgPool1d(h/r) (LST); the pools are gradient-free';

const common = (downsample: DownsampleKind) => ({
  r: { type: 'integer', min: 1, default: 16, description: 'Reduction factor: the side layers are the base\'s decoder layers at hidden_size / r (heads kept)' },
  adapter_dim: { type: 'integer', min: 1, default: 16, description: 'Width inside the adapter downsample (QST peft_hidden_size)' },
  downsample: { type: 'enum', choices: DOWNSAMPLE, default: downsample, description: DOWNSAMPLE_HELP },
  cache_features: {
    type: 'boolean', default: false,
    description: 'Keep what the side network reads from the frozen backbone (bf16; downsampled when the downsample is gradient-free) and skip the backbone in later epochs',
  },
  cache_max_mb: { type: 'integer', min: 0, default: 1024, description: 'RAM for cached features (MiB); beyond it they go to a file under OUT' },
}) as const;

export const QST_OPTIONS = common('adapter') satisfies OptionsSchema;

export const LST_OPTIONS = {
  ...common('linear'),
  gate_alpha: { type: 'number', default: 0, description: 'Initial gate parameter alpha of every layer (LST gate_alpha)' },
  gate_t: { type: 'number', min: 1e-6, default: 0.1, description: 'Gate temperature T: gate = sigmoid(alpha / T) (LST gate_T)' },
} as const satisfies OptionsSchema;

export function settingsOf(method: Ladder, o: ResolvedOptions): SideSettings {
  return {
    method, r: o.r as number, adapterDim: o.adapter_dim as number, downsample: o.downsample as DownsampleKind,
    gateAlpha: (o.gate_alpha as number | undefined) ?? 0, gateT: (o.gate_t as number | undefined) ?? 0.1,
    cacheFeatures: o.cache_features as boolean, cacheMaxMb: o.cache_max_mb as number,
  };
}

/**
 * The side layers' config: hidden h/r, intermediate int(I/r) (the repo's int() truncation), the base's
 * heads and kv heads with head dim h/r/heads (old LlamaAttention's hidden_size // num_heads), the base's
 * rope, norm eps and biases. Refuses what the side layers cannot be built with (E_INPUT, exit 2).
 */
export function sideConfig(base: LlamaConfig, s: Pick<SideSettings, 'method' | 'r'>): LlamaConfig {
  const { hiddenSize: C, intermediateSize: I, numHeads: nh } = base;
  const bad = (why: string) => new PeftError('E_INPUT', `${s.method}: r = ${s.r} ${why}`);
  if (C % s.r !== 0) throw bad(`does not divide hidden_size ${C}`);
  const side = C / s.r;
  if (side % nh !== 0) throw bad(`gives side hidden size ${side}, not a multiple of the ${nh} attention heads the side layers keep`);
  const headDim = side / nh;
  if (headDim % 2 !== 0) throw bad(`gives side head dim ${headDim} (${side} / ${nh} heads), which must be even for rotary embeddings`);
  const inter = Math.floor(I / s.r);
  if (inter < 1) throw bad(`leaves no side intermediate size (intermediate_size ${I})`);
  return { ...base, hiddenSize: side, intermediateSize: inter, headDim };
}
