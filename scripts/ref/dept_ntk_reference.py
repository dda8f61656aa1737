#!/usr/bin/env python3
"""Golden fixtures for plugin-prompt's `dept` and `ntk-prefix` (packages/plugin-prompt), on prompt_llama.py's models.

What it is: each method's reference code transcribed in torch, run in float64 on f32 values (ntk_attn in f32).

  DePT   ZhengxiangShi/DePT f0266a77, peft/peft_model.py PeftModelForCausalLM.forward (PROMPT_TUNING_LORA):
         inputs_embeds = embed(ids) + (lora_alpha / sqrt r) * (A @ B).repeat(B, 1, 1) (inputs exactly max_length
         long, as DePT pads them), labels = cat(full(-100), labels), inputs_embeds = cat(prompt, inputs_embeds);
         generation (prepare_inputs_for_generation, "(zshi)"): the offset on the prompt's max_length positions
         only. peft/tuners/prompt_tuning_lora.py: A kaiming_uniform_(a=sqrt 5), B zeros (here B ~ N(0, 0.3^2), a
         trained-looking state, so A's gradient does not vanish). Saved as DePT's save_and_load.py names them.
  NTK    ChristianYang37/chiwun 8d9ff658, src/NTK-Attention/ntk-attn-chatglm/ntk_glm.py `phi` and `ntk_attn`,
         verbatim (its math in f32, as there), in place of eager attention, on the rotated queries and the repeated
         keys / values; sum_phi_k
         [1, H, d, 1] and sum_phi_kv [1, H, d, d] per layer (here N(0, 0.3^2), so the prefix term is visible;
         ntk_glm.py starts them at randn / 10000).

Run (from the repo root):  /usr/bin/python3 scripts/ref/dept_ntk_reference.py   (after prompt_reference.py, whose
model folders it reads). Writes packages/plugin-prompt/test/fixtures/{dept,ntk}/. Deterministic: fixed seeds.
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prompt_llama as pl  # noqa: E402
from ref_common import write_safetensors  # noqa: E402

GEN_STEPS = 8


# ---- DePT --------------------------------------------------------------------------------------------------------

def dept_embeds(p, ids, A, Bm, scaling):
    """inputs_embeds += scaling * (lora_embedding_A @ lora_embedding_B).repeat(batch_size, 1, 1)."""
    e = pl.embed(p, ids)
    return e + scaling * (A @ Bm).repeat(ids.shape[0], 1, 1)


def dept_logits(p, c, ids, mask, P, A, Bm, scaling):
    B, T = ids.shape
    N = P.shape[0]
    if T >= A.shape[0]:  # the forward / the generation prefill: exactly max_length ids get the offset
        e = torch.cat([dept_embeds(p, ids[:, :A.shape[0]], A, Bm, scaling), pl.embed(p, ids[:, A.shape[0]:])], dim=1)
    else:
        raise ValueError("DePT needs inputs of max_length ids")
    h = torch.cat([P.repeat(B, 1, 1), e], dim=1)
    full_mask = torch.cat([torch.ones(B, N, dtype=torch.int64), mask], dim=1)
    return pl.forward_embeds(p, c, h, pl.positions(B, 0, N + T), None, full_mask)


def dept_case(models):
    c, w = models["llama"]
    g = torch.Generator().manual_seed(500)
    N, r, alpha, T = 4, 3, 8, 7
    scaling = alpha / math.sqrt(r)
    P = torch.randn(N, c["hidden"], generator=g)
    A = (torch.rand(T, r, generator=g) * 2 - 1) / math.sqrt(r)
    Bm = torch.randn(r, c["hidden"], generator=g) * 0.3
    names = ["prompt_encoder.default.embedding.weight", "prompt_encoder.default.lora_embedding_A",
             "prompt_encoder.default.lora_embedding_B"]
    leaves = [t.double().requires_grad_(True) for t in (P, A, Bm)]
    ids, labels, mask = pl.batch(g, c, T=T)
    logits = dept_logits(w, c, ids, mask, *leaves, scaling)
    loss = pl.ref.causal_lm_loss(logits, torch.cat([torch.full((ids.shape[0], N), -100), labels], dim=1))
    loss.backward()
    out = [("input_ids", ids.to(torch.int32)), ("labels", labels.to(torch.int32)), ("attention_mask", mask.to(torch.int32)),
           ("logits", logits[:, N:].detach().float()), ("loss", loss.detach().float().reshape(1))]
    out += [(f"init.{n}", t) for n, t in zip(names, (P, A, Bm))]
    out += [(f"grad.{n}", t.grad.float()) for n, t in zip(names, leaves)]
    ones = lambda x: torch.ones_like(x, dtype=torch.int64)  # noqa: E731
    prompt, gen = pl.greedy(lambda x: dept_logits(w, c, x, ones(x), *leaves, scaling)[:, N:], g, GEN_STEPS, length=T)
    out += [("gen.prompt", torch.tensor(prompt, dtype=torch.int32)), ("gen.tokens", torch.tensor(gen, dtype=torch.int32))]
    options = {"num_virtual_tokens": N, "r": r, "lora_alpha": alpha, "max_length": T}
    folder = os.path.join(pl.FIXTURES, "dept")
    config = {  # PromptTuningLoRAConfig as DePT's checkpoints/<task>/adapter_config.json lay it out
        "base_model_name_or_path": "llama", "bias": "none", "hidden_size": c["hidden"], "inference_mode": True,
        "init_lora_weights": True, "load_lora_embedding_B": True, "load_lora_embeddings": True, "lora_alpha": alpha,
        "max_length": T, "num_attention_heads": c["heads"], "num_layers": c["layers"], "num_transformer_submodules": 1,
        "num_virtual_tokens": N, "peft_type": "PROMPT_TUNING_LORA", "prompt_tuning_init": "RANDOM",
        "prompt_tuning_init_text": None, "r": r, "revision": None, "save_lora_embeddings": True, "task_type": "CAUSAL_LM",
        "token_dim": c["hidden"], "tokenizer_name_or_path": None}
    saved = [("prompt_embeddings", P), ("prompt_encoder.lora_embedding_A", A), ("prompt_encoder.lora_embedding_B", Bm)]
    return write_case(folder, "dept", "llama", options, out, config, saved)


# ---- NTK attention (ntk_glm.py, verbatim) ------------------------------------------------------------------------

def phi(x):
    return nn.ELU()(x / (x.size(-1) ** 0.25)) + 1


def ntk_attn(query_layer, key_layer, value_layer, sum_phi_k, sum_phi_kv, causal_mask=True):
    dtype = query_layer.dtype
    query_layer, key_layer, value_layer = query_layer.float(), key_layer.float(), value_layer.float()
    k = sum_phi_k.abs().float()
    Z = sum_phi_kv.float()
    bs, h = query_layer.size()[:2]
    nq, nk = query_layer.size(-2), key_layer.size(-2)
    d = query_layer.size(-1)
    if causal_mask:
        mask = torch.tril(torch.ones(bs, h, nq, nk), diagonal=nk - nq).to(query_layer.device)
    else:
        mask = None
    phi_q = phi(query_layer)
    A = torch.matmul(query_layer, key_layer.transpose(-1, -2)) / (d ** 0.5)
    max_A = A.max(-1).values.unsqueeze(-1)
    exp_max_A = torch.exp(max_A)
    A = torch.exp(A - max_A)
    if mask is not None:
        A = A * mask  # ntk_glm.py: `A *= mask`, in place, which autograd refuses (exp saved its output); same values
    D = A.sum(-1).unsqueeze(-1) + torch.matmul(phi_q, k) / exp_max_A
    context_layer = (torch.matmul(A, value_layer) + torch.matmul(phi_q, Z) / exp_max_A) / D
    return context_layer.contiguous().to(dtype)


def ntk_case(models):
    c, w = models["gqa"]
    g = torch.Generator().manual_seed(600)
    H, hd, L = c["heads"], pl.ref.head_dim(c), c["layers"]
    ks = [torch.randn(H, hd, generator=g) * 0.3 for _ in range(L)]
    zs = [torch.randn(H, hd, hd, generator=g) * 0.3 for _ in range(L)]
    key = lambda l, part: f"base_model.model.model.layers.{l}.self_attn.{part}"  # noqa: E731
    leaves = [(k.double().requires_grad_(True), z.double().requires_grad_(True)) for k, z in zip(ks, zs)]
    # ntk_attn does its math in f32 (.float()) and casts back, as in ntk_glm.py; the rest of the model is f64
    core = lambda l: lambda q, k, v, _mask: ntk_attn(q, k, v, leaves[l][0].view(1, H, hd, 1), leaves[l][1].view(1, H, hd, hd))  # noqa: E731
    ids, labels, mask = pl.batch(g, c)
    B, T = ids.shape
    logits = pl.forward_embeds(w, c, pl.embed(w, ids), pl.positions(B, 0, T), None, mask, core)
    loss = pl.ref.causal_lm_loss(logits, labels)
    loss.backward()
    of = lambda x: pl.forward_embeds(w, c, pl.embed(w, x), pl.positions(1, 0, x.shape[1]), None, None, core)  # noqa: E731
    prompt, gen = pl.greedy(of, g, GEN_STEPS)
    out = [("input_ids", ids.to(torch.int32)), ("labels", labels.to(torch.int32)), ("attention_mask", mask.to(torch.int32)),
           ("logits", logits.detach().float()), ("loss", loss.detach().float().reshape(1))]
    for l in range(L):
        out += [(f"init.{key(l, 'ntk_phi_k')}", ks[l]), (f"init.{key(l, 'ntk_phi_kv')}", zs[l]),
                (f"grad.{key(l, 'ntk_phi_k')}", leaves[l][0].grad.float()), (f"grad.{key(l, 'ntk_phi_kv')}", leaves[l][1].grad.float())]
    out += [("gen.prompt", torch.tensor(prompt, dtype=torch.int32)), ("gen.tokens", torch.tensor(gen, dtype=torch.int32))]
    config = {"auto_mapping": None, "base_model_name_or_path": "gqa", "head_dim": hd, "inference_mode": True,
              "init_std": 0.3, "num_attention_heads": H, "num_layers": L, "peft_type": "NTK_PREFIX", "revision": None,
              "task_type": "CAUSAL_LM"}
    saved = [t for l in range(L) for t in ((key(l, "ntk_phi_k"), ks[l]), (key(l, "ntk_phi_kv"), zs[l]))]
    return write_case(os.path.join(pl.FIXTURES, "ntk"), "ntk-prefix", "gqa", {"init_std": 0.3}, out, config, saved)


def write_case(folder, method, model, options, out, config, saved):
    os.makedirs(os.path.join(folder, "adapter"), exist_ok=True)
    with open(os.path.join(folder, "adapter", "adapter_config.json"), "w") as f:
        f.write(json.dumps(config, indent=2, sort_keys=True))
    size = write_safetensors(os.path.join(folder, "adapter", "adapter_model.safetensors"), saved, {"format": "pt"})
    meta = {"case": os.path.basename(folder), "method": method, "model": model, "options": json.dumps(options),
            "source": f"scripts/ref/dept_ntk_reference.py torch {torch.__version__}"}
    return size + write_safetensors(os.path.join(folder, "reference.safetensors"), out, meta)


def load_models():
    """The f32 weights prompt_reference.py wrote (pl.write_model with the same seeds), widened to f64."""
    models = {}
    for i, (name, c) in enumerate(pl.MODELS.items()):
        g = torch.Generator().manual_seed(2024 + i)
        models[name] = (c, {k: v.double() for k, v in pl.ref.make_weights(c, g).items()})
    return models


def main():
    models = load_models()
    total = dept_case(models) + ntk_case(models)
    print(f"wrote {total} bytes of safetensors to {os.path.relpath(pl.FIXTURES, pl.ROOT)}/{{dept,ntk}}")


if __name__ == "__main__":
    main()
