#!/usr/bin/env python3
"""The PyTorch peer of scripts/bench-step.mjs: one forward+backward step of the Llama "tiny" config
(dim 288, 6 layers, 6 heads, ffn 768, vocab 32000) on batch 4 x seq 256 with every base weight frozen
(gradients flow to the embedding output, as they do under an adapter), in f32 on 2 threads, using the
hand-written transformers-equivalent forward of scripts/ref/llama_reference.py (eager attention, as
transformers runs it on torch 1.13). Prints JSON: median seconds per step over --steps runs.

Run with Debian's python (torch): /usr/bin/python3 scripts/bench_step_torch.py --model DIR
"""
import argparse, json, os, statistics, sys, time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "ref"))
import llama_reference as ref  # noqa: E402


def load(model_dir):
    """config.json + model.safetensors (F32) without the safetensors package: parse the header by hand."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    path = os.path.join(model_dir, "model.safetensors")
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    p = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", f"{name}: bench expects an F32 model"
        a, b = t["data_offsets"]
        p[name] = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(t["shape"])
    c = {"model_type": cfg["model_type"], "hidden": cfg["hidden_size"], "inter": cfg["intermediate_size"],
         "layers": cfg["num_hidden_layers"], "heads": cfg["num_attention_heads"], "kv": cfg["num_key_value_heads"],
         "vocab": cfg["vocab_size"], "eps": cfg["rms_norm_eps"], "theta": cfg["rope_theta"],
         "tie": cfg["tie_word_embeddings"], "rope_scaling": cfg.get("rope_scaling"), "head_dim": cfg.get("head_dim")}
    return p, c


def logits_of(p, c, x, cos, sin):
    """The decoder stack and LM head on embeddings x [B, T, C] (f32 rope tables, as transformers uses for f32)."""
    for i in range(c["layers"]):
        pre = f"model.layers.{i}"
        x = x + ref.attention(p, f"{pre}.self_attn", c, ref.rms_norm(x, p[f"{pre}.input_layernorm.weight"], c["eps"]), cos, sin)
        x = x + ref.mlp(p, f"{pre}.mlp", ref.rms_norm(x, p[f"{pre}.post_attention_layernorm.weight"], c["eps"]))
    x = ref.rms_norm(x, p["model.norm.weight"], c["eps"])
    return F.linear(x, p["model.embed_tokens.weight"] if c["tie"] else p["lm_head.weight"])


def step(p, c, ids, cos, sin):
    h = F.embedding(ids, p["model.embed_tokens.weight"]).detach().requires_grad_(True)
    loss = ref.causal_lm_loss(logits_of(p, c, h, cos, sin), ids)
    loss.backward()
    return loss.item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ids", help="JSON file with the token ids (batch*seq ints) the other peer used")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    p, c = load(a.model)
    g = torch.Generator().manual_seed(0)
    if a.ids:
        with open(a.ids) as f:
            ids = torch.tensor(json.load(f), dtype=torch.long).reshape(a.batch, a.seq)
    else:
        ids = torch.randint(0, c["vocab"], (a.batch, a.seq), generator=g)
    pos = torch.arange(a.seq)[None, :].expand(a.batch, -1)
    cos, sin = ref.rope_cos_sin(ref.rope_inv_freq(c), pos)
    loss = step(p, c, ids, cos, sin)  # warm-up
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step(p, c, ids, cos, sin)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"peer": f"torch {torch.__version__}", "threads": torch.get_num_threads(), "loss": loss,
                      "median_s": statistics.median(times), "times_s": times,
                      "tokens_per_s": a.batch * a.seq / statistics.median(times)}))


if __name__ == "__main__":
    main()
