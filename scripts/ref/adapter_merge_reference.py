#!/usr/bin/env python3
"""Independent reference for adapter merges and folding (`peft merge --adapter`); writes golden fixtures.

What it is: NumPy (f64 unless said otherwise) statements of
  - the LoRA update of each module, ΔW = s · B · A with s = lora_alpha / r, or lora_alpha / sqrt(r) with
    use_rslora (huggingface/peft src/peft/tuners/lora/layer.py update_layer / get_delta_weight);
  - cat: Σ wᵢ sᵢ Bᵢ Aᵢ (what the concatenated adapter must equal exactly);
  - linear (mergekit linear.py, normalize=True): M = Σ wᵢ ΔWᵢ / Σ wᵢ, then the best rank-r approximation
    from numpy.linalg.svd (Eckart-Young), r = the largest input rank of the module;
  - ties (mergekit generalized_task_arithmetic.py with magnitude sparsification, "sum" consensus,
    normalize=True; f32 arithmetic as torch does it) on the full ΔWᵢ with a zero base, then rank r;
  - folding: W' = W + Σ wᵢ ΔWᵢ, and DoRA W' = m / ||W + ΔW||_row · (W + ΔW) (peft DoraLinearLayer).
Modules missing from an adapter contribute a zero update. It shares no code with the TypeScript.

Run (from the repo root):  /usr/bin/python3 scripts/ref/adapter_merge_reference.py
Writes packages/core-tensor/test/fixtures/adapters/: base/ (a tiny model folder), a/, b/, dora/ (PEFT adapter
folders), expected.safetensors and expected.json. Deterministic (fixed seed).
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_common import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packages", "core-tensor", "test",
                   "fixtures", "adapters")
F32 = np.float32
SHAPES = {"q_proj": (24, 24), "k_proj": (12, 24), "v_proj": (12, 24)}  # [out, in]
WEIGHTS = [0.7, 1.3]
DENSITY = 0.5


def module(layer, name):
    return f"model.layers.{layer}.self_attn.{name}"


def lora(rng, r, alpha, targets, rslora=False, dora=False):
    """A PEFT LoRA adapter: config + {module: (A [r, in], B [out, r])} (f32) (+ magnitude for DoRA)."""
    mods = {}
    for layer in range(2):
        for t in targets:
            out_f, in_f = SHAPES[t]
            a = (rng.standard_normal((r, in_f)) / np.sqrt(in_f)).astype(F32)
            b = (rng.standard_normal((out_f, r)) * 0.1).astype(F32)
            mods[module(layer, t)] = (a, b)
    cfg = {"peft_type": "LORA", "r": r, "lora_alpha": alpha, "lora_dropout": 0.0, "target_modules": sorted(targets),
           "use_rslora": rslora, "use_dora": dora, "task_type": "CAUSAL_LM", "bias": "none", "base_model_name_or_path": "base"}
    return cfg, mods


def scale(cfg):
    return cfg["lora_alpha"] / (np.sqrt(cfg["r"]) if cfg["use_rslora"] else cfg["r"])


def delta(cfg, ab):
    a, b = ab
    return scale(cfg) * (b.astype(np.float64) @ a.astype(np.float64))


def write_adapter(path, cfg, mods, magnitudes=None):
    os.makedirs(path, exist_ok=True)
    tensors = []
    for m, (a, b) in mods.items():
        tensors.append((f"base_model.model.{m}.lora_A.weight", a))
        tensors.append((f"base_model.model.{m}.lora_B.weight", b))
        if magnitudes is not None:
            tensors.append((f"base_model.model.{m}.lora_magnitude_vector", magnitudes[m]))
    write_safetensors(os.path.join(path, "adapter_model.safetensors"), sorted(tensors), {"format": "pt"})
    with open(os.path.join(path, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


def best_rank(m, r):
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    approx = (u[:, :r] * s[:r]) @ vt[:r]
    return approx, float(np.sqrt((s[r:] ** 2).sum() / (s ** 2).sum()))


def ties(deltas, weights, density):
    """mergekit ties on task vectors (zero base), f32 as torch: magnitude top-k, "sum" sign, disjoint mean."""
    w = np.array(weights, dtype=F32)
    stacked = []
    for d in deltas:
        d = d.astype(F32).reshape(-1)
        k = int(density * d.size)
        keep = np.zeros(d.size, dtype=bool)
        keep[np.argsort(-np.abs(d), kind="stable")[:k]] = True
        stacked.append(np.where(keep, d, F32(0)))
    wd = [F32(w[i]) * stacked[i] for i in range(len(stacked))]
    total = wd[0].copy()
    for x in wd[1:]:
        total = total + x
    elected = np.where(total >= 0, F32(1), F32(-1))
    mixed = np.zeros_like(total)
    divisor = np.zeros_like(total)
    for i, x in enumerate(wd):
        agree = np.sign(x) == elected
        mixed = mixed + np.where(agree, x, F32(0))
        divisor = divisor + np.where(agree, w[i], F32(0))
    divisor[divisor == 0] = 1
    return (mixed / divisor).astype(np.float64).reshape(deltas[0].shape)


def main():
    rng = np.random.default_rng(20240517)
    cfg_a, a = lora(rng, 4, 8, ["q_proj", "k_proj", "v_proj"])
    cfg_b, b = lora(rng, 6, 8, ["q_proj", "v_proj"], rslora=True)  # no k_proj: a zero update there
    cfg_d, d = lora(rng, 2, 4, ["q_proj"], dora=True)
    base = {}
    for layer in range(2):
        for t, shape in SHAPES.items():
            base[f"{module(layer, t)}.weight"] = (rng.standard_normal(shape) * 0.05).astype(F32)
    base["model.norm.weight"] = np.ones(24, dtype=F32)
    # DoRA magnitude: PEFT initialises m = ||W + s B A||_row; perturb it so folding has something to do.
    mag = {m: (np.linalg.norm(base[f"{m}.weight"].astype(np.float64) + delta(cfg_d, ab), axis=1)
               * (1 + 0.1 * rng.standard_normal(SHAPES["q_proj"][0]))).astype(F32) for m, ab in d.items()}

    write_adapter(os.path.join(OUT, "a"), cfg_a, a)
    write_adapter(os.path.join(OUT, "b"), cfg_b, b)
    write_adapter(os.path.join(OUT, "dora"), cfg_d, d, mag)
    os.makedirs(os.path.join(OUT, "base"), exist_ok=True)
    write_safetensors(os.path.join(OUT, "base", "model.safetensors"), sorted(base.items()), {"format": "pt"})
    with open(os.path.join(OUT, "base", "config.json"), "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "float32"}, f, indent=2, sort_keys=True)

    tensors, meta = [], {"weights": WEIGHTS, "density": DENSITY, "linear": {}, "ties": {}}
    for m in sorted(set(a) | set(b)):
        parts = [(cfg_a, a.get(m)), (cfg_b, b.get(m))]
        deltas = [delta(c, ab) if ab is not None else np.zeros(SHAPES[m.rsplit(".", 1)[1]]) for c, ab in parts]
        r = max(c["r"] for c, ab in parts if ab is not None)
        total = sum(w * dw for w, dw in zip(WEIGHTS, deltas))
        tensors.append((f"sum.{m}", total.astype(F32)))
        lin = total / sum(WEIGHTS)
        approx, err = best_rank(lin, r)
        tensors.append((f"linear.{m}", approx.astype(F32)))
        meta["linear"][m] = {"rank": r, "rel_error": err}
        tm = ties(deltas, WEIGHTS, DENSITY)
        approx, err = best_rank(tm, r)
        tensors.append((f"ties.{m}", approx.astype(F32)))
        meta["ties"][m] = {"rank": r, "rel_error": err}
        w = base[f"{m}.weight"].astype(np.float64)
        tensors.append((f"fold.{m}.weight", (w + total).astype(F32)))
    for m, ab in d.items():
        v = base[f"{m}.weight"].astype(np.float64) + delta(cfg_d, ab)
        folded = mag[m].astype(np.float64)[:, None] / np.linalg.norm(v, axis=1, keepdims=True) * v
        tensors.append((f"fold_dora.{m}.weight", folded.astype(F32)))

    write_safetensors(os.path.join(OUT, "expected.safetensors"), tensors, {"generator": "scripts/ref/adapter_merge_reference.py"})
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
