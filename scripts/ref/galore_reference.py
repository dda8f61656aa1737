#!/usr/bin/env python3
"""Golden fixtures for @peft/plugin-galore (GaLore, GaLore-8bit, Natural GaLore, OwLore's layer sampling)
and for core-tensor's randomized SVD.

What it is: a torch 1.13 transcription, in float32, of
  galore_torch/adamw.py AdamW.step + galore_projector.py GaLoreProjector  (jiaweizzhao/GaLore @ 2cc66f8)
  galore_torch/adamw8bit.py AdamW8bit.step over bitsandbytes' Optimizer2State ("adam", blockwise, 256-value
      blocks, state1 with the signed dynamic map, state2 with the unsigned one, 32-bit states below
      min_8bit_size), the update of bitsandbytes' CPU backend (backends/cpu/ops.py
      _optimizer_update_8bit_blockwise_cpu / _optimizer_update_32bit_cpu, bitsandbytes @ 95f9af30)
  code/natural_galore/subspace_adamw.py SubSpaceAdamW + galore_projector_tensor.py (proj_type
      "natural_galore"; selfsupervised-ai/Natural-GaLore @ e23336d)
  OwLore's DynamicLayerActivationCallback.switch_active_layers (src/lmflow/pipeline/finetuner.py, pixeli99/OwLore
      @ e415973) and OWL's check_outlier_mean (lib/prune_all.py, luuyin/OWL @ dddb7a4)
run step by step on fixed gradients, over 7 steps with update_proj_gap 3, so the projection is recomputed at
steps 1, 4 and 7 while the moments carry over (two subspace changes).

Where it knowingly differs from those repos (the TypeScript does the same):
  - Signs of singular vectors: LAPACK's are arbitrary, and galore keeps its moments across a change of P, so
    every singular vector used here is flipped to make its largest-|.| entry positive (the first on ties; the
    convention tensorly's svd_flip gives Natural GaLore's Tucker factors). The SVD is taken in float64
    (galore-torch: float32), so the comparison measures the optimizer, not LAPACK's f32 round-off.
  - Natural GaLore's Tucker decomposition of a 2-D gradient: tensorly's HOOI (init "svd", flip_sign) starts
    at, and for a matrix stays at, the top-r left / right singular vectors of G; they are computed directly.
    The Woodbury solve (Cholesky of S = I + GᵀG/λ) runs in float64: in f32 its difference of two large terms,
    g/λ - G z/λ², loses ~cond(S)·2⁻²⁴.
  - bitsandbytes' 8-bit quantization follows core-tensor's blockwise rule (s = x * f32(1/absmax), code =
    number of midpoints below s), which bnb_reference.py checks; bnb's CUDA kernel applies weight decay after
    the update, its CPU backend (followed here) before, as torch.optim.AdamW.
  - OwLore's np.random.choice(replace=False, p) is reproduced step by step (numpy/random/mtrand.pyx) but fed by
    xoshiro128** uniforms (core-tensor's src/fixtures/rng.ts), so TypeScript can draw the same layers; the
    transcription is checked against numpy's own choice on numpy's generator below.

Run (from the repo root; Debian's python has torch):
    /usr/bin/python3 scripts/ref/galore_reference.py
Writes packages/plugin-galore/test/fixtures/*.safetensors and packages/core-tensor/test/fixtures/linalg/
rsvd.safetensors. Deterministic (fixed seeds).
"""
import json
import math
import os

import numpy as np
import torch

from galore_ref_parts import (bnb_adam_update, choice_without_replacement, create_dynamic_map, outlier_ratio,
                              xoshiro_stream)
from ref_common import write_safetensors

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "packages", "plugin-galore", "test", "fixtures")
RSVD_OUT = os.path.join(ROOT, "packages", "core-tensor", "test", "fixtures", "linalg", "rsvd.safetensors")
SHAPES = [("model.layers.0.self_attn.o_proj.weight", (64, 16)),   # tall: std projects on the right
          ("model.layers.0.mlp.down_proj.weight", (12, 100)),     # wide: std projects on the left
          ("model.layers.0.input_layernorm.weight", (16,)),       # 1-D: AdamW
          ("model.embed_tokens.weight", (40, 12))]                # 2-D, not attn/mlp: AdamW
STEPS = 7
LRS = [1e-2, 8e-3, 5e-3, 1e-2, 3e-3, 6e-3, 2e-3]
RECORD = (3, 4, 7)  # params are stored after these steps (before / after the change at step 4, the end)


def galore_target(name, shape):
    """torchrun_main.py: the weights of the Linear modules whose name contains "attn" or "mlp"."""
    return len(shape) == 2 and any(k in name for k in ("attn", "mlp"))


