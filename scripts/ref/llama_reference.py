#!/usr/bin/env python3
"""Golden fixtures for peft's Llama-family models (packages/core-tensor/src/models/).

What it is: tiny random llama / mistral / qwen2 models saved as Hugging Face folders (config.json +
model.safetensors), and what transformers would compute on them: logits, the mean causal-LM loss and
the gradient of that loss w.r.t. every weight, the hidden states of `output_hidden_states=True`, the
rotary tables, and a greedy continuation. The forward pass is transformers' own, written out by hand
because transformers is not installed here (Debian's python has torch only). Each function names the
transformers code it copies (transformers v4.46+, src/transformers/models/llama/modeling_llama.py,
models/qwen2/modeling_qwen2.py, modeling_rope_utils.py):

  LlamaRMSNorm.forward                       rms_norm
  _compute_default_rope_parameters           default_inv_freq   (computed in f32, as transformers does)
  _compute_linear_scaling_rope_parameters    rope_inv_freq      (inv_freq / factor)
  _compute_llama3_parameters                 llama3_inv_freq
  LlamaRotaryEmbedding.forward               rope_cos_sin       (f32: inv_freq @ position_ids, cat, cos/sin)
  rotate_half, apply_rotary_pos_emb          rotate_half, apply_rope
  repeat_kv, eager_attention_forward         repeat_kv, attention (causal mask, scaling head_dim ** -0.5)
  LlamaMLP.forward                           mlp                (down(silu(gate x) * up x))
  LlamaDecoderLayer / LlamaModel.forward     forward            (pre-norm residual blocks, final norm)
  LlamaForCausalLM + ForCausalLMLoss         causal_lm_loss     (shift by one, ignore_index -100, mean)
  Qwen2Attention                             q/k/v biases, no o_proj bias; llama `attention_bias` /
                                             `mlp_bias` add biases to q/k/v/o and gate/up/down.

The weights are f32 values (what the folder stores); the reference math runs in float64 on them, with
the rotary tables computed in f32 exactly as transformers computes them and then widened. So the TS
engine (f32 kernels) is compared against the exact answer for the stored model.

The 4-bit case quantizes the seven Linear weights of each layer to NF4 with double quantization using
the functions of scripts/ref/bnb_reference.py (bitsandbytes' layout and numerics, imported, not copied),
stores them in bitsandbytes' checkpoint layout, and records the logits of the model built from the
DEQUANTIZED weights (what bitsandbytes' Linear4bit computes with).

Run (from the repo root; Debian's python has torch, the pyenv one does not):
    /usr/bin/python3 scripts/ref/llama_reference.py
Writes packages/core-tensor/test/fixtures/llama/<case>/{config.json, model.safetensors, reference.safetensors}.
Deterministic: fixed seeds.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bnb_reference as bnb  # noqa: E402  (the bitsandbytes reference functions, reused)
from ref_common import default_inv_freq, llama3_inv_freq, write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packages", "core-tensor", "test",
                   "fixtures", "llama")
B, T = 2, 7
# "The answer is" under the repo's fixture tokenizer (src/fixtures/tokenizer.ts, vocab 320), BOS first;
# the generate test re-encodes the text and checks it still gives these ids.
PROMPT_TEXT = "The answer is"
PROMPT_IDS = [1, 301, 270, 118, 122, 264, 297]
GREEDY_TOKENS = 10

CASES = [
    # plain llama, MHA; the greedy-continuation model (vocab = the fixture tokenizer's 320)
    dict(name="llama", model_type="llama", vocab=320, hidden=32, inter=64, layers=2, heads=4, kv=4,
         tie=False, theta=10000.0, eps=1e-5, greedy=True, hidden_states=True),
    # mistral, GQA 4/2, head_dim 16 != hidden/heads, legacy rope_scaling {"type": "linear"}
    dict(name="mistral_gqa", model_type="mistral", vocab=96, hidden=32, inter=48, layers=2, heads=4, kv=2,
         head_dim=16, tie=False, theta=10000.0, eps=1e-6, rope_scaling={"type": "linear", "factor": 2.0}),
    # llama with tied embeddings, attention_bias and mlp_bias, MQA 2/1
    dict(name="llama_tied", model_type="llama", vocab=96, hidden=32, inter=48, layers=2, heads=2, kv=1,
         tie=True, theta=10000.0, eps=1e-6, attention_bias=True, mlp_bias=True),
    # qwen2: q/k/v biases, GQA 4/1, tied embeddings (as Qwen2-0.5B)
    dict(name="qwen2", model_type="qwen2", vocab=96, hidden=32, inter=48, layers=2, heads=4, kv=1,
         tie=True, theta=1000000.0, eps=1e-6),
    # llama 3.1 rope scaling: head_dim 8 at theta 5e5 puts one frequency in each of the three bands
    dict(name="llama3_rope", model_type="llama", vocab=96, hidden=32, inter=48, layers=2, heads=4, kv=2,
         tie=False, theta=500000.0, eps=1e-5, max_pos=131072, offsets=True,
         rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 8192}),
    # NF4 (blocksize 64, double quant) Linear weights in bitsandbytes' layout; logits of the dequantized model
    dict(name="llama_nf4", model_type="llama", vocab=96, hidden=32, inter=64, layers=2, heads=4, kv=2,
         tie=False, theta=10000.0, eps=1e-5, quant="nf4", grads=False),
]
LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


# ---- files ----------------------------------------------------------------------------------------------

def hf_config(c):
    """config.json as save_pretrained writes it for LlamaConfig / MistralConfig / Qwen2Config."""
    arch = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}
    cfg = {
        "architectures": [arch[c["model_type"]]], "model_type": c["model_type"], "attention_dropout": 0.0,
        "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": c["hidden"],
        "initializer_range": 0.02, "intermediate_size": c["inter"],
        "max_position_embeddings": c.get("max_pos", 2048), "num_attention_heads": c["heads"],
        "num_hidden_layers": c["layers"], "num_key_value_heads": c["kv"], "rms_norm_eps": c["eps"],
        "rope_scaling": c.get("rope_scaling"), "rope_theta": c["theta"], "tie_word_embeddings": c["tie"],
        "torch_dtype": "float32", "transformers_version": "4.46.0", "use_cache": True, "vocab_size": c["vocab"],
    }
    if c.get("head_dim"):
        cfg["head_dim"] = c["head_dim"]
    if c["model_type"] == "llama":
        cfg.update(attention_bias=c.get("attention_bias", False), mlp_bias=c.get("mlp_bias", False), pretraining_tp=1)
    if c["model_type"] == "qwen2":
        cfg.update(max_window_layers=c["layers"], sliding_window=None, use_sliding_window=False)
    if c["model_type"] == "mistral":
        cfg["sliding_window"] = None
    if c.get("quant"):
        cfg["quantization_config"] = {
            "_load_in_4bit": True, "_load_in_8bit": False, "bnb_4bit_compute_dtype": "float32",
            "bnb_4bit_quant_storage": "uint8", "bnb_4bit_quant_type": c["quant"], "bnb_4bit_use_double_quant": True,
            "llm_int8_enable_fp32_cpu_offload": False, "llm_int8_has_fp16_weight": False,
            "llm_int8_skip_modules": None, "llm_int8_threshold": 6.0, "load_in_4bit": True, "load_in_8bit": False,
            "quant_method": "bitsandbytes"}
    return cfg


# ---- weights -------------------------------------------------------------------------------------------

def head_dim(c):
    return c.get("head_dim") or c["hidden"] // c["heads"]


def shapes(c):
    """name -> (shape, init std); Linear weights [out, in]. Norm weights are 1 + noise so their gradients matter."""
    H, I, hd = c["hidden"], c["inter"], head_dim(c)
    Q, KV = c["heads"] * hd, c["kv"] * hd
    qkv_bias = c["model_type"] == "qwen2" or c.get("attention_bias", False)
    out = {"model.embed_tokens.weight": ([c["vocab"], H], 1.0)}
    for i in range(c["layers"]):
        p = f"model.layers.{i}"
        out[f"{p}.input_layernorm.weight"] = ([H], "norm")
        for name, o, n, bias in [("self_attn.q_proj", Q, H, qkv_bias), ("self_attn.k_proj", KV, H, qkv_bias),
                                 ("self_attn.v_proj", KV, H, qkv_bias),
                                 ("self_attn.o_proj", H, Q, c.get("attention_bias", False))]:
            out[f"{p}.{name}.weight"] = ([o, n], n ** -0.5)
            if bias:
                out[f"{p}.{name}.bias"] = ([o], 0.1)
        out[f"{p}.post_attention_layernorm.weight"] = ([H], "norm")
        for name, o, n in [("mlp.gate_proj", I, H), ("mlp.up_proj", I, H), ("mlp.down_proj", H, I)]:
            out[f"{p}.{name}.weight"] = ([o, n], n ** -0.5)
            if c.get("mlp_bias"):
                out[f"{p}.{name}.bias"] = ([o], 0.1)
    out["model.norm.weight"] = ([H], "norm")
    if not c["tie"]:
        out["lm_head.weight"] = ([c["vocab"], H], H ** -0.5)
    return out


def make_weights(c, g):
    w = {}
    for name, (shape, std) in shapes(c).items():
        if std == "norm":
            w[name] = (1 + 0.1 * torch.randn(shape, generator=g, dtype=torch.float32))
        else:
            w[name] = torch.randn(shape, generator=g, dtype=torch.float32) * std
    return w


# ---- rotary embedding (modeling_rope_utils.py + LlamaRotaryEmbedding), all in f32 as transformers ------------

def rope_inv_freq(c):
    inv = default_inv_freq(c["theta"], head_dim(c))
    s = c.get("rope_scaling")
    if s is None:
        return inv
    kind = s.get("rope_type", s.get("type"))
    if kind == "linear":
        return inv / s["factor"]  # _compute_linear_scaling_rope_parameters
    if kind == "llama3":
        return llama3_inv_freq(inv, s["factor"], s["low_freq_factor"], s["high_freq_factor"],
                               s["original_max_position_embeddings"])
    raise ValueError(kind)


def rope_cos_sin(inv_freq, position_ids):
    """LlamaRotaryEmbedding.forward: f32 freqs = inv_freq @ position_ids, emb = cat(freqs, freqs). -> [B, T, hd]."""
    inv_freq_expanded = inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
    position_ids_expanded = position_ids[:, None, :].float()
    freqs = (inv_freq_expanded.float() @ position_ids_expanded.float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(q, k, cos, sin):
    """apply_rotary_pos_emb with unsqueeze_dim=1 (q, k: [B, heads, T, hd])."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


