"""Pieces of galore_reference.py that transcribe code outside GaLore itself: bitsandbytes' dynamic maps and
8-bit blockwise Adam (CPU backend), OWL's outlier ratio, numpy's choice(replace=False, p) and core-tensor's
xoshiro128** (src/fixtures/rng.ts). Each function names the file it follows."""
import math

import numpy as np
import torch


# ---- bitsandbytes (bitsandbytes-foundation/bitsandbytes @ 95f9af30) -----------------------------------------

def create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
    """bitsandbytes/functional.py create_dynamic_map, verbatim (signed: state1 "dynamic"; unsigned:
    state2 "udynamic", optim/optimizer.py fill_qmap)."""
    data = []
    non_sign_bits = total_bits - 1
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    for i in range(max_exponent_bits):
        fraction_items = int(2 ** (i + non_sign_bits - max_exponent_bits) + 1 if signed
                             else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1)
        boundaries = torch.linspace(0.1, 1, fraction_items, dtype=torch.float32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    if additional_items > 0:
        boundaries = torch.linspace(0.1, 1, additional_items + 1, dtype=torch.float32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    data.append(0)
    data.append(1.0)
    assert len(data) == 2 ** total_bits
    data += [0] * (256 - len(data))
    data.sort()
    return torch.tensor(data, dtype=torch.float32)


def quantize_blockwise(x, code, blocksize=256):
    """core-tensor's blockwise rule (backend/types.ts; bnb_reference.py): absmax per block, s = x * f32(1/absmax),
    q = number of midpoints below s (NaN, e.g. 0 * inf for an all-zero block, gives 0)."""
    flat = x.reshape(-1)
    mids = (code[:-1] + code[1:]) * 0.5
    q = torch.empty(flat.numel(), dtype=torch.uint8)
    absmax = torch.empty(-(-flat.numel() // blocksize))
    for b in range(absmax.numel()):
        blk = flat[b * blocksize:(b + 1) * blocksize]
        absmax[b] = blk.abs().max()
        inv = torch.tensor(1.0) / absmax[b]
        s = blk * inv
        q[b * blocksize:b * blocksize + blk.numel()] = (s[:, None] > mids[None, :]).sum(1).to(torch.uint8)
    return q.view(x.shape), absmax


def dequantize_blockwise(q, absmax, code, blocksize=256):
    """backends/default/ops.py _dequantize_blockwise_compute: code[q] * absmax[block]."""
    flat = code[q.reshape(-1).long()]
    scale = absmax.repeat_interleave(blocksize)[: flat.numel()]
    return (flat * scale).view(q.shape)


def bnb_adam_update(g, p, st, betas, eps, step, lr, weight_decay, maps):
    """backends/cpu/ops.py: _optimizer_update_8bit_blockwise_cpu (uint8 states) or _optimizer_update_32bit_cpu,
    optimizer "adam", gnorm_scale 1, no max_unorm; p is updated in place."""
    beta1, beta2 = betas
    eight = st["state1"].dtype == torch.uint8
    if eight:
        s1 = dequantize_blockwise(st["state1"], st["absmax1"], maps["dynamic"])
        s2 = dequantize_blockwise(st["state2"], st["absmax2"], maps["udynamic"])
    else:
        s1, s2 = st["state1"], st["state2"]
    grad = g.float()
    s1.mul_(beta1).add_(grad, alpha=1.0 - beta1)
    s2.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
    correction1 = 1.0 - beta1 ** step
    correction2 = math.sqrt(1.0 - beta2 ** step)
    if eight:
        denom = (s2.sqrt() / correction2).add_(eps)
        if weight_decay > 0.0:
            p.mul_(1.0 - lr * weight_decay)
        p.addcdiv_(s1, denom, value=-lr / correction1)
        st["state1"], st["absmax1"] = quantize_blockwise(s1, maps["dynamic"])
        st["state2"], st["absmax2"] = quantize_blockwise(s2, maps["udynamic"])
    else:
        step_size = -lr * correction2 / correction1
        if weight_decay > 0.0:
            p.mul_(1.0 - lr * weight_decay)
        p.add_(s1 / (s2.sqrt() + eps * correction2), alpha=step_size)


# ---- OWL / OwLore ---------------------------------------------------------------------------------------------

def outlier_ratio(metric, threshold):
    """OWL lib/prune_all.py check_outlier_mean: 100 * #{W > threshold * mean(W)} / numel, W a layer's scores."""
    return float((metric > torch.mean(metric) * threshold).sum().item()) / metric.numel() * 100


def choice_without_replacement(p, size, rand):
    """numpy/random/mtrand.pyx RandomState.choice(len(p), size, replace=False, p=p), the p branch, with
    `rand(k)` standing for self.rand(k) (k uniforms in [0, 1))."""
    p = np.array(p, dtype=np.float64)
    if np.count_nonzero(p > 0) < size:
        raise ValueError("Fewer non-zero entries in p than size")
    n_uniq, found = 0, np.zeros(size, dtype=np.int64)
    while n_uniq < size:
        x = rand(size - n_uniq)
        if n_uniq > 0:
            p[found[0:n_uniq]] = 0
        cdf = np.cumsum(p)
        cdf /= cdf[-1]
        new = cdf.searchsorted(x, side="right")
        _, unique_indices = np.unique(new, return_index=True)
        unique_indices.sort()
        new = new.take(unique_indices)
        found[n_uniq:n_uniq + new.size] = new
        n_uniq += new.size
    return [int(i) for i in found]


def _check_choice_transcription():
    """The transcription draws what numpy's own choice draws from the same MT19937 stream."""
    p = np.array([0.05, 0.3, 0.1, 0.25, 0.2, 0.1])
    for seed in range(20):
        rs = np.random.RandomState(seed)
        ours = choice_without_replacement(p, 3, np.random.RandomState(seed).random_sample)
        assert ours == list(rs.choice(6, 3, replace=False, p=p)), seed


_check_choice_transcription()


# ---- core-tensor src/fixtures/rng.ts ---------------------------------------------------------------------------

M32 = 0xFFFFFFFF


def fnv1a(s):
    """hashString: FNV-1a over UTF-16 code units (ASCII here)."""
    h = 0x811C9DC5
    for ch in s:
        h = ((h ^ ord(ch)) * 0x01000193) & M32
    return h


class Xoshiro128:
    """xoshiro128** seeded by splitmix32 over (seed, stream), as Xoshiro128 in rng.ts."""

    def __init__(self, seed, stream=0):
        x = (seed ^ ((stream * 0x9E3779B9) & M32)) & M32
        self.s = []
        for _ in range(4):
            x = (x + 0x9E3779B9) & M32
            z = x
            z = ((z ^ (z >> 16)) * 0x85EBCA6B) & M32
            z = ((z ^ (z >> 13)) * 0xC2B2AE35) & M32
            self.s.append(z ^ (z >> 16))
        if not any(self.s):
            self.s[0] = 1

    def next_u32(self):
        s = self.s
        rotl = lambda x, k: ((x << k) | (x >> (32 - k))) & M32  # noqa: E731
        r = (rotl((s[1] * 5) & M32, 7) * 9) & M32
        t = (s[1] << 9) & M32
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 11)
        return r

    def next_float(self):
        return (self.next_u32() >> 8) * 2.0 ** -24


def xoshiro_stream(seed, key):
    """rand(k) for one OwLore resampling: Xoshiro128(seed, hashString(key)).nextFloat() k times per call."""
    g = Xoshiro128(seed, fnv1a(key))
    return lambda k: np.array([g.next_float() for _ in range(k)])
