"""Reference values for plugin-merge's merge methods: a transcription of mergekit's formulas in torch
(float32, as mergekit computes with `dtype: float32`), written to
packages/plugin-merge/test/fixtures/merge/methods.json. The TS tests check every method against it to 1e-6.

Sources (arcee-ai/mergekit):
  mergekit/merge_methods/generalized_task_arithmetic.py  GTA merge(), get_mask()
  mergekit/merge_methods/registry.py                     the eight task-arithmetic presets and their defaults
  mergekit/sparsify.py                                   magnitude, bernoulli, magnitude_outliers, della_magprune,
                                                         rescaled_masked_tensor
  mergekit/merge_methods/linear.py, slerp.py, model_stock.py

Where mergekit draws random numbers (torch.bernoulli in `random` and `della_magprune`) this script draws
uniform u in [0, 1) from the same xoshiro128** generator as packages/core-tensor/src/random/rng.ts
(seeded through splitmix32; u = (next_u32 >> 8) * 2^-24, one per element in flat order, stream i for
model i) and keeps an element when u < p, which is what a Bernoulli(p) draw is.
Sorting: torch.argsort is not stable; ties are broken by index here (stable sorts), as in the TS code.
magnitude_outliers keeps ranks [n_bot, n - n_top): mergekit's `indices[n_bot:-n_top]` is empty when
n_top == 0 (Python's [a:-0]); the TS code and this script keep the intended window (see sparsify.ts).

Run: /usr/bin/python3 scripts/ref/merge_reference.py   (needs torch and numpy; deterministic output)
"""
import json
import os

import numpy as np
import torch

M32 = 0xFFFFFFFF
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "packages", "plugin-merge", "test", "fixtures", "merge", "methods.json")


# ---- the core's seeded generator (random/rng.ts), bit for bit ---------------------------------------------------

def imul(a, b):
    return (a * b) & M32


def rotl(x, k):
    x &= M32
    return ((x << k) | (x >> (32 - k))) & M32


class Xoshiro128:
    def __init__(self, seed, stream=0):
        x = (seed ^ imul(stream, 0x9E3779B9)) & M32
        s = []
        for _ in range(4):
            x = (x + 0x9E3779B9) & M32
            z = imul(x ^ (x >> 16), 0x85EBCA6B)
            z = imul(z ^ (z >> 13), 0xC2B2AE35)
            s.append((z ^ (z >> 16)) & M32)
        if s == [0, 0, 0, 0]:
            s[0] = 1
        self.s = s

    def next_u32(self):
        s = self.s
        r = imul(rotl(imul(s[1], 5), 7), 9)
        t = (s[1] << 9) & M32
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 11)
        return r

    def uniform(self, n):
        """n floats in [0, 1) (24 bits, exact in f32), as a float32 tensor."""
        return torch.tensor([(self.next_u32() >> 8) * 2.0 ** -24 for _ in range(n)], dtype=torch.float32)


# ---- mergekit/sparsify.py ------------------------------------------------------------------------------------------

def rescaled_masked_tensor(tensor, mask, rescale, eps=1e-7):
    masked = tensor * mask
    if not rescale:
        return masked
    before_scale = tensor.abs().sum()  # RescaleNorm.l1
    after_scale = masked.abs().sum()
    if before_scale < eps or after_scale < eps:
        return masked
    return masked * (before_scale / after_scale)


def magnitude(tensor, density, rescale):
    if density >= 1:
        return tensor
    k = int(density * tensor.numel())
    assert k > 0
    mask = torch.zeros_like(tensor)
    w = tensor.abs().view(-1)
    topk = torch.sort(w, descending=True, stable=True).indices[:k]  # mergekit: argsort(w, descending=True)[:k]
    mask.view(-1)[topk] = 1
    return rescaled_masked_tensor(tensor, mask, rescale)


def magnitude_outliers(tensor, density, rescale, gamma):
    if density >= 1:
        return tensor
    num_elems = tensor.numel()
    target_n = int(density * num_elems)
    n_top = int(gamma * num_elems)
    n_bot = num_elems - target_n - n_top
    if n_bot < 0:
        n_top += n_bot
        n_bot = 0
    w = tensor.abs().view(-1)
    indices = torch.sort(w, descending=False, stable=True).indices
    mask = torch.zeros_like(tensor)
    mask.view(-1)[indices[n_bot:num_elems - n_top]] = 1  # mergekit: indices[n_bot:-n_top]
    return rescaled_masked_tensor(tensor, mask, rescale)