# ---- the model (f64 on the stored f32 weights) ---------------------------------------------------------------

def rms_norm(x, weight, eps):
    """LlamaRMSNorm.forward (its f32 round trip is a no-op here: everything is f64)."""
    variance = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(variance + eps))


def linear(p, name, x):
    return F.linear(x, p[f"{name}.weight"], p.get(f"{name}.bias"))


def repeat_kv(hidden_states, n_rep):
    batch, num_key_value_heads, slen, hd = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, hd)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, hd)


def attention(p, pre, c, x, cos, sin):
    """LlamaAttention.forward with eager_attention_forward (q/k/v [B, heads, T, hd], causal mask)."""
    bsz, q_len, _ = x.shape
    hd = head_dim(c)
    q = linear(p, f"{pre}.q_proj", x).view(bsz, q_len, -1, hd).transpose(1, 2)
    k = linear(p, f"{pre}.k_proj", x).view(bsz, q_len, -1, hd).transpose(1, 2)
    v = linear(p, f"{pre}.v_proj", x).view(bsz, q_len, -1, hd).transpose(1, 2)
    q, k = apply_rope(q, k, cos, sin)
    n_rep = c["heads"] // c["kv"]
    k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
    scores = torch.matmul(q, k.transpose(2, 3)) * hd ** -0.5
    causal = torch.full((q_len, q_len), float("-inf"), dtype=scores.dtype).triu(1)
    probs = torch.softmax(scores + causal, dim=-1)
    out = torch.matmul(probs, v).transpose(1, 2).reshape(bsz, q_len, -1)
    return linear(p, f"{pre}.o_proj", out)


