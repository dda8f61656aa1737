#!/usr/bin/env python3
"""Golden fixtures for peft's training kernels (packages/core-tensor/src/backend/train-kernels.ts).

What it is: small inputs, outputs and gradients computed by torch in float64, with autograd for every
backward, written the way the model code in transformers / torch computes them:
  gemm           torch.addmm with alpha/beta (beta=0 ignores NaN in C), all four transposes
  rmsnorm        transformers' LlamaRMSNorm.forward (in f64: its `.to(float32)` cast is left out)
  swiglu         F.silu(gate) * up (LlamaMLP)
  rope           transformers' rotate_half / apply_rotary_pos_emb, with the tables of LlamaRotaryEmbedding
                 for rope_type "default" and "llama3" (_compute_default_rope_parameters and
                 _compute_llama3_parameters, copied below). The tables are written twice: in f64 (what the
                 kernel tests use) and exactly as transformers computes them in f32 (what model code must
                 reproduce): inv_freq, then cos/sin of inv_freq[None] * pos in f32.
  attention      causal GQA attention written out: repeat_kv, softmax(q k^T * scale + causal mask) v, with
                 the query block at the end of the keys (KV cache: query t sits at position S-T+t)
  cross_entropy  F.cross_entropy(ignore_index=-100), per row and mean, and d(mean)/d(logits)
  adamw          torch.optim.AdamW, three steps with weight decay on fixed params and grads

What it is not: transformers itself (not installed here); the few functions used are copied, and named.

Run (from the repo root; Debian's python has torch, the pyenv one does not):
    /usr/bin/python3 scripts/ref/train_kernels_reference.py
Writes packages/core-tensor/test/fixtures/kernels/*.safetensors (F64 and I32 tensors; scalars such as
eps or scale in __metadata__ as decimal strings). Deterministic: fixed seeds, float64 math.
"""
import math
import os

import torch
import torch.nn.functional as F

from ref_common import default_inv_freq, llama3_inv_freq
from ref_common import write_safetensors as _write

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packages", "core-tensor", "test",
                   "fixtures", "kernels")


def write_safetensors(name, tensors, metadata):
    return _write(os.path.join(OUT, name + ".safetensors"), tensors, metadata)


def leaf(t):
    return t.clone().requires_grad_(True)


# ---- gemm -------------------------------------------------------------------------------------------

def gemm_cases(g):
    """C = alpha op(A) op(B) + beta C for every transpose; A, B stored as the kernel reads them."""
    m, n, k, out = 3, 4, 5, {}
    for ta in (0, 1):
        for tb in (0, 1):
            a = torch.randn((k, m) if ta else (m, k), generator=g)
            b = torch.randn((n, k) if tb else (k, n), generator=g)
            c = torch.randn(m, n, generator=g)
            p = f"t{ta}{tb}"
            out.update({f"{p}.a": a, f"{p}.b": b, f"{p}.c": c,
                        f"{p}.out": torch.addmm(c, a.T if ta else a, b.T if tb else b, beta=0.3, alpha=0.7)})
    # beta = 0: C holds NaN and must be ignored (torch.addmm documents the same rule)
    a, b = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g)
    nan = torch.full((m, n), float("nan"))
    out.update({"beta0.a": a, "beta0.b": b, "beta0.c": nan, "beta0.out": torch.addmm(nan, a, b, beta=0, alpha=-1.5)})
    return out, {"m": m, "n": n, "k": k, "alpha": 0.7, "beta": 0.3, "beta0_alpha": -1.5}


# ---- rmsnorm / swiglu --------------------------------------------------------------------------------

def llama_rmsnorm(weight, hidden_states, eps):
    """transformers LlamaRMSNorm.forward, minus the f32 round trip (the fixture is f64 throughout)."""
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    hidden_states = hidden_states * torch.rsqrt(variance + eps)
    return weight * hidden_states, torch.rsqrt(variance + eps).squeeze(-1)


