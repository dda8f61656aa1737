"""The transformers Llama forward of llama_reference.py, opened up the way prompt learning drives it.

What it is: LlamaModel.forward on `inputs_embeds` with a `past_key_values` prefix (per layer, keys and values
that are already final: no RoPE is applied to them), explicit position ids, a 2-D attention mask turned into
the 4-D causal + padding mask (transformers' _prepare_4d_causal_attention_mask_with_cache_position: key j is
visible to query i when j <= past + i and attention_mask[b, j] = 1), and a pluggable core attention (NTK
attention replaces eager softmax attention there). Everything else (RMSNorm, RoPE tables, MLP, weights,
config.json) is llama_reference.py's, imported, not copied. Not here: any PEFT method (prompt_reference.py,
dept_ntk_reference.py). Shapes: B batch, T new positions, P prefix length, S = P + T keys.
"""
import math
import os
import shutil
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_reference as ref  # noqa: E402
from ref_common import write_safetensors  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIXTURES = os.path.join(ROOT, "packages", "plugin-prompt", "test", "fixtures")
# The demo's tokenizer: byte-level BPE with no merges, <unk> <s> </s> = 0..2, byte b = id 3 + b; BOS added.
TOKENIZER_DIR = os.path.join(ROOT, "demo", "base")
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]

# Two tiny models: MHA, and GQA 4/2 with head_dim 8 != hidden / heads (PEFT's prefix GQA rule reads head_dim).
MODELS = {
    "llama": dict(name="llama", model_type="llama", vocab=320, hidden=32, inter=64, layers=2, heads=4, kv=4,
                  tie=False, theta=10000.0, eps=1e-5),
    "gqa": dict(name="gqa", model_type="llama", vocab=320, hidden=48, inter=64, layers=2, heads=4, kv=2,
                head_dim=8, tie=False, theta=10000.0, eps=1e-5),
}


def encode(text):
    """tokenizer(text)["input_ids"] for the demo tokenizer (checked against its tokenizer.json): BOS, then one id per byte."""
    import json
    with open(os.path.join(TOKENIZER_DIR, "tokenizer.json")) as f:
        tok = json.load(f)
    assert tok["model"]["type"] == "BPE" and not tok["model"].get("merges") and len(tok["model"]["vocab"]) == 259
    assert tok["post_processor"]["single"][0]["SpecialToken"]["id"] == "<s>"
    return [1] + [3 + b for b in text.encode("utf-8")]


def write_model(c, seed):
    """The model folder (config.json, f32 model.safetensors, the demo's tokenizer files); returns its f64 weights."""
    import json
    g = torch.Generator().manual_seed(seed)
    w = ref.make_weights(c, g)
    folder = os.path.join(FIXTURES, "models", c["name"])
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(ref.hf_config(c), f, indent=2, sort_keys=True)
        f.write("\n")
    for name in TOKENIZER_FILES:
        shutil.copyfile(os.path.join(TOKENIZER_DIR, name), os.path.join(folder, name))
    size = write_safetensors(os.path.join(folder, "model.safetensors"), {k: v.numpy() for k, v in w.items()},
                             {"format": "pt"})
    return {k: v.double() for k, v in w.items()}, size


def eager(q, k, v, mask):
    """eager_attention_forward: q [B,nh,T,hd], k/v [B,nh,S,hd] (KV heads repeated), mask [B,1,T,S] additive."""
    scores = torch.matmul(q, k.transpose(2, 3)) * q.shape[-1] ** -0.5 + mask
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def four_d_mask(attention_mask, B, T, P, dtype):
    """Key j visible to query i iff j <= P + i and attention_mask[b, j] (transformers' min-value additive mask)."""
    S = P + T
    causal = torch.arange(S)[None, :] <= (P + torch.arange(T))[:, None]  # [T, S]
    keep = causal[None, None] & (attention_mask[:, None, None, :S] > 0)
    return torch.where(keep, torch.zeros((), dtype=dtype), torch.full((), torch.finfo(dtype).min, dtype=dtype))