def mlp(p, pre, x):
    return linear(p, f"{pre}.down_proj", F.silu(linear(p, f"{pre}.gate_proj", x)) * linear(p, f"{pre}.up_proj", x))


def forward(p, c, ids, position_ids=None):
    """LlamaForCausalLM.forward -> (logits [B,T,V], all_hidden_states as output_hidden_states=True gives them)."""
    if position_ids is None:
        position_ids = torch.arange(ids.shape[1])[None, :].expand(ids.shape[0], -1)
    cos, sin = (t.double() for t in rope_cos_sin(rope_inv_freq(c), position_ids))
    h = F.embedding(ids.long(), p["model.embed_tokens.weight"])
    states = []
    for i in range(c["layers"]):
        pre = f"model.layers.{i}"
        states.append(h)
        h = h + attention(p, f"{pre}.self_attn", c, rms_norm(h, p[f"{pre}.input_layernorm.weight"], c["eps"]), cos, sin)
        h = h + mlp(p, f"{pre}.mlp", rms_norm(h, p[f"{pre}.post_attention_layernorm.weight"], c["eps"]))
    h = rms_norm(h, p["model.norm.weight"], c["eps"])
    states.append(h)
    head = p["model.embed_tokens.weight"] if c["tie"] else p["lm_head.weight"]
    return F.linear(h, head), states