def rmsnorm_case(g):
    N, C, eps = 6, 16, 1e-5
    x = torch.randn(N, C, generator=g) * 2
    x[2] *= 1e-3  # a row where eps matters
    w = 1 + 0.5 * torch.randn(C, generator=g)
    dout = torch.randn(N, C, generator=g)
    xl, wl = leaf(x), leaf(w)
    out, rstd = llama_rmsnorm(wl, xl, eps)
    out.backward(dout)
    t = {"x": x, "weight": w, "out": out, "rstd": rstd, "dout": dout, "dx": xl.grad, "dweight": wl.grad}
    return t, {"N": N, "C": C, "eps": eps}


def swiglu_case(g):
    n = 48
    gate = torch.randn(n, generator=g) * 3
    gate[:4] = torch.tensor([-40.0, 40.0, 0.0, -1e-8])  # saturated sigmoid, zero
    up, dout = torch.randn(n, generator=g), torch.randn(n, generator=g)
    gl, ul = leaf(gate), leaf(up)
    out = F.silu(gl) * ul
    out.backward(dout)
    return {"gate": gate, "up": up, "out": out, "dout": dout, "dgate": gl.grad, "dup": ul.grad}, {"n": n}


# ---- rope ---------------------------------------------------------------------------------------------

def rope_tables(cfg, max_pos, dtype):
    """LlamaRotaryEmbedding: freqs = inv_freq x pos, emb = cat(freqs, freqs); the kernel takes one half."""
    inv = default_inv_freq(cfg["theta"], cfg["hd"], dtype)
    if cfg["type"] == "llama3":
        inv = llama3_inv_freq(inv, cfg["factor"], cfg["low_freq_factor"], cfg["high_freq_factor"], cfg["original_max"])
    freqs = inv[None, :] * torch.arange(max_pos, dtype=dtype)[:, None]
    return inv, freqs.cos(), freqs.sin()


def rotate_half(x):
    """transformers rotate_half: cat(-x2, x1)."""
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope_case(g, cfg):
    BT, heads, hd, max_pos = 6, cfg["heads"], cfg["hd"], 64
    inv, cos, sin = rope_tables(cfg, max_pos, torch.float64)
    inv32, cos32, sin32 = rope_tables(cfg, max_pos, torch.float32)
    pos = torch.tensor([0, 1, 2, 17, 40, 63], dtype=torch.int32)
    x, dout = torch.randn(BT, heads, hd, generator=g), torch.randn(BT, heads, hd, generator=g)
    c = torch.cat((cos, cos), -1)[pos.long()][:, None, :]  # apply_rotary_pos_emb, unsqueeze over heads
    s = torch.cat((sin, sin), -1)[pos.long()][:, None, :]
    xl = leaf(x)
    out = xl * c + rotate_half(xl) * s
    out.backward(dout)
    t = {"x": x, "pos": pos, "cos": cos, "sin": sin, "inv_freq": inv, "out": out, "dout": dout, "dx": xl.grad,
         "inv_freq_f32": inv32, "cos_f32": cos32, "sin_f32": sin32}
    return t, {**cfg, "BT": BT, "max_pos": max_pos}


# ---- attention ------------------------------------------------------------------------------------------

def repeat_kv(hidden_states, n_rep):
    """transformers repeat_kv: [B, nkv, S, hd] -> [B, nkv * n_rep, S, hd]; head h reads kv head h // n_rep."""
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