# ---- projection (galore_projector.py, with the documented SVD) -------------------------------------------

def canonical_columns(u):
    """Each column flipped so that its largest-|.| entry (the first on ties) is positive."""
    idx = u.abs().argmax(dim=0)
    s = torch.sign(u[idx, torch.arange(u.shape[1])])
    s[s == 0] = 1
    return u * s


def get_orthogonal_matrix(g, rank, kind):
    U, _, Vh = torch.linalg.svd(g.double(), full_matrices=False)
    left = canonical_columns(U[:, :rank]).float()
    right = canonical_columns(Vh[:rank, :].t()).t().contiguous().float()
    return {"left": left, "right": right, "full": [left, right]}[kind]


class GaLoreProjector:
    """galore_projector.py GaLoreProjector, line for line (get_orthogonal_matrix as above)."""

    def __init__(self, rank, update_proj_gap, scale, proj_type):
        self.rank, self.update_proj_gap, self.scale, self.proj_type = rank, update_proj_gap, scale, proj_type
        self.ortho_matrix = None

    def refresh(self, g, it, kind):
        if self.ortho_matrix is None or it % self.update_proj_gap == 0:
            self.ortho_matrix = get_orthogonal_matrix(g, self.rank, kind)

    def project(self, g, it):
        tall = g.shape[0] >= g.shape[1]
        kind = {"std": "right" if tall else "left", "reverse_std": "left" if tall else "right"}.get(self.proj_type, self.proj_type)
        self.refresh(g, it, kind)
        if kind == "right":
            return g @ self.ortho_matrix.t()
        if kind == "left":
            return self.ortho_matrix.t() @ g
        return self.ortho_matrix[0].t() @ g @ self.ortho_matrix[1].t()

    def project_back(self, r):
        P = self.ortho_matrix
        if self.proj_type == "std":
            full = r @ P if r.shape[0] >= r.shape[1] else P @ r
        elif self.proj_type == "reverse_std":
            full = P @ r if r.shape[0] <= r.shape[1] else r @ P
        elif self.proj_type == "right":
            full = r @ P
        elif self.proj_type == "left":
            full = P @ r
        else:
            full = P[0] @ r @ P[1]
        return full * self.scale


# ---- optimizers ---------------------------------------------------------------------------------------------

def galore_adamw_step(params, state, group_of, lr, cfg):
    """galore_torch/adamw.py AdamW.step (correct_bias=True) for every param; galore groups have 'rank'."""
    b1, b2 = cfg["betas"]
    for name, p in params.items():
        grad, st, galore = p.grad, state.setdefault(name, {"step": 0}), group_of(name)
        if galore:
            st.setdefault("projector", GaLoreProjector(cfg["rank"], cfg["update_proj_gap"], cfg["scale"], cfg["proj_type"]))
            grad = st["projector"].project(grad, st["step"])
        if "exp_avg" not in st:
            st["exp_avg"], st["exp_avg_sq"] = torch.zeros_like(grad), torch.zeros_like(grad)
        st["step"] += 1
        st["exp_avg"].mul_(b1).add_(grad, alpha=1.0 - b1)
        st["exp_avg_sq"].mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
        denom = st["exp_avg_sq"].sqrt().add_(cfg["eps"])
        step_size = lr * math.sqrt(1.0 - b2 ** st["step"]) / (1.0 - b1 ** st["step"])
        norm_grad = st["exp_avg"] / denom
        if galore:
            norm_grad = st["projector"].project_back(norm_grad)
        p.data.add_(norm_grad, alpha=-step_size)
        if cfg["weight_decay"] > 0.0:
            p.data.add_(p.data, alpha=-lr * cfg["weight_decay"])