def causal_lm_loss(logits, labels):
    """ForCausalLMLoss: predict token t+1 from position t; ignore_index -100; mean over counted tokens."""
    V = logits.shape[-1]
    shift_logits = logits[:, :-1, :].reshape(-1, V)
    shift_labels = labels[:, 1:].reshape(-1)
    return F.cross_entropy(shift_logits, shift_labels.long(), ignore_index=-100, reduction="mean")


# ---- NF4 weights (bnb_reference.py) ----------------------------------------------------------------------------

def quantize_nf4(c, w, dyn):
    """Replaces the Linear weights by bitsandbytes NF4 (blocksize 64, double quant) tensors; returns the
    stored tensors and the dequantized f32 weights bitsandbytes would multiply with."""
    stored, deq = {}, dict(w)
    for i in range(c["layers"]):
        for lin in LINEARS:
            name = f"model.layers.{i}.{lin}.weight"
            x = w[name].numpy().reshape(-1).astype(np.float32)
            codes, packed, absmax = bnb.quantize_4bit(x, 64, "nf4")
            offset, q, nested, recovered = bnb.double_quant(absmax, dyn)
            stored[name] = packed.reshape(-1, 1)
            stored[f"{name}.absmax"] = q
            stored[f"{name}.quant_map"] = bnb.quant_map("nf4")
            stored[f"{name}.nested_absmax"] = nested
            stored[f"{name}.nested_quant_map"] = dyn.copy()
            stored[f"{name}.quant_state.bitsandbytes__nf4"] = bnb.quant_state_bytes(
                "nf4", 64, "float32", list(w[name].shape), offset)
            deq[name] = torch.from_numpy(bnb.dequantize_4bit(codes, recovered, 64, "nf4").reshape(w[name].shape))
    for name, t in w.items():
        if name not in stored:
            stored[name] = t.numpy()
    return stored, deq


