#!/usr/bin/env python3
"""Golden fixtures for peft's LoRA family (packages/plugin-lora) and dense linear algebra (core linalg/).

What it is: the math of Hugging Face PEFT's LoRA layers written out by hand in torch (peft and
transformers are not installable here; Debian's python has torch 1.13 only), applied to a tiny Llama
built with scripts/ref/llama_reference.py's own model code (imported, not copied). Each function names
the PEFT code it follows (huggingface/peft, src/peft/tuners/lora/layer.py, dora.py, variants.py,
utils/loftq_utils.py, utils/save_and_load.py, tuners/lora/config.py):

  LoraLayer.update_layer / Linear.forward     lora_linear     y = base(x) + B(A(dropout(x))) * scaling,
                                                              scaling = alpha / r (rsLoRA alpha / sqrt r)
  DoraLinearLayer.forward + DoraLinearVariant dora_linear     (m / ||W + s B A||_row, detached) with PEFT's
                                                              (mag_norm_scale - 1) * base + mag_norm_scale * lora * s
  DoraLinearLayer.update_layer                dora_magnitude  m = ||W + s B A|| per output row
  LoraLayer.pissa_init                        pissa           A = diag(sqrt(S_r / s)) Vh_r, B = U_r diag(sqrt(S_r / s))
  LoraLayer.olora_init                        olora           Q, R = qr(W); A = R[:r], B = Q[:, :r]
  loftq_utils.loftq_init (bitsandbytes path)  loftq           NF4 (blocksize 64, no double quant) / SVD alternation
  get_peft_model_state_dict + save_pretrained write_adapter   PEFT key names, adapter_config.json fields

The engine computes in f32; the reference runs in float64 on the same stored f32 values, so the TS
side is compared with the exact answer. NF4 quantization comes from scripts/ref/bnb_reference.py.

Also writes the linear-algebra fixture: numpy/LAPACK singular values and torch.linalg.qr factors of a
few matrices to packages/core-tensor/test/fixtures/linalg/ (read by core linalg-*.test.ts).

Run (from the repo root; Debian's python has torch):
    /usr/bin/python3 scripts/ref/lora_reference.py
Writes packages/plugin-lora/test/fixtures/. Deterministic: fixed seeds.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bnb_reference as bnb  # noqa: E402  (bitsandbytes NF4, reused)
import llama_reference as ref  # noqa: E402  (the transformers Llama forward, reused)
from ref_common import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packages", "plugin-lora", "test",
                   "fixtures")


# ---- linear algebra ------------------------------------------------------------------------------------------

def linalg_fixture():
    """Matrices (f64) with numpy's singular values (LAPACK gesdd) and torch.linalg.qr 'reduced' (LAPACK geqrf +
    orgqr). Shapes: tall, wide, square, rank-deficient, ill-conditioned (singular values 1 .. 1e-12)."""
    rng = np.random.default_rng(7)
    mats = {
        "tall": rng.standard_normal((9, 5)),
        "wide": rng.standard_normal((4, 11)),
        "square": rng.standard_normal((16, 16)),
        "rank3": rng.standard_normal((8, 3)) @ rng.standard_normal((3, 6)),
    }
    q1, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    q2, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    mats["illcond"] = q1 @ np.diag(np.logspace(0, -12, 10)) @ q2.T
    out = []
    for name, a in mats.items():
        a = np.ascontiguousarray(a, dtype=np.float64)
        q, r = torch.linalg.qr(torch.from_numpy(a), mode="reduced")
        out += [(f"{name}.a", a), (f"{name}.s", np.linalg.svd(a, compute_uv=False)), (f"{name}.q", q.numpy()),
                (f"{name}.r", r.numpy())]
    linalg_out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packages", "core-tensor", "test", "fixtures", "linalg")
    os.makedirs(linalg_out, exist_ok=True)
    meta = {"source": f"scripts/ref/lora_reference.py numpy {np.__version__} torch {torch.__version__}"}
    return write_safetensors(os.path.join(linalg_out, "reference.safetensors"), out, meta)


# ---- the model ---------------------------------------------------------------------------------------------

# A tiny llama with q/k/v/o biases (attention_bias), so bias training has something to train.
MODEL = dict(name="model", model_type="llama", vocab=96, hidden=32, inter=64, layers=2, heads=4, kv=2, tie=False,
             theta=10000.0, eps=1e-5, attention_bias=True)
LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
           "mlp.up_proj", "mlp.down_proj"]
B, T = 2, 7
PEFT_VERSION = "0.17.0"


def module_names(c, targets):
    """HF paths of the Linear modules whose last component is in `targets` (or all of them, for all-linear)."""
    names = [f"model.layers.{i}.{lin}" for i in range(c["layers"]) for lin in LINEARS]
    return names if targets == "all-linear" else [n for n in names if n.rsplit(".", 1)[1] in targets]


def pattern_value(pattern, name):
    """peft utils/other.py get_pattern_key: the first key with re.match(rf"(.*\.)?({key})$", name)."""
    import re
    for key, v in pattern.items():
        if re.match(rf"(.*\.)?({key})$", name):
            return v
    return None


def rank_alpha_scale(opts, name):
    """LoraModel._create_and_replace (rank/alpha patterns) + LoraLayer.update_layer (scaling)."""
    r = pattern_value(opts.get("rank_pattern", {}), name) or opts["r"]
    alpha = pattern_value(opts.get("alpha_pattern", {}), name) or opts["lora_alpha"]
    return r, alpha, alpha / (r ** 0.5 if opts.get("use_rslora") else r)


# ---- PEFT's LoRA / DoRA layer (tuners/lora/layer.py Linear.forward, dora.py, variants.py) ---------------------

def make_linear(adapters):
    """A replacement for llama_reference.linear that applies the adapters (lora_dropout = 0: identity)."""
    def linear(p, name, x):
        W, b = p[f"{name}.weight"], p.get(f"{name}.bias")
        result = F.linear(x, W, b)  # self.base_layer(x)
        ad = adapters.get(name)
        if ad is None:
            return result
        A, Bm, s = ad["A"], ad["B"], ad["s"]
        lora = F.linear(F.linear(x, A), Bm)  # lora_B(lora_A(dropout(x)))
        if "m" not in ad:
            return result + lora * s
        # DoraLinearVariant.forward: dropout is identity -> base_result = result; DoraLinearLayer.forward:
        lora_weight = Bm @ A  # lora_B(lora_A(x_eye)).T
        weight_norm = torch.linalg.norm(W + s * lora_weight.detach(), dim=1).detach()
        mag_norm_scale = (ad["m"] / weight_norm).view(1, -1)
        base_result = result - b if b is not None else result
        return result + (mag_norm_scale - 1) * base_result + mag_norm_scale * lora * s
    return linear


def dora_magnitude(W, A, Bm, s):
    """DoraLinearLayer.update_layer / get_weight_norm: ||W + s B A|| per output row."""
    return torch.linalg.norm(W + s * (Bm @ A), dim=1)


# ---- inits (tuners/lora/layer.py pissa_init, olora_init; utils/loftq_utils.py) -------------------------------

def canonical(A, Bm):
    """Flip (A row i, B column i) together so A's largest |entry| in row i is positive: SVD / QR signs are
    arbitrary, B A is not. The TS test applies the same rule."""
    A, Bm = A.clone(), Bm.clone()
    for i in range(A.shape[0]):
        if A[i, A[i].abs().argmax()] < 0:
            A[i], Bm[:, i] = -A[i], -Bm[:, i]
    return A, Bm


def pissa(W, r, s):
    """pissa_init: V, S, Uh = svd(W); Sr = S[:r] / scaling; A = diag(sqrt Sr) Uh[:r]; B = V[:, :r] diag(sqrt Sr)."""
    V, S, Uh = torch.linalg.svd(W, full_matrices=False)
    Sr = S[:r] / s
    return torch.diag(torch.sqrt(Sr)) @ Uh[:r], V[:, :r] @ torch.diag(torch.sqrt(Sr))


def olora(W, r, s):
    """olora_init: Q, R = qr(W); A = R[:r]; B = Q[:, :r] (no division by scaling)."""
    Q, R = torch.linalg.qr(W)
    return R[:r], Q[:, :r]


def loftq_one(W32, r):
    """loftq_init, one iteration, bitsandbytes path: NF4 (blocksize 64, compress_statistics=False) of W,
    res = W - deq, L = U sqrt(S)[:, :r], R = sqrt(S)[:r] Vh (_low_rank_decomposition), in f64 on the f32 res."""
    x = W32.numpy().reshape(-1).astype(np.float32)
    codes, packed, absmax = bnb.quantize_4bit(x, 64, "nf4")
    deq = bnb.dequantize_4bit(codes, absmax, 64, "nf4").reshape(W32.shape)
    res = torch.from_numpy((W32.numpy() - deq).astype(np.float32)).double()
    U, S, Vh = torch.linalg.svd(res, full_matrices=False)
    L = U[:, :r] @ torch.diag(torch.sqrt(S[:r]))
    R = torch.diag(torch.sqrt(S[:r])) @ Vh[:r]
    return packed, absmax, torch.from_numpy(deq), L, R


# ---- cases ---------------------------------------------------------------------------------------------------

CASES = [
    dict(name="lora", opts={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}, adapter=True),
    dict(name="rslora", opts={"r": 4, "lora_alpha": 8, "target_modules": "all-linear", "use_rslora": True,
                              "rank_pattern": {"down_proj": 2}, "alpha_pattern": {"o_proj": 3}, "bias": "lora_only"},
         adapter=True),
    dict(name="dora", opts={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj", "down_proj"],
                            "use_dora": True}, adapter=True),
    dict(name="qlora", opts={"r": 4, "lora_alpha": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj",
                                                                          "gate_proj", "up_proj", "down_proj"]},
         nf4=True),
    dict(name="qdora", opts={"r": 2, "lora_alpha": 4, "target_modules": ["q_proj", "v_proj"], "use_dora": True},
         nf4=True),
    dict(name="pissa", opts={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "gate_proj", "down_proj"],
                             "init_lora_weights": "pissa"}, init=pissa),
    dict(name="olora", opts={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "gate_proj", "down_proj"],
                             "init_lora_weights": "olora"}, init=olora),
    dict(name="loftq", opts={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "gate_proj", "down_proj"],
                             "init_lora_weights": "loftq", "loftq_iter": 1}, loftq=True),
]


def peft_key(module, kind):
    """save_and_load.py: in-memory `...lora_A.default.weight` saved as `...lora_A.weight`; DoRA's magnitude
    `...lora_magnitude_vector.default.weight` as `...lora_magnitude_vector`."""
    return f"base_model.model.{module}.{kind}" + (".weight" if kind in ("lora_A", "lora_B") else "")


def adapter_config(c, opts, modules):
    """LoraConfig (tuners/lora/config.py, PEFT 0.17) as save_pretrained writes it: to_dict(), inference_mode True,
    target_modules a sorted list (all-linear: _maybe_include_all_linear_layers' full module names)."""
    targets = opts["target_modules"]
    return {
        "alpha_pattern": opts.get("alpha_pattern", {}), "auto_mapping": None, "base_model_name_or_path": c["name"],
        "bias": opts.get("bias", "none"), "corda_config": None, "eva_config": None, "exclude_modules": None,
        "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True, "layer_replication": None,
        "layers_pattern": None, "layers_to_transform": None, "loftq_config": {}, "lora_alpha": opts["lora_alpha"],
        "lora_bias": False, "lora_dropout": 0.0, "megatron_config": None, "megatron_core": "megatron.core",
        "modules_to_save": None, "peft_type": "LORA", "peft_version": PEFT_VERSION, "qalora_group_size": 16,
        "r": opts["r"], "rank_pattern": opts.get("rank_pattern", {}), "revision": None,
        "target_modules": sorted(modules) if targets == "all-linear" else sorted(targets), "target_parameters": None,
        "task_type": "CAUSAL_LM", "trainable_token_indices": None, "use_dora": opts.get("use_dora", False),
        "use_qalora": False, "use_rslora": opts.get("use_rslora", False),
    }


def write_adapter(folder, c, opts, modules, tensors):
    """PeftModel.save_pretrained: adapter_config.json (json.dumps(indent=2, sort_keys=True), no newline) and
    adapter_model.safetensors (metadata {"format": "pt"})."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        f.write(json.dumps(adapter_config(c, opts, modules), indent=2, sort_keys=True))
    return write_safetensors(os.path.join(folder, "adapter_model.safetensors"), tensors, {"format": "pt"})


def init_factors(case, W, r, s, g):
    """The adapter's (A, B) for `case`: the PEFT init for pissa / olora / loftq, else a trained-looking state
    (A ~ kaiming bound, B ~ N(0, 0.3²): B = 0 would make A's gradient vanish)."""
    if case.get("init"):
        A, Bm = case["init"](W.double(), r, s)
        return canonical(A.float(), Bm.float())
    out, inf = W.shape
    A = (torch.rand((r, inf), generator=g, dtype=torch.float32) * 2 - 1) / inf ** 0.5
    return A, torch.randn((out, r), generator=g, dtype=torch.float32) * 0.3


def run_case(case, w32, deq, ids, labels, seed):
    c, opts = MODEL, case["opts"]
    g = torch.Generator().manual_seed(seed)
    base = deq if case.get("nf4") else dict(w32)
    modules = module_names(c, opts["target_modules"])
    adapters, out, saved = {}, [], []
    for name in modules:
        r, alpha, s = rank_alpha_scale(opts, name)
        W = base[f"{name}.weight"]
        if case.get("loftq"):
            packed, absmax, dq, L, R = loftq_one(W, r)
            A, Bm = canonical(R.float(), L.float())
            base[f"{name}.weight"] = dq
            out += [(f"loftq.{name}.packed", packed), (f"loftq.{name}.absmax", absmax), (f"loftq.{name}.lr", (L @ R).float())]
        else:
            A, Bm = init_factors(case, W, r, s, g)
        if case.get("init"):  # PiSSA / OLoRA: the base becomes W - s B A (from the f32 factors)
            base[f"{name}.weight"] = W.double() - s * (Bm.double() @ A.double())
            out.append((f"residual.{name}", base[f"{name}.weight"].float()))
        ad = {"A": A.double().requires_grad_(True), "B": Bm.double().requires_grad_(True), "s": s}
        out += [(f"init.{peft_key(name, 'lora_A')}", A), (f"init.{peft_key(name, 'lora_B')}", Bm)]
        saved += [(peft_key(name, "lora_A"), A), (peft_key(name, "lora_B"), Bm)]
        if opts.get("use_dora"):
            m0 = dora_magnitude(base[f"{name}.weight"].double(), A.double(), Bm.double(), s)
            m = m0 * (1 + 0.2 * (torch.rand(m0.shape, generator=g, dtype=torch.float64) - 0.5))  # a trained magnitude
            m = m.float()
            ad["m"] = m.double().requires_grad_(True)
            out += [(f"m0.{name}", m0.float()), (f"init.{peft_key(name, 'lora_magnitude_vector')}", m)]
            saved.append((peft_key(name, "lora_magnitude_vector"), m))
        adapters[name] = ad
    bias_keys = [f"{n}.bias" for n in modules if f"{n}.bias" in base] if opts.get("bias") == "lora_only" else []
    if bias_keys:  # a trained bias: perturb it so the saved values differ from the model's
        for k in bias_keys:
            base[k] = base[k] + 0.05 * torch.randn(base[k].shape, generator=g, dtype=torch.float32)
            out.append((f"init.base_model.model.{k[:-5]}.base_layer.bias", base[k]))
            saved.append((f"base_model.model.{k[:-5]}.base_layer.bias", base[k]))
    p_bias = {}
    loss, logits = run_grads(c, base, adapters, ids, labels, bias_keys, p_bias)
    for name, ad in adapters.items():
        out += [(f"grad.{peft_key(name, 'lora_A')}", ad["A"].grad.float()),
                (f"grad.{peft_key(name, 'lora_B')}", ad["B"].grad.float())]
        if "m" in ad:
            out.append((f"grad.{peft_key(name, 'lora_magnitude_vector')}", ad["m"].grad.float()))
    for k, t in p_bias.items():
        out.append((f"grad.base_model.model.{k[:-5]}.base_layer.bias", t.grad.float()))
    out += [("input_ids", ids), ("labels", labels), ("loss", loss.detach().reshape(1)), ("logits", logits.detach().float())]
    folder = os.path.join(OUT, case["name"])
    os.makedirs(folder, exist_ok=True)
    size = 0
    if case.get("adapter"):
        size += write_adapter(os.path.join(folder, "adapter"), c, opts, modules, saved)
    meta = {"case": case["name"], "options": json.dumps(opts), "source": f"scripts/ref/lora_reference.py torch {torch.__version__}"}
    return size + write_safetensors(os.path.join(folder, "reference.safetensors"), out, meta)


def run_grads(c, base, adapters, ids, labels, bias_keys, p_bias):
    """run() with the trained biases as leaves whose gradients we keep."""
    p = {k: v.double() for k, v in base.items()}
    for k in bias_keys:
        p[k] = p[k].detach().requires_grad_(True)
        p_bias[k] = p[k]
    saved = ref.linear
    ref.linear = make_linear(adapters)
    try:
        logits, _ = ref.forward(p, c, ids)
    finally:
        ref.linear = saved
    loss = ref.causal_lm_loss(logits, labels)
    loss.backward()
    return loss, logits


def model_fixture(dyn):
    """The base model folder (f32) and its NF4-dequantized weights (bnb_reference, blocksize 64, double quant:
    what `peft quantize` with its defaults stores)."""
    c = MODEL
    g = torch.Generator().manual_seed(2024)
    w = ref.make_weights(c, g)
    ids = torch.randint(0, c["vocab"], (B, T), generator=g, dtype=torch.int64).to(torch.int32)
    labels = ids.clone()
    labels[0, 3] = -100
    folder = os.path.join(OUT, "model")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(ref.hf_config(c), f, indent=2, sort_keys=True)
        f.write("\n")
    size = write_safetensors(os.path.join(folder, "model.safetensors"), {k: v.numpy() for k, v in w.items()},
                             {"format": "pt"})
    _, deq = ref.quantize_nf4(c, w, dyn)
    return w, deq, ids, labels, size


def main():
    total = linalg_fixture()
    w, deq, ids, labels, size = model_fixture(bnb.create_dynamic_map_torch())
    total += size
    for i, case in enumerate(CASES):
        total += run_case(case, w, {k: v.clone() for k, v in deq.items()}, ids, labels, 100 + i)
    print(f"wrote {total} bytes of safetensors to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