def bernoulli(tensor, density, rescale, rng):
    if density >= 1:
        return tensor
    p = torch.full_like(tensor, fill_value=density, dtype=torch.float32)
    mask = (rng.uniform(tensor.numel()).view(tensor.shape) < p).to(torch.float32)  # torch.bernoulli(p)
    return rescaled_masked_tensor(tensor, mask, rescale)


def della_magprune(tensor, density, epsilon, rescale, rng):
    if density >= 1:
        return tensor
    orig_shape = tensor.shape
    assert 0 < density - epsilon and density + epsilon < 1
    if len(tensor.shape) < 2:
        tensor = tensor.unsqueeze(0)
    magnitudes = tensor.abs()
    sorted_indices = torch.sort(magnitudes, dim=1, descending=False, stable=True).indices
    ranks = sorted_indices.argsort(dim=1).to(torch.float32) + 1
    min_ranks = ranks.min(dim=1, keepdim=True).values
    max_ranks = ranks.max(dim=1, keepdim=True).values
    rank_norm = ((ranks - min_ranks) / (max_ranks - min_ranks)).clamp(0, 1)
    probs = (density - epsilon) + rank_norm * 2 * epsilon
    mask = (rng.uniform(tensor.numel()).view(tensor.shape) < probs).to(torch.float32)  # torch.bernoulli(probs)
    res = rescaled_masked_tensor(tensor, mask, rescale)
    return res.reshape(orig_shape)


def sparsify(tensor, method, density, gamma, epsilon, rescale, rng):
    if method == "magnitude":
        return magnitude(tensor, density, rescale)
    if method == "random":
        return bernoulli(tensor, density, rescale, rng)
    if method == "magnitude_outliers":
        return magnitude_outliers(tensor, density, rescale, gamma)
    if method == "della_magprune":
        return della_magprune(tensor, density, epsilon, rescale, rng)
    raise NotImplementedError(method)


# ---- mergekit/merge_methods/generalized_task_arithmetic.py ---------------------------------------------------------

# registry.py: name -> (consensus, sparsification, default_normalize, default_rescale)
GTA = {
    "task_arithmetic": (None, None, False, False),
    "ties": ("sum", "magnitude", True, False),
    "dare_ties": ("sum", "random", False, True),
    "dare_linear": (None, "random", False, True),
    "breadcrumbs": (None, "magnitude_outliers", False, False),
    "breadcrumbs_ties": ("sum", "magnitude_outliers", False, False),
    "della": ("sum", "della_magprune", True, True),
    "della_linear": (None, "della_magprune", False, True),
}


def get_mask(delta, method):
    sign = delta.sign()
    if method == "sum":
        majority_sign = (delta.sum(dim=0) >= 0).to(delta.dtype) * 2 - 1
    else:
        majority_sign = (sign.sum(dim=0) >= 0).to(delta.dtype) * 2 - 1
    return sign == majority_sign


def gta(name, base, models, glob, per_model, seed):
    consensus, sparsification, default_normalize, default_rescale = GTA[name]
    normalize = glob.get("normalize", default_normalize)
    rescale = glob.get("rescale", default_rescale)
    lam = glob.get("lambda", 1.0)
    consensus = glob.get("consensus_method", consensus) if consensus else None
    tvs = []
    for i, (x, p) in enumerate(zip(models, per_model)):
        delta = x - base
        if sparsification:
            delta = sparsify(delta, sparsification, p.get("density", 1.0), p.get("gamma", 0.01), p.get("epsilon", 0.15),
                             rescale, Xoshiro128(seed, i))
        tvs.append({"delta": delta, "weight": p["weight"]})
    deltas = torch.stack([tv["delta"] for tv in tvs], dim=0)
    weights = torch.tensor([tv["weight"] for tv in tvs], dtype=deltas.dtype)
    while deltas.dim() > weights.dim():
        weights.unsqueeze_(-1)
    weighted_deltas = deltas * weights
    if consensus:
        mask = get_mask(weighted_deltas, consensus)
        mixed_delta = (weighted_deltas * mask).sum(dim=0)
        divisor = (weights * mask).sum(dim=0)
        divisor[divisor == 0] = 1
    else:
        mixed_delta = weighted_deltas.sum(dim=0)
        divisor = weights.sum(dim=0)
        divisor[divisor.abs() < 1e-8] = 1
    if normalize:
        mixed_delta /= divisor
    if lam != 1:
        mixed_delta *= lam
    return (base + mixed_delta).to(base.dtype)


# ---- linear.py, slerp.py, model_stock.py ---------------------------------------------------------------------------