# ---- one case ------------------------------------------------------------------------------------------------

def greedy(p, c, prompt, n):
    """Greedy continuation by full forwards; every step's top-2 margin must be clear of f32 round-off."""
    ids, margins = list(prompt), []
    for _ in range(n):
        with torch.no_grad():
            logits, _ = forward(p, c, torch.tensor([ids], dtype=torch.int32))
        top = torch.topk(logits[0, -1], 2).values
        margins.append(float(top[0] - top[1]))
        ids.append(int(torch.argmax(logits[0, -1])))
    if min(margins) < 1e-3:
        sys.exit(f"greedy margin {min(margins)} too small to be a stable fixture")
    return ids[len(prompt):], min(margins)


def run_case(c, seed, dyn):
    g = torch.Generator().manual_seed(seed)
    w = make_weights(c, g)
    ids = torch.randint(0, c["vocab"], (B, T), generator=g, dtype=torch.int64).to(torch.int32)
    labels = ids.clone()
    labels[0, 2] = -100
    labels[1, 5] = -100
    stored = {k: v.numpy() for k, v in w.items()}
    if c.get("quant"):
        stored, w = quantize_nf4(c, w, dyn)
    p = {k: v.double().requires_grad_(c.get("grads", True)) for k, v in w.items()}
    logits, states = forward(p, c, ids)
    loss = causal_lm_loss(logits, labels)
    ref = {"input_ids": ids, "labels": labels.to(torch.int32), "logits": logits.float(),
           "loss": loss.reshape(1).detach(), "inv_freq": rope_inv_freq(c)}
    if c.get("grads", True):
        loss.backward()
        ref.update({f"grad.{k}": v.grad.float() for k, v in p.items()})
    if c.get("hidden_states"):
        ref.update({f"hidden_states.{i}": s.float() for i, s in enumerate(states)})
    # tables at far positions: what the engine's cos/sin must equal (f32, first half of emb)
    far = torch.tensor([[0, 1, 7, 100, 2047, 5000, 100000]])
    cos, sin = rope_cos_sin(rope_inv_freq(c), far)
    ref.update({"rope.positions": far[0].to(torch.int32), "rope.cos": cos[0, :, : head_dim(c) // 2],
                "rope.sin": sin[0, :, : head_dim(c) // 2]})
    meta = {"case": c["name"], "source": f"scripts/ref/llama_reference.py torch {torch.__version__}"}
    if c.get("offsets"):
        pos = torch.stack([torch.arange(T) + 5000, torch.arange(T) + 123])
        with torch.no_grad():
            ref["offset.logits"] = forward(p, c, ids, pos)[0].float()
        ref["offset.positions"] = pos.to(torch.int32)
    if c.get("greedy"):
        tokens, margin = greedy(p, c, PROMPT_IDS, GREEDY_TOKENS)
        ref.update({"greedy.prompt_ids": torch.tensor(PROMPT_IDS, dtype=torch.int32),
                    "greedy.tokens": torch.tensor(tokens, dtype=torch.int32)})
        meta.update(prompt_text=PROMPT_TEXT, greedy_min_margin=repr(margin))
    folder = os.path.join(OUT, c["name"])
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(hf_config(c), f, indent=2, sort_keys=True)
        f.write("\n")
    size = write_safetensors(os.path.join(folder, "model.safetensors"), stored, {"format": "pt"})
    return size + write_safetensors(os.path.join(folder, "reference.safetensors"), ref, meta)


def main():
    dyn = bnb.create_dynamic_map_torch()  # under torch's default f32, as bitsandbytes builds it
    total = sum(run_case(c, 1000 + i, dyn) for i, c in enumerate(CASES))
    print(f"wrote {len(CASES)} model folders, {total} bytes of safetensors, to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