def attention(q, k, v, scale):
    """q [B,T,nh,hd], k/v [B,S,nkv,hd] -> out [B,T,nh,hd], lse [B,nh,T]; query t at position S-T+t."""
    T, S, nh, nkv = q.shape[1], k.shape[1], q.shape[2], k.shape[2]
    qh, kh, vh = q.transpose(1, 2), repeat_kv(k.transpose(1, 2), nh // nkv), repeat_kv(v.transpose(1, 2), nh // nkv)
    scores = qh @ kh.transpose(-1, -2) * scale
    visible = torch.arange(S)[None, :] <= (S - T + torch.arange(T))[:, None]
    scores = scores + torch.where(visible, 0.0, float("-inf"))
    p = torch.softmax(scores, dim=-1)
    return (p @ vh).transpose(1, 2), torch.logsumexp(scores, dim=-1)


def attention_case(g, B, T, S, nh, nkv, hd):
    q, k, v = (torch.randn(B, T, nh, hd, generator=g), torch.randn(B, S, nkv, hd, generator=g),
               torch.randn(B, S, nkv, hd, generator=g))
    dout, scale = torch.randn(B, T, nh, hd, generator=g), 1 / math.sqrt(hd)
    ql, kl, vl = leaf(q), leaf(k), leaf(v)
    out, lse = attention(ql, kl, vl, scale)
    out.backward(dout)
    t = {"q": q, "k": k, "v": v, "out": out, "lse": lse, "dout": dout, "dq": ql.grad, "dk": kl.grad, "dv": vl.grad}
    return t, {"B": B, "T": T, "S": S, "nh": nh, "nkv": nkv, "hd": hd, "scale": repr(scale)}


# ---- cross-entropy, AdamW ---------------------------------------------------------------------------------

def cross_entropy_case(g):
    n, V = 7, 11
    logits = torch.randn(n, V, generator=g) * 3
    logits[4] += 50  # large logits: logsumexp must subtract the max
    targets = torch.tensor([3, -100, 0, 10, 5, -100, 7])
    rows = F.cross_entropy(logits, targets, ignore_index=-100, reduction="none")
    ll = leaf(logits)
    mean = F.cross_entropy(ll, targets, ignore_index=-100)
    mean.backward()
    t = {"logits": logits, "targets": targets.to(torch.int32), "loss_rows": rows, "loss_mean": mean.reshape(1),
         "grad": ll.grad}
    return t, {"n": n, "V": V, "ignore_index": -100, "count": int((targets != -100).sum())}


def adamw_case(g):
    n, steps = 10, 3
    hp = {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.1}
    param0 = torch.randn(n, generator=g)
    grads = torch.randn(steps, n, generator=g)
    grads[:, 0] = 0  # a coordinate that only decays
    grads[1, 1] = 0
    p = torch.nn.Parameter(param0.clone())
    opt = torch.optim.AdamW([p], lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
                            weight_decay=hp["weight_decay"])
    params = []
    for s in range(steps):
        p.grad = grads[s].clone()
        opt.step()
        params.append(p.detach().clone())
    st = opt.state[p]
    t = {"param0": param0, "grads": grads, "params": torch.stack(params), "m": st["exp_avg"], "v": st["exp_avg_sq"]}
    return t, {**hp, "n": n, "steps": steps}


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(20240611)
    rope_default = {"type": "default", "theta": 10000.0, "hd": 8, "heads": 3}
    rope_llama3 = {"type": "llama3", "theta": 500000.0, "hd": 16, "heads": 2, "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max": 8192}
    cases = {
        "gemm": gemm_cases(g),
        "rmsnorm": rmsnorm_case(g),
        "swiglu": swiglu_case(g),
        "rope_default": rope_case(g, rope_default),
        "rope_llama3": rope_case(g, rope_llama3),
        "attention_cache": attention_case(g, B=2, T=3, S=5, nh=4, nkv=2, hd=8),  # KV cache, GQA 4/2
        "attention_prefill": attention_case(g, B=1, T=4, S=4, nh=3, nkv=1, hd=4),  # T == S, MQA
        "cross_entropy": cross_entropy_case(g),
        "adamw": adamw_case(g),
    }
    total = 0
    for name, (tensors, meta) in cases.items():
        total += write_safetensors(name, tensors, {**meta, "source": f"scripts/ref/train_kernels_reference.py torch {torch.__version__}"})
    print(f"wrote {len(cases)} files, {total} bytes, to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