def linear(models, glob, per_model):
    tensors = torch.stack(models, dim=0)
    weights = torch.tensor([p["weight"] for p in per_model], dtype=tensors.dtype)
    while len(weights.shape) < len(tensors.shape):
        weights.unsqueeze_(-1)
    res = (weights * tensors).sum(dim=0)
    if glob.get("normalize", True):
        res /= weights.sum(dim=0)
    return res


def slerp(t, v0, v1, DOT_THRESHOLD=0.9995, eps=1e-8):
    v0 = v0.detach().cpu().float().numpy()
    v1 = v1.detach().cpu().float().numpy()
    v0_copy = np.copy(v0)
    v1_copy = np.copy(v1)

    def normalize(v):
        norm_v = np.linalg.norm(v)
        return v / norm_v if norm_v > eps else v

    v0 = normalize(v0)
    v1 = normalize(v1)
    dot = np.sum(v0 * v1)
    if np.abs(dot) > DOT_THRESHOLD:
        return torch.from_numpy((1 - t) * v0_copy + t * v1_copy)
    theta_0 = np.arccos(dot)
    sin_theta_0 = np.sin(theta_0)
    theta_t = theta_0 * t
    sin_theta_t = np.sin(theta_t)
    s0 = np.sin(theta_0 - theta_t) / sin_theta_0
    s1 = sin_theta_t / sin_theta_0
    return torch.from_numpy(s0 * v0_copy + s1 * v1_copy)


def model_stock(base, models, glob):
    w_0, ws = base, list(models)
    out_shape = w_0.shape
    if glob.get("filter_wise", False):
        if w_0.dim() == 1:
            w_0 = w_0.unsqueeze(0)
            ws = [w.unsqueeze(0) for w in ws]
    else:
        w_0 = w_0.view(-1)
        ws = [w.view(-1) for w in ws]
    offsets = [w - w_0 for w in ws]
    cos_thetas = []
    for i, w_0_offset in enumerate(offsets):
        for j in range(i + 1, len(offsets)):
            w_1_offset = offsets[j]
            norm_product = torch.norm(w_0_offset, dim=-1) * torch.norm(w_1_offset, dim=-1)
            cos_theta = ((w_0_offset * w_1_offset).sum(dim=-1) / norm_product.clamp(min=1e-6)).clamp(-1, 1)
            cos_thetas.append(cos_theta)
    cos_theta = torch.stack(cos_thetas).mean(dim=0).unsqueeze(-1)
    N = len(ws)
    t = (N * cos_theta) / (1 + (N - 1) * cos_theta)
    w_avg = sum(ws) / len(ws)
    w_h = t * w_avg + (1 - t) * w_0
    return w_h.reshape(out_shape)


# ---- fixtures ------------------------------------------------------------------------------------------------------