def attention(p, pre, c, x, cos, sin, past, mask, core):
    """LlamaAttention.forward with a cache holding `past` = (k, v) [B, nkv, P, hd]: new keys are rotated, the past
    ones are used as they are (DynamicCache.update concatenates), then repeat_kv and the core attention."""
    bsz, q_len, _ = x.shape
    hd = ref.head_dim(c)
    q = ref.linear(p, f"{pre}.q_proj", x).view(bsz, q_len, -1, hd).transpose(1, 2)
    k = ref.linear(p, f"{pre}.k_proj", x).view(bsz, q_len, -1, hd).transpose(1, 2)
    v = ref.linear(p, f"{pre}.v_proj", x).view(bsz, q_len, -1, hd).transpose(1, 2)
    q, k = ref.apply_rope(q, k, cos, sin)
    if past is not None:
        k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
    n_rep = c["heads"] // c["kv"]
    out = core(q, ref.repeat_kv(k, n_rep), ref.repeat_kv(v, n_rep), mask)
    return ref.linear(p, f"{pre}.o_proj", out.transpose(1, 2).reshape(bsz, q_len, -1))


def forward_embeds(p, c, h, position_ids, past=None, attention_mask=None, core=None):
    """LlamaForCausalLM.forward(inputs_embeds=h [B,T,C], past_key_values=past, position_ids, attention_mask) ->
    logits [B,T,V]. `past`: per layer (k, v) [B, nkv, P, hd]; attention_mask [B, P+T] (None: all ones);
    core(layer) -> attention function (default eager softmax)."""
    B, T, _ = h.shape
    P = past[0][0].shape[2] if past is not None else 0
    if attention_mask is None:
        attention_mask = torch.ones(B, P + T, dtype=torch.int64)
    mask = four_d_mask(attention_mask, B, T, P, h.dtype)
    cos, sin = (t.double() for t in ref.rope_cos_sin(ref.rope_inv_freq(c), position_ids))
    for i in range(c["layers"]):
        pre = f"model.layers.{i}"
        attn = core(i) if core else eager
        x = ref.rms_norm(h, p[f"{pre}.input_layernorm.weight"], c["eps"])
        h = h + attention(p, f"{pre}.self_attn", c, x, cos, sin, past[i] if past is not None else None, mask, attn)
        h = h + ref.mlp(p, f"{pre}.mlp", ref.rms_norm(h, p[f"{pre}.post_attention_layernorm.weight"], c["eps"]))
    h = ref.rms_norm(h, p["model.norm.weight"], c["eps"])
    head = p["model.embed_tokens.weight"] if c["tie"] else p["lm_head.weight"]
    return F.linear(h, head)


def embed(p, ids):
    return F.embedding(ids.long(), p["model.embed_tokens.weight"])


def positions(B, start, T):
    return (start + torch.arange(T))[None, :].expand(B, -1)


def greedy(logits_of, g, n, length=6):
    """Greedy decoding by full forwards (what a KV-cached generate computes for a causal model): logits_of(ids [1, t])
    -> logits [1, t, V] over those ids. Random prompts of `length` byte ids are drawn from g until every step's top-2
    margin is clear of f32 round-off (> 1e-3). Returns (prompt, tokens)."""
    for _ in range(20):
        prompt = [int(x) for x in torch.randint(3, 259, (length,), generator=g)]
        ids, margin = list(prompt), math.inf
        for _ in range(n):
            with torch.no_grad():
                last = logits_of(torch.tensor([ids], dtype=torch.int32))[0, -1]
            top = torch.topk(last, 2).values
            margin = min(margin, float(top[0] - top[1]))
            ids.append(int(torch.argmax(last)))
        if margin > 1e-3:
            return prompt, ids[len(prompt):]
    sys.exit("no prompt with a greedy margin clear of round-off")


def batch(g, c, B=2, T=7):
    """input_ids [B,T] (byte-token ids), labels = ids (text rows: labels[0] counts), row 1 right-padded by 2."""
    ids = torch.randint(3, 259, (B, T), generator=g, dtype=torch.int64)
    mask = torch.ones(B, T, dtype=torch.int64)
    mask[1, T - 2:] = 0
    ids[1, T - 2:] = 0
    labels = ids.clone()
    labels[mask == 0] = -100
    return ids, labels, mask
