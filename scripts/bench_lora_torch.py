#!/usr/bin/env python3
"""The PyTorch peer of scripts/bench-lora.mjs: LoRA training steps (forward + backward + AdamW on the
LoRA factors only; base weights frozen f32) of the Llama "tiny" config on batch x seq tokens, 2 threads.
The LoRA math is PEFT's (tuners/lora/layer.py Linear.forward): y = base(x) + B(A(x)) * alpha / r, with
A kaiming-uniform (bound 1/sqrt(in)) and B = 0 (B is set small and nonzero here so every gradient is
exercised from the first step). The forward is scripts/ref/llama_reference.py's transformers-equivalent
model (eager attention, as transformers runs it on torch 1.13). Prints JSON: median seconds per step,
tokens/s and the process's peak RSS.

Run with Debian's python (torch): /usr/bin/python3 scripts/bench_lora_torch.py --model DIR
"""
import argparse, json, os, resource, statistics, sys, time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "ref"))
import llama_reference as ref  # noqa: E402
from bench_step_torch import load, logits_of  # noqa: E402


def add_lora(p, c, targets, r, alpha, gen):
    """{module: (A [r,in], B [out,r])} for every target Linear, and a patched ref.linear that applies them."""
    lora = {}
    for name, w in p.items():
        if not name.endswith(".weight") or w.dim() != 2 or not any(name.endswith(f".{t}.weight") for t in targets):
            continue
        out_f, in_f = w.shape
        bound = 1 / in_f ** 0.5
        a = (torch.rand(r, in_f, generator=gen) * 2 - 1) * bound
        b = torch.randn(out_f, r, generator=gen) * 1e-3
        lora[name[: -len(".weight")]] = (a.requires_grad_(True), b.requires_grad_(True))
    base_linear = ref.linear
    scale = alpha / r

    def linear(params, name, x):
        y = base_linear(params, name, x)
        if name in lora:
            a, b = lora[name]
            y = y + (x @ a.t()) @ b.t() * scale
        return y

    ref.linear = linear
    return lora


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=32)
    ap.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
    ap.add_argument("--ids", help="JSON file with the token ids (batch*seq ints) the other peer used")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    p, c = load(a.model)
    for t in p.values():
        t.requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    lora = add_lora(p, c, a.targets.split(","), a.r, a.alpha, gen)
    params = [t for pair in lora.values() for t in pair]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    if a.ids:
        with open(a.ids) as f:
            ids = torch.tensor(json.load(f), dtype=torch.long).reshape(a.batch, a.seq)
    else:
        ids = torch.randint(0, c["vocab"], (a.batch, a.seq), generator=gen)

    pos = torch.arange(a.seq)[None, :].expand(a.batch, -1)
    cos, sin = ref.rope_cos_sin(ref.rope_inv_freq(c), pos)  # f32 tables, as transformers uses them for f32 models

    def step():
        logits = logits_of(p, c, F.embedding(ids, p["model.embed_tokens.weight"]), cos, sin)
        loss = ref.causal_lm_loss(logits, ids)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    loss = step()  # warm-up
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({"peer": f"torch {torch.__version__}", "threads": torch.get_num_threads(), "first_loss": loss,
                      "trainable": sum(t.numel() for t in params), "median_s": med, "times_s": times,
                      "tokens_per_s": a.batch * a.seq / med,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