def galore_adamw8bit_step(params, state, group_of, lr, cfg, maps):
    """galore_torch/adamw8bit.py AdamW8bit.step over bnb's Optimizer2State.init_state / update_step."""
    for name, p in params.items():
        st, galore = state.setdefault(name, {"step": 0}), group_of(name)
        target, grad, wd = p.data, p.grad, cfg["weight_decay"]
        if galore:
            st.setdefault("projector", GaLoreProjector(cfg["rank"], cfg["update_proj_gap"], cfg["scale"], cfg["proj_type"]))
            grad = st["projector"].project(p.grad, st["step"])
            target, wd = torch.zeros_like(grad), 0.0  # p.data swapped for zeros; wd off inside bnb
        if "state1" not in st:  # init_state: 8-bit only from min_8bit_size elements (of the low-rank shape)
            eight = target.numel() >= cfg["min_8bit_size"]
            dt = torch.uint8 if eight else torch.float32
            st["state1"], st["state2"] = torch.zeros_like(target, dtype=dt), torch.zeros_like(target, dtype=dt)
            if eight:
                blocks = -(-target.numel() // 256)
                st["absmax1"], st["absmax2"] = torch.zeros(blocks), torch.zeros(blocks)
        st["step"] += 1
        bnb_adam_update(grad, target, st, cfg["betas"], cfg["eps"], st["step"], lr, wd, maps)
        if galore:
            p.data = p.data + st["projector"].project_back(target)
            if cfg["weight_decay"] > 0:
                p.data.add_(p.data, alpha=-lr * cfg["weight_decay"])


def natural_gradient(low_rank, history, size, damping=1e-3):
    """galore_projector_tensor.py _natural_gradient_transform (in float64, see the module comment)."""
    g = low_rank.reshape(-1)
    if len(history) >= size:
        history.pop(0)
    history.append(g.detach().clone())
    G = torch.stack(history, dim=1).double()
    lam_inv = 1.0 / damping
    S = lam_inv * (G.t() @ G)
    S.diagonal().add_(1.0)
    L = torch.linalg.cholesky(S)
    z = torch.cholesky_solve((G.t() @ g.double()).unsqueeze(1), L).squeeze(1)
    return ((lam_inv * g.double()) - (lam_inv ** 2) * (G @ z)).float().view_as(low_rank)


def subspace_adamw_step(params, state, group_of, lr, cfg):
    """natural_galore/subspace_adamw.py SubSpaceAdamW.step + adamw(), proj_type "natural_galore"."""
    b1, b2 = cfg["betas"]
    for name, p in params.items():
        st, grad = state.setdefault(name, {"step": 0, "history": []}), p.grad
        galore = group_of(name)
        if galore:
            if "factors" not in st or st["step"] % cfg["update_proj_gap"] == 0:
                st["factors"] = get_orthogonal_matrix(grad, cfg["rank"], "full")  # Tucker factors U1, U2ᵀ
            U1, U2t = st["factors"]
            grad = natural_gradient(U1.t() @ grad @ U2t.t(), st["history"], cfg["natural_history"])
        if "exp_avg" not in st:
            st["exp_avg"], st["exp_avg_sq"] = torch.zeros_like(grad), torch.zeros_like(grad)
        st["step"] += 1
        st["exp_avg"].mul_(b1).add_(grad, alpha=1.0 - b1)
        st["exp_avg_sq"].mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
        denom = st["exp_avg_sq"].sqrt().add_(cfg["eps"])
        step_size = lr * ((1.0 - b2 ** st["step"]) ** 0.5) / (1.0 - b1 ** st["step"])
        norm_grad = st["exp_avg"] / denom
        if galore:
            U1, U2t = st["factors"]
            norm_grad = (U1 @ norm_grad @ U2t) * cfg["scale"]
        p.data.add_(norm_grad, alpha=-step_size)
        if cfg["weight_decay"] > 0.0:
            p.data.add_(p.data, alpha=-lr * cfg["weight_decay"])


# ---- cases ---------------------------------------------------------------------------------------------------

COMMON = {"rank": 4, "update_proj_gap": 3, "scale": 0.25, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.01}
CASES = {
    "galore_std": ("galore", {**COMMON, "proj_type": "std"}),
    "galore_reverse_std": ("galore", {**COMMON, "proj_type": "reverse_std"}),
    "galore_left": ("galore", {**COMMON, "proj_type": "left"}),
    "galore_right": ("galore", {**COMMON, "proj_type": "right", "weight_decay": 0.0}),
    # full: R = U_rᵀ G V_r is diagonal at a refresh, its off-diagonal entries round-off that Adam divides by
    # √v + eps; eps 1e-4 keeps what round-off makes of them below the tolerance (a test cannot compare noise)
    "galore_full": ("galore", {**COMMON, "proj_type": "full", "eps": 1e-4}),
    "galore8bit_8bit": ("galore-8bit", {**COMMON, "proj_type": "std", "eps": 1e-8, "min_8bit_size": 64}),
    "galore8bit_32bit": ("galore-8bit", {**COMMON, "proj_type": "std", "eps": 1e-8, "min_8bit_size": 4096}),
    "natural": ("natural-galore", {**COMMON, "natural_history": 3}),
}


def inputs():
    g = torch.Generator().manual_seed(20240307)
    t = {}
    for name, shape in SHAPES:
        t[f"{name}.param0"] = torch.randn(shape, generator=g)
        t[f"{name}.grads"] = torch.randn((STEPS, *shape), generator=g)
    return t


def run_case(kind, cfg, t, maps):
    params = {n: torch.nn.Parameter(t[f"{n}.param0"].clone()) for n, _ in SHAPES}
    shapes = dict(SHAPES)
    group_of = lambda n: galore_target(n, shapes[n])  # noqa: E731
    state, out = {}, {}
    for s, lr in enumerate(LRS, start=1):
        for n, p in params.items():
            p.grad = t[f"{n}.grads"][s - 1].clone()
        with torch.no_grad():
            if kind == "galore":
                galore_adamw_step(params, state, group_of, lr, cfg)
            elif kind == "galore-8bit":
                galore_adamw8bit_step(params, state, group_of, lr, cfg, maps)
            else:
                subspace_adamw_step(params, state, group_of, lr, cfg)
        if s in RECORD:
            for n, p in params.items():
                out[f"{n}.step{s}"] = p.detach().clone()
    return out


def write(path, tensors, meta):
    meta = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in meta.items()}
    return write_safetensors(path, tensors, {**meta, "source": f"scripts/ref/galore_reference.py torch {torch.__version__}"})


