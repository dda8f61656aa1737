#!/usr/bin/env python3
"""Golden fixtures for peft's side-tuning methods (packages/plugin-qst): QST and LST in torch.

What it is: the forward of the two repos' side networks written out by hand in torch (neither repo is
installable here; Debian's python has torch only), on tiny Llama backbones built with
scripts/ref/llama_reference.py's own model code (imported, not copied). Each function names the repo
code it transcribes:

  YouAreSpecialToMe/QST
    QSTConfig.py AdapterLinear.forward             adapter_linear  adapter_A -> swish -> adapter_B -> post_layer_norm
                                                                   (qst.py: activation "swish", add_layer_norm_after_adapter,
                                                                   no pre norm; dropout 0.1 gives nn.Identity there)
    modeling_llama_qst.py QSTLlamaModel.forward    qst_forward     s = downsample[0](embeds); per layer
                                                                   s = (1 - sigmoid(z)) * downsample[i](h_i) + sigmoid(z) * s,
                                                                   s = qst_layers[i](s); s = norm_qst(s)
    modeling_llama_qst.py QSTLlamaForCausalLM      qst_forward     (1 - sigmoid(lm_head_z)) * upsample(s) + sigmoid(lm_head_z) * norm(h)
    QSTLlamaModel.__init__ config_copy_qst         side_config     hidden_size / r, intermediate_size / r, heads kept
                                                                   (head dim hidden/r/heads, as LlamaAttention then computes it)
    the first QST version (modeling_opt_qst.py)    downsample      nn.MaxPool1d(kernel_size=r, stride=r)
  ylsung/Ladder-Side-Tuning
    seq2seq/.../modeling_side_t5.py T5Stack        lst_forward     s = side_first_downsample(embeds); per layer
                                                                   g = sigmoid(side_gate_params[i] / gate_T),
                                                                   s = g * s + (1 - g) * side_downsamples[i](h_i), s = side_block[i](s);
                                                                   final_side_layer_norm; side_final_upsample (Linear with
                                                                   bias: scripts/ladder_side_tuning_base.sh add_bias_sampling True)
    VL-T5/src/my_transformers/modeling_t5.py       downsample      side_downsample_pool: nn.AdaptiveAvgPool1d(d / r); the first
                                                                   downsample stays an nn.Linear

h_i is the raw output of backbone layer i (before the final norm). The side layers are the backbone
architecture's decoder layers (llama_reference.attention / mlp / rms_norm) at the side width. Side
parameters get random values around their inits so every gradient is exercised. The math runs in
float64 on the stored f32 values; the NF4 case uses the bitsandbytes-dequantized weights
(llama_reference.quantize_nf4, the bnb_reference.py numerics), as bitsandbytes multiplies with them.

Run (from the repo root; Debian's python has torch):
    /usr/bin/python3 scripts/ref/qst_reference.py
Writes packages/plugin-qst/test/fixtures/<case>/{model/, adapter/, reference.safetensors}. Deterministic.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bnb_reference as bnb  # noqa: E402  (bitsandbytes numerics)
import llama_reference as ref  # noqa: E402  (the transformers Llama pieces)
from ref_common import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packages", "plugin-qst", "test", "fixtures")
B, T = 2, 7
GQA = dict(model_type="llama", vocab=96, hidden=32, inter=64, layers=3, heads=4, kv=2, tie=False, theta=10000.0, eps=1e-5)
NF4 = dict(GQA, layers=2, quant="nf4")
TIED = dict(model_type="llama", vocab=96, hidden=32, inter=48, layers=2, heads=2, kv=1, tie=True, theta=10000.0,
            eps=1e-6, attention_bias=True, mlp_bias=True)

CASES = [
    dict(name="qst_gqa", method="qst", model=GQA, opts=dict(r=4, adapter_dim=16, downsample="adapter")),
    dict(name="qst_nf4", method="qst", model=NF4, opts=dict(r=4, adapter_dim=8, downsample="adapter")),
    dict(name="qst_tied", method="qst", model=TIED, opts=dict(r=4, adapter_dim=8, downsample="adapter")),
    dict(name="qst_maxpool", method="qst", model=GQA, opts=dict(r=4, adapter_dim=16, downsample="maxpool")),
    dict(name="lst_linear", method="lst", model=GQA, opts=dict(r=4, adapter_dim=16, downsample="linear", gate_alpha=0.0, gate_t=0.1)),
    dict(name="lst_avgpool", method="lst", model=TIED, opts=dict(r=4, adapter_dim=16, downsample="avgpool", gate_alpha=0.0, gate_t=0.1)),
]


def side_config(c, r):
    """QSTLlamaModel.__init__: config_copy_qst.hidden_size /= r, intermediate_size /= r (int()), heads unchanged."""
    cs = dict(c, hidden=c["hidden"] // r, inter=int(c["inter"] / r))
    cs.pop("head_dim", None)  # the repo's LlamaAttention: head_dim = hidden_size // num_heads
    return cs


# ---- parameter names and shapes (the modules' state-dict keys) ----------------------------------------

def linear_params(pre, n_in, n_out, bias):
    return [(f"{pre}.weight", [n_out, n_in], "w")] + ([(f"{pre}.bias", [n_out], "b")] if bias else [])


def downsample_params(pre, kind, h, w, dim):
    if kind == "adapter":  # AdapterLinear(bias=False) with post_layer_norm
        return (linear_params(f"{pre}.adapter_A", h, dim, False) + linear_params(f"{pre}.adapter_B", dim, w, False)
                + [(f"{pre}.post_layer_norm.weight", [w], "norm"), (f"{pre}.post_layer_norm.bias", [w], "b")])
    if kind == "linear":
        return linear_params(pre, h, w, True)
    return []  # maxpool / avgpool: no parameters


def layer_params(pre, cs):
    H, I, hd = cs["hidden"], cs["inter"], cs["hidden"] // cs["heads"]
    qkv = cs["model_type"] == "qwen2" or cs.get("attention_bias", False)
    o, mlp = cs.get("attention_bias", False), cs.get("mlp_bias", False)
    out = [(f"{pre}.input_layernorm.weight", [H], "norm"), (f"{pre}.post_attention_layernorm.weight", [H], "norm")]
    for name, n_out, n_in, bias in [("self_attn.q_proj", cs["heads"] * hd, H, qkv), ("self_attn.k_proj", cs["kv"] * hd, H, qkv),
                                    ("self_attn.v_proj", cs["kv"] * hd, H, qkv), ("self_attn.o_proj", H, cs["heads"] * hd, o),
                                    ("mlp.gate_proj", I, H, mlp), ("mlp.up_proj", I, H, mlp), ("mlp.down_proj", H, I, mlp)]:
        out += linear_params(f"{pre}.{name}", n_in, n_out, bias)
    return out


def side_params(method, c, cs, opts):
    h, w, L, kind = c["hidden"], cs["hidden"], c["layers"], opts["downsample"]
    dim = opts["adapter_dim"]
    if method == "qst":
        out = []
        for i in range(L):
            out += downsample_params(f"model.downsample.{i}", kind, h, w, dim)
        out += [(f"model.z.{i}", [w], "z") for i in range(L)]
        for i in range(L):
            out += layer_params(f"model.qst_layers.{i}", cs)
        return out + [("model.norm_qst.weight", [w], "norm")] + linear_params("upsample", w, h, True) + [("lm_head_z", [h], "zh")]
    first = "linear" if kind in ("maxpool", "avgpool") else kind
    out = downsample_params("model.side_first_downsample", first, h, w, dim)
    for i in range(L):
        out += downsample_params(f"model.side_downsamples.{i}", kind, h, w, dim)
    out += [(f"model.side_gate_params.{i}", [1], "gate") for i in range(L)]
    for i in range(L):
        out += layer_params(f"model.side_block.{i}", cs)
    return out + [("model.final_side_layer_norm.weight", [w], "norm")] + linear_params("side_final_upsample", w, h, True)


def random_value(shape, kind, g):
    """Values around each init (torch's Linear U(+-1/sqrt(fan_in)), norms 1, z 0.5, lm_head_z 1, gates 0), spread out."""
    n = torch.randn(shape, generator=g, dtype=torch.float32)
    if kind == "w":
        return (torch.rand(shape, generator=g, dtype=torch.float32) * 2 - 1) * shape[1] ** -0.5
    return {"b": 0.1 * n, "norm": 1 + 0.1 * n, "z": 0.5 + 0.5 * n, "zh": 1 + 0.5 * n, "gate": 0.1 * n}[kind]


# ---- the forward ---------------------------------------------------------------------------------------

def backbone(p, c, ids):
    """llama_reference.forward's loop, keeping every layer's raw output h_0 .. h_{L-1} and the normed final state."""
    pos = torch.arange(ids.shape[1])[None, :].expand(ids.shape[0], -1)
    cos, sin = (t.double() for t in ref.rope_cos_sin(ref.rope_inv_freq(c), pos))
    h = F.embedding(ids.long(), p["model.embed_tokens.weight"])
    emb, raw = h, []
    for i in range(c["layers"]):
        pre = f"model.layers.{i}"
        h = h + ref.attention(p, f"{pre}.self_attn", c, ref.rms_norm(h, p[f"{pre}.input_layernorm.weight"], c["eps"]), cos, sin)
        h = h + ref.mlp(p, f"{pre}.mlp", ref.rms_norm(h, p[f"{pre}.post_attention_layernorm.weight"], c["eps"]))
        raw.append(h)
    return emb, raw, ref.rms_norm(h, p["model.norm.weight"], c["eps"])


def adapter_linear(p, pre, x):
    """QSTConfig.py AdapterLinear.forward: dropout_layer (identity), adapter_A, swish, adapter_B, post_layer_norm."""
    y = F.linear(F.silu(F.linear(x, p[f"{pre}.adapter_A.weight"])), p[f"{pre}.adapter_B.weight"])
    return F.layer_norm(y, (y.shape[-1],), p[f"{pre}.post_layer_norm.weight"], p[f"{pre}.post_layer_norm.bias"], eps=1e-5)


def downsample(p, pre, kind, x, r):
    if kind == "adapter":
        return adapter_linear(p, pre, x)
    if kind == "linear":
        return F.linear(x, p[f"{pre}.weight"], p[f"{pre}.bias"])
    if kind == "maxpool":  # nn.MaxPool1d(r, r) on [B, T, C] pools the last dim
        return F.max_pool1d(x, r, r)
    return F.adaptive_avg_pool1d(x, x.shape[-1] // r)  # nn.AdaptiveAvgPool1d(C / r)


def side_layer(p, pre, cs, x, cos, sin):
    """LlamaDecoderLayer.forward at the side width."""
    h = x + ref.attention(p, f"{pre}.self_attn", cs, ref.rms_norm(x, p[f"{pre}.input_layernorm.weight"], cs["eps"]), cos, sin)
    return h + ref.mlp(p, f"{pre}.mlp", ref.rms_norm(h, p[f"{pre}.post_attention_layernorm.weight"], cs["eps"]))


def side_forward(method, p, c, cs, opts, ids):
    """-> the LM head's input [B, T, C]."""
    emb, raw, final = backbone(p, c, ids)
    pos = torch.arange(ids.shape[1])[None, :].expand(ids.shape[0], -1)
    cos, sin = (t.double() for t in ref.rope_cos_sin(ref.rope_inv_freq(cs), pos))
    kind, r = opts["downsample"], opts["r"]
    if method == "qst":
        s = downsample(p, "model.downsample.0", kind, emb, r)
        for i in range(c["layers"]):
            z = torch.sigmoid(p[f"model.z.{i}"])
            s = (1 - z) * downsample(p, f"model.downsample.{i}", kind, raw[i], r) + z * s
            s = side_layer(p, f"model.qst_layers.{i}", cs, s, cos, sin)
        s = ref.rms_norm(s, p["model.norm_qst.weight"], cs["eps"])
        zh = torch.sigmoid(p["lm_head_z"])
        return (1 - zh) * F.linear(s, p["upsample.weight"], p["upsample.bias"]) + zh * final
    first = "linear" if kind in ("maxpool", "avgpool") else kind
    s = downsample(p, "model.side_first_downsample", first, emb, r)
    for i in range(c["layers"]):
        gate = torch.sigmoid(p[f"model.side_gate_params.{i}"] / opts["gate_t"])
        s = gate * s + (1 - gate) * downsample(p, f"model.side_downsamples.{i}", kind, raw[i], r)
        s = side_layer(p, f"model.side_block.{i}", cs, s, cos, sin)
    s = ref.rms_norm(s, p["model.final_side_layer_norm.weight"], cs["eps"])
    return F.linear(s, p["side_final_upsample.weight"], p["side_final_upsample.bias"])


# ---- files ---------------------------------------------------------------------------------------------

def adapter_config(case, c, cs):
    """adapter_config.json as packages/plugin-qst/src/format.ts writes it."""
    o = case["opts"]
    cfg = {"peft_type": case["method"].upper(), "task_type": "CAUSAL_LM", "base_model_name_or_path": "model",
           "r": o["r"], "adapter_dim": o["adapter_dim"], "downsample": o["downsample"], "cache_features": False,
           "cache_max_mb": 1024, "base_model_type": c["model_type"], "base_hidden_size": c["hidden"],
           "base_intermediate_size": c["inter"], "base_num_hidden_layers": c["layers"], "base_num_attention_heads": c["heads"],
           "base_num_key_value_heads": c["kv"], "side_hidden_size": cs["hidden"], "side_intermediate_size": cs["inter"],
           "side_head_dim": cs["hidden"] // cs["heads"], "inference_mode": True}
    if case["method"] == "lst":
        cfg.update(gate_alpha=o["gate_alpha"], gate_t=o["gate_t"])
    return cfg


def run_case(case, seed, dyn):
    c = case["model"]
    cs = side_config(c, case["opts"]["r"])
    g = torch.Generator().manual_seed(seed)
    w = ref.make_weights(c, g)
    stored = {k: v.numpy() for k, v in w.items()}
    if c.get("quant"):
        stored, w = ref.quantize_nf4(c, w, dyn)
    names = side_params(case["method"], c, cs, case["opts"])
    side = {name: random_value(shape, kind, g) for name, shape, kind in names}
    ids = torch.randint(0, c["vocab"], (B, T), generator=g, dtype=torch.int64).to(torch.int32)
    labels = ids.clone()
    labels[0, 3] = -100
    labels[1, 1] = -100
    p = {k: v.double() for k, v in w.items()}
    p.update({k: v.double().requires_grad_(True) for k, v in side.items()})
    x = side_forward(case["method"], p, c, cs, case["opts"], ids)
    head = p["model.embed_tokens.weight"] if c["tie"] else p["lm_head.weight"]
    logits = F.linear(x, head)
    loss = ref.causal_lm_loss(logits, labels)
    loss.backward()
    folder = os.path.join(OUT, case["name"])
    for sub in ("model", "adapter"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    with open(os.path.join(folder, "model", "config.json"), "w") as f:
        json.dump(ref.hf_config(c), f, indent=2, sort_keys=True)
        f.write("\n")
    size = write_safetensors(os.path.join(folder, "model", "model.safetensors"), stored, {"format": "pt"})
    with open(os.path.join(folder, "adapter", "adapter_config.json"), "w") as f:
        f.write(json.dumps(adapter_config(case, c, cs), indent=2, sort_keys=True))
    size += write_safetensors(os.path.join(folder, "adapter", "adapter_model.safetensors"), side, {"format": "pt"})
    out = {"input_ids": ids, "labels": labels.to(torch.int32), "logits": logits.detach().float(), "loss": loss.reshape(1).detach().float()}
    out.update({f"grad.{k}": p[k].grad.float() for k, _, _ in names})
    meta = {"case": case["name"], "method": case["method"], "options": json.dumps(case["opts"]),
            "source": f"scripts/ref/qst_reference.py torch {torch.__version__}"}
    return size + write_safetensors(os.path.join(folder, "reference.safetensors"), out, meta)


def main():
    dyn = bnb.create_dynamic_map_torch()
    total = sum(run_case(c, 2000 + i, dyn) for i, c in enumerate(CASES))
    print(f"wrote {len(CASES)} cases, {total} bytes of safetensors, to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