def inputs(shape, n_models, seed, zero_block=True):
    """A base ~ N(0, 1) and fine-tunes base + N(0, 0.1); the first rows of model 0 unchanged (ties among zeros)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(shape, generator=g, dtype=torch.float32)
    models = [base + 0.1 * torch.randn(shape, generator=g, dtype=torch.float32) for _ in range(n_models)]
    if zero_block:
        models[0].view(-1)[:5] = base.view(-1)[:5]
    return base, models


def case(method, shape, n_models, data_seed, glob=None, per_model=None, seed=1):
    glob = glob or {}
    per_model = per_model or [{} for _ in range(n_models)]
    base, models = inputs(shape, n_models, data_seed)
    if method in GTA:
        out = gta(method, base, [m.clone() for m in models], glob, per_model, seed)
    elif method == "linear":
        out = linear(models, glob, per_model)
    elif method == "slerp":
        out = slerp(glob["t"], base, models[0])
    elif method == "model_stock":
        out = model_stock(base, models, glob)
    else:
        raise ValueError(method)
    flat = lambda t: [float(x) for x in t.reshape(-1).tolist()]
    return {
        "method": method, "shape": list(shape), "seed": seed, "global": glob, "perModel": per_model,
        "base": flat(base), "models": [flat(m) for m in models], "expected": flat(out.to(torch.float32)),
    }


def w(*weights, **extra):
    """Per-model parameters: weight i, plus per-model lists of other keys."""
    return [{"weight": wt, **{k: v[i] for k, v in extra.items()}} for i, wt in enumerate(weights)]


def cases():
    S, V, T3 = [8, 16], [16], [4, 3, 5]
    out = [
        case("linear", S, 3, 10, {}, w(1.0, 2.0, 3.0)),
        case("linear", S, 2, 11, {"normalize": False}, w(0.5, -0.25)),
        case("task_arithmetic", S, 3, 12, {}, w(0.5, 0.3, 0.2)),
        case("task_arithmetic", V, 2, 13, {"normalize": True, "lambda": 0.7}, w(1.0, 0.5)),
        case("ties", S, 3, 14, {}, w(1.0, 0.5, 0.8, density=[0.5, 0.5, 0.5])),
        case("ties", S, 3, 15, {"normalize": False, "consensus_method": "count"}, w(1.0, 1.0, 1.0, density=[0.3, 0.6, 0.9])),
        case("ties", V, 2, 16, {"rescale": True, "lambda": 1.3}, w(0.7, 0.6, density=[0.25, 0.5])),
        case("dare_ties", S, 3, 17, {}, w(1.0, 0.5, 0.5, density=[0.5, 0.5, 0.5]), seed=1),
        case("dare_ties", S, 3, 17, {}, w(1.0, 0.5, 0.5, density=[0.5, 0.5, 0.5]), seed=2),
        case("dare_ties", S, 2, 18, {"rescale": False, "normalize": True}, w(0.6, 0.4, density=[0.7, 0.3]), seed=12345),
        case("dare_linear", S, 3, 19, {}, w(0.4, 0.4, 0.2, density=[0.7, 0.7, 0.7]), seed=3),
        case("dare_linear", V, 2, 20, {"normalize": True}, w(1.0, 1.0, density=[0.9, 0.5]), seed=4),
        case("breadcrumbs", S, 3, 21, {}, w(1.0, 0.5, 0.5, density=[0.8, 0.8, 0.8], gamma=[0.05, 0.05, 0.05])),
        case("breadcrumbs", S, 2, 22, {"rescale": True}, w(1.0, 1.0, density=[0.9, 0.5])),
        case("breadcrumbs_ties", S, 3, 23, {}, w(1.0, 0.7, 0.4, density=[0.9, 0.9, 0.9], gamma=[0.02, 0.1, 0.0])),
        case("della", S, 3, 24, {}, w(1.0, 0.5, 0.5, density=[0.5, 0.5, 0.5], epsilon=[0.1, 0.1, 0.1]), seed=5),
        case("della", T3, 2, 25, {"lambda": 0.9}, w(1.0, 1.0, density=[0.6, 0.4]), seed=6),
        case("della_linear", S, 3, 26, {"lambda": 1.5}, w(0.5, 0.3, 0.2, density=[0.6, 0.6, 0.6], epsilon=[0.2, 0.2, 0.2]), seed=7),
        case("della_linear", V, 2, 27, {"normalize": True}, w(1.0, 2.0, density=[0.5, 0.7], epsilon=[0.05, 0.25]), seed=8),
        case("ties", S, 2, 34, {}, w(0.5, -0.5, density=[0.6, 0.6])),  # agreeing weights that cancel: divisor 0 -> 1
        case("dare_ties", S, 3, 35, {"consensus_method": "count"}, w(-1.0, 0.5, 2.0, density=[0.5, 0.8, 0.3]), seed=9),
        case("slerp", S, 1, 28, {"t": 0.3}),
        case("slerp", V, 1, 29, {"t": 0.75}),
        case("model_stock", S, 3, 30, {}),
        case("model_stock", S, 2, 31, {"filter_wise": True}),
        case("model_stock", V, 3, 32, {"filter_wise": True}),
    ]
    # slerp of nearly colinear tensors (|cos| > 0.9995): mergekit's lerp branch
    base, models = inputs(S, 1, 33, zero_block=False)
    far = base * 2 + 1e-4
    c = case("slerp", S, 1, 33, {"t": 0.4})
    c["models"] = [[float(x) for x in far.reshape(-1).tolist()]]
    c["expected"] = [float(x) for x in slerp(0.4, base, far).reshape(-1).tolist()]
    out.append(c)
    return out


def rng_vectors():
    res = []
    for seed, stream in [(0, 0), (1, 0), (1, 2), (123456789, 7), (0xFFFFFFFF, 0xFFFFFFFF)]:
        g = Xoshiro128(seed, stream)
        res.append({"seed": seed, "stream": stream, "u32": [g.next_u32() for _ in range(8)]})
    return res


def main():
    torch.manual_seed(0)
    data = {"generator": "scripts/ref/merge_reference.py", "rng": rng_vectors(), "cases": cases()}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(OUT)}: {len(data['cases'])} cases")


if __name__ == "__main__":
    main()
