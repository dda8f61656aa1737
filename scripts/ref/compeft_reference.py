#!/usr/bin/env python3
"""Independent reference for `peft compress` (ComPEFT and top-K sparsify); writes the golden fixtures.

What it is: a PyTorch re-statement of ComPEFT's compression (Yadav et al. 2023; prateeky2806/ComPEFT,
src/qlora/ties_utils.py: get_compressed_lora_weights, state_dict_to_vector, topk_values_mask), written
from its formulas and sharing no code with the TypeScript:

    tv   = cat(flatten(sd[k]) for k in sorted(sd)) - reference      (reference 0 for LoRA factors)
    std  = tv.std()                                                  (unbiased, before pruning)
    k    = d - int(d * K);  kth = kthvalue(|tv|, k);  keep = |tv| >= kth
    compeft:  out = (alpha * std) * sign(tv) on kept entries, 0 elsewhere   (replace_factor = alpha > 0)
    sparsify: out = tv on kept entries, 0 elsewhere                         (replace_factor = -1), then f16

What it is not: the container format (peft's own; nothing in ComPEFT stores bits).

Run (from the repo root):  /usr/bin/python3 scripts/ref/compeft_reference.py
Writes packages/plugin-merge/test/fixtures/compress/: a LoRA adapter folder (lora/), a base and a fine-tuned
model folder (delta/{base,tuned}), and expected.safetensors + expected.json. Deterministic (fixed seed).
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_common import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packages", "plugin-merge", "test",
                   "fixtures", "compress")

# (density K, alpha) cases; K = 1 keeps everything (torch's kthvalue(0) is undefined: the TS keeps all).
CASES = [(0.1, 1.0), (0.25, 0.7), (0.05, 2.5), (0.5, 1.0)]


def flatten_sorted(sd):
    """The update as one vector over the tensors in sorted-key order."""
    return torch.cat([sd[k].reshape(-1).float() for k in sorted(sd)])


def unflatten_sorted(vec, like):
    out, off = {}, 0
    for k in sorted(like):
        n = like[k].numel()
        out[k] = vec[off:off + n].reshape(like[k].shape).clone()
        off += n
    return out


def topk_mask(tv, density):
    d = tv.numel()
    k = d - int(d * density)
    kth = tv.abs().kthvalue(k).values
    return tv.abs() >= kth


def compeft(sd, density, alpha, reference=None):
    tv = flatten_sorted(sd) - (0 if reference is None else flatten_sorted(reference))
    std = tv.std()
    mask = topk_mask(tv, density)
    out = (alpha * std) * (tv * mask).sign()
    return unflatten_sorted(out, sd), float(std), int((mask & (tv != 0)).sum())


def sparsify(sd, density):
    tv = flatten_sorted(sd)
    mask = topk_mask(tv, density)
    pruned = (tv * mask).half().float()
    return unflatten_sorted(pruned, sd), int((mask & (tv != 0)).sum())


def lora_adapter(g):
    """A small LoRA (r=4 over q/v of 2 layers, 48 -> 48 / 48 -> 24) with ties and exact zeros planted."""
    sd = {}
    for layer in range(2):
        for mod, out_f in (("q_proj", 48), ("v_proj", 24)):
            p = f"base_model.model.model.layers.{layer}.self_attn.{mod}"
            sd[f"{p}.lora_A.weight"] = torch.randn(4, 48, generator=g) / 48 ** 0.5
            sd[f"{p}.lora_B.weight"] = torch.randn(out_f, 4, generator=g) * 0.02
    a = sd["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]
    a[0, :6] = a[1, 0]        # six equal magnitudes (ties, both signs below)
    a[2, :3] = -a[1, 0]
    a[3, :5] = 0.0            # exact zeros: never stored, decode to 0
    # Ties AT the density-0.1 threshold: eight more entries with the 131st largest magnitude, so the
    # k-th value falls inside a group of equal magnitudes (all of them are kept).
    v = flatten_sorted(sd).abs().sort(descending=True).values[130]
    b = sd["base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight"]
    b[0, :8] = v * torch.tensor([1.0, -1.0] * 4)
    return sd


def model_pair(g):
    base = {"model.embed_tokens.weight": torch.randn(40, 16, generator=g) * 0.02,
            "model.layers.0.mlp.up_proj.weight": torch.randn(32, 16, generator=g) * 0.02,
            "model.norm.weight": torch.ones(16)}
    tuned = {k: v + torch.randn(v.shape, generator=g) * 0.001 for k, v in base.items()}
    tuned["model.norm.weight"][:4] = base["model.norm.weight"][:4]  # unchanged entries: zero update
    return base, tuned


def write_model(path, sd):
    os.makedirs(path, exist_ok=True)
    write_safetensors(os.path.join(path, "model.safetensors"), sorted(sd.items()), {"format": "pt"})
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16, "rms_norm_eps": 1e-06}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


def main():
    g = torch.Generator().manual_seed(20231122)
    lora = lora_adapter(g)
    os.makedirs(os.path.join(OUT, "lora"), exist_ok=True)
    write_safetensors(os.path.join(OUT, "lora", "adapter_model.safetensors"), sorted(lora.items()), {"format": "pt"})
    cfg = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"],
           "task_type": "CAUSAL_LM", "base_model_name_or_path": "tiny"}
    with open(os.path.join(OUT, "lora", "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)

    tensors, meta = [], {"compeft": [], "sparsify": []}
    for i, (density, alpha) in enumerate(CASES):
        out, std, kept = compeft(lora, density, alpha)
        tensors += [(f"compeft{i}.{k}", v) for k, v in sorted(out.items())]
        meta["compeft"].append({"density": density, "alpha": alpha, "std": std, "kept": kept})
    for i, (density, _) in enumerate(CASES):
        out, kept = sparsify(lora, density)
        tensors += [(f"sparsify{i}.{k}", v) for k, v in sorted(out.items())]
        meta["sparsify"].append({"density": density, "kept": kept})

    base, tuned = model_pair(g)
    write_model(os.path.join(OUT, "delta", "base"), base)
    write_model(os.path.join(OUT, "delta", "tuned"), tuned)
    out, std, kept = compeft(tuned, 0.2, 1.0, reference=base)
    tensors += [(f"delta.{k}", v) for k, v in sorted(out.items())]
    meta["delta"] = {"density": 0.2, "alpha": 1.0, "std": std, "kept": kept}

    write_safetensors(os.path.join(OUT, "expected.safetensors"), tensors, {"generator": "scripts/ref/compeft_reference.py"})
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