def owlore_case():
    """Per-layer outlier ratios (OWL's LOD with unit activation norms) and the layers OwLore samples."""
    g = torch.Generator().manual_seed(7)
    layers, M, t, ratios = 6, 13.0, {}, []
    for l in range(layers):
        ws = [torch.randn((16, 12), generator=g), torch.randn((12, 16), generator=g)]
        flat = torch.cat([w.flatten() for w in ws])
        hot = torch.randperm(flat.numel(), generator=g)[: 2 + 3 * l]  # more planted outliers deeper
        flat[hot] *= 40.0
        ws = [flat[:192].view(16, 12), flat[192:].view(12, 16)]
        t[f"layer{l}.q"], t[f"layer{l}.k"] = ws
        ratios.append(outlier_ratio(torch.cat([w.abs().flatten() for w in ws]), M))
    probs = {"owl": np.array(ratios) / sum(ratios)}
    probs["owl_reverse"] = (probs["owl"].max() - probs["owl"]) / np.sum(probs["owl"].max() - probs["owl"])
    samples = {}
    for mode, p in probs.items():
        for seed in (0, 111):
            for k in range(5):
                rand = xoshiro_stream(seed, f"owlore:{k}")
                samples[f"{mode}.seed{seed}.event{k}"] = choice_without_replacement(p, 2, rand)
    t["ratios"] = torch.tensor(ratios, dtype=torch.float64)
    for mode, p in probs.items():
        t[f"probs.{mode}"] = torch.tensor(p, dtype=torch.float64)
    return t, {"layers": layers, "threshold": M, "active_layers": 2, "samples": samples}


def rsvd_case():
    """Matrices with decaying spectra (U diag(s) Vᵀ, f32) and numpy's (LAPACK) singular values."""
    rng, t = np.random.default_rng(11), {}
    for name, (m, n, decay) in {"exp": (200, 150, lambda i: np.exp(-i / 10)),
                                "power": (96, 256, lambda i: (i + 1.0) ** -2),
                                "geometric": (160, 160, lambda i: 0.85 ** i)}.items():
        k = min(m, n)
        u, _ = np.linalg.qr(rng.standard_normal((m, k)))
        v, _ = np.linalg.qr(rng.standard_normal((n, k)))
        a = ((u * decay(np.arange(k))) @ v.T).astype(np.float32)
        t[f"{name}.a"] = a
        t[f"{name}.s"] = np.linalg.svd(a.astype(np.float64), compute_uv=False)
    return t


def main():
    os.makedirs(OUT, exist_ok=True)
    maps = {"dynamic": create_dynamic_map(True), "udynamic": create_dynamic_map(False)}
    t = inputs()
    write(os.path.join(OUT, "inputs.safetensors"), {**t, "udynamic": maps["udynamic"], "dynamic": maps["dynamic"]},
          {"shapes": SHAPES, "lrs": LRS, "record": RECORD})
    for case, (kind, cfg) in CASES.items():
        write(os.path.join(OUT, f"{case}.safetensors"), run_case(kind, cfg, t, maps), {"optimizer": kind, "config": cfg})
    ot, om = owlore_case()
    write(os.path.join(OUT, "owlore.safetensors"), ot, om)
    write(RSVD_OUT, rsvd_case(), {})
    print(f"wrote {len(CASES) + 2} files to {OUT} and {RSVD_OUT}")


if __name__ == "__main__":
    main()
