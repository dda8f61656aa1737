#!/usr/bin/env python3
"""Golden fixtures for peft's PEFT prompt-learning methods (packages/plugin-prompt: prompt-tuning, p-tuning,
prefix-tuning).

What it is: Hugging Face PEFT's prompt encoders and its causal-LM forward for prompt learning, transcribed in
torch (peft and transformers are not installable here; Debian's python has torch 1.13), on the tiny Llama of
prompt_llama.py. Source read: huggingface/peft at 5d602fdbf (layouts as release v0.20.0, 167fcb0f2, writes them):

  tuners/prompt_tuning/model.py  PromptEmbedding   nn.Embedding(N, D); TEXT init = embedding rows of
                                                   tokenizer(text)["input_ids"] (BOS included) repeated, cut to N
  tuners/p_tuning/model.py       PromptEncoder     embedding -> MLP (3 Linear, ReLU) or bidirectional nn.LSTM -> MLP
  tuners/prefix_tuning/model.py  PrefixEncoder     nn.Embedding(N, L*2*D) or embedding(N, D) -> Linear, Tanh, Linear
  utils/other.py                 prepare_config    token_dim / heads / layers from config.json; prefix + GQA:
                                                   token_dim = head_dim * num_kv_heads, heads = num_kv_heads
  peft_model.py                  get_prompt        prefix [B, N, L*2*D] -> view(B, N, 2L, H, hd).permute(2, 0, 3, 1, 4)
                                                   .split(2): layer l = (K, V) [B, H, N, hd], already final
                                 forward           prompt / p-tuning: mask = cat(ones(B, N), mask), position ids
                                                   dropped, inputs_embeds = cat(prompts, embeds), labels =
                                                   cat(full(-100), labels); prefix: past_key_values = get_prompt(B),
                                                   mask extended, real tokens at positions N..N+T-1
                                 get_prompt_embedding_to_save / save_pretrained   one tensor `prompt_embeddings`
                                                   = the encoder's OUTPUT [N, D] ([N, L*2*D] for prefix), F32
  config.py                      save_pretrained   every dataclass field, json.dumps(indent=2, sort_keys=True),
                                                   inference_mode true, peft_version

The engine computes in f32; the reference runs in float64 on the same f32 values. Greedy generation is computed by
full forwards (for a causal model the KV-cached generate gives the same tokens).

Run (from the repo root):  /usr/bin/python3 scripts/ref/prompt_reference.py
Writes packages/plugin-prompt/test/fixtures/{models,<case>,legacy/<name>}/. Deterministic: fixed seeds.
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

PEFT_VERSION = "0.20.0"
INIT_TEXT = "Add one:"  # 9 ids with BOS: N = 12 repeats it (BOS again), N = 5 cuts it
GEN_STEPS = 8


# ---- PEFT's encoders (verbatim but for the tokenizer: TEXT init takes the ids) --------------------------------

class PromptEmbedding(nn.Module):
    def __init__(self, n, dim, word_embeddings=None, init_ids=None):
        super().__init__()
        self.embedding = nn.Embedding(n, dim)
        if init_ids is not None:  # PromptTuningInit.TEXT
            if len(init_ids) > n:
                init_ids = init_ids[:n]
            elif len(init_ids) < n:
                init_ids = init_ids * math.ceil(n / len(init_ids))
            init_ids = init_ids[:n]
            rows = word_embeddings[torch.LongTensor(init_ids)].detach().clone().to(torch.float32)
            self.embedding.weight = nn.Parameter(rows)

    def forward(self, indices):
        return self.embedding(indices)


class PromptEncoder(nn.Module):
    def __init__(self, n, dim, hidden, kind, num_layers=2, dropout=0.0):
        super().__init__()
        self.kind = kind
        self.embedding = nn.Embedding(n, dim)
        if kind == "LSTM":
            self.lstm_head = nn.LSTM(input_size=dim, hidden_size=hidden, num_layers=num_layers, dropout=dropout,
                                     bidirectional=True, batch_first=True)
            self.mlp_head = nn.Sequential(nn.Linear(hidden * 2, hidden * 2), nn.ReLU(), nn.Linear(hidden * 2, dim))
        else:
            self.mlp_head = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                          nn.Linear(hidden, dim))

    def forward(self, indices):
        x = self.embedding(indices)
        return self.mlp_head(self.lstm_head(x)[0]) if self.kind == "LSTM" else self.mlp_head(x)


class PrefixEncoder(nn.Module):
    def __init__(self, n, dim, layers, hidden, projection):
        super().__init__()
        self.prefix_projection = projection
        if projection:
            self.embedding = nn.Embedding(n, dim)
            self.transform = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, layers * 2 * dim))
        else:
            self.embedding = nn.Embedding(n, layers * 2 * dim)

    def forward(self, prefix):
        return self.transform(self.embedding(prefix)) if self.prefix_projection else self.embedding(prefix)


# ---- PEFT's model side ------------------------------------------------------------------------------------------

def prompt_dims(c, prefix):
    """_prepare_prompt_learning_config for a Llama config.json (which always has num_key_value_heads)."""
    token_dim, heads = c["hidden"], c["heads"]
    if prefix:
        head_dim = c.get("head_dim") or token_dim // heads
        token_dim, heads = head_dim * c["kv"], c["kv"]
    return dict(num_layers=c["layers"], token_dim=token_dim, num_attention_heads=heads)


def get_prompt_kv(flat, B, d):
    """get_prompt for PREFIX_TUNING: flat [B, N, L*2*D] -> per layer (K, V) [B, H, N, hd]."""
    N = flat.shape[1]
    H, L = d["num_attention_heads"], d["num_layers"]
    pkv = flat.view(B, N, L * 2, H, d["token_dim"] // H).permute([2, 0, 3, 1, 4]).split(2)
    return [(t[0], t[1]) for t in pkv]


def peft_logits(case, enc, p, c, ids, mask):
    """PeftModelForCausalLM.forward (training mode: encoder run on the prompt tokens) -> logits over the T real rows."""
    B, T = ids.shape
    N = case["n"]
    full_mask = torch.cat([torch.ones(B, N, dtype=torch.int64), mask], dim=1)
    tokens = torch.arange(N).long().unsqueeze(0).expand(B, -1)
    if case["method"] == "prefix-tuning":
        past = get_prompt_kv(enc(tokens), B, case["dims"])
        return pl.forward_embeds(p, c, pl.embed(p, ids), pl.positions(B, N, T), past, full_mask)
    prompts = enc(tokens)
    h = torch.cat([prompts, pl.embed(p, ids)], dim=1)
    return pl.forward_embeds(p, c, h, pl.positions(B, 0, N + T), None, full_mask)[:, N:]


def peft_loss(case, enc, p, c, ids, labels, mask):
    """The same forward with labels: prompt methods pad labels with N x -100 in front; the HF loss shifts by one."""
    B, T = ids.shape
    N = case["n"]
    full_mask = torch.cat([torch.ones(B, N, dtype=torch.int64), mask], dim=1)
    tokens = torch.arange(N).long().unsqueeze(0).expand(B, -1)
    if case["method"] == "prefix-tuning":
        past = get_prompt_kv(enc(tokens), B, case["dims"])
        logits = pl.forward_embeds(p, c, pl.embed(p, ids), pl.positions(B, N, T), past, full_mask)
        return pl.ref.causal_lm_loss(logits, labels)
    h = torch.cat([enc(tokens), pl.embed(p, ids)], dim=1)
    logits = pl.forward_embeds(p, c, h, pl.positions(B, 0, N + T), None, full_mask)
    return pl.ref.causal_lm_loss(logits, torch.cat([torch.full((B, N), -100), labels], dim=1))


# ---- adapter_config.json (config.py + tuners/*/config.py at v0.20.0; every field, sorted) -------------------------

def base_fields(case, c):
    d = case["dims"]
    return {"auto_mapping": None, "base_model_name_or_path": c["name"], "inference_mode": True, "modules_to_save": None,
            "num_attention_heads": d["num_attention_heads"], "num_layers": d["num_layers"],
            "num_transformer_submodules": 1, "num_virtual_tokens": case["n"], "peft_type": case["peft_type"],
            "peft_version": PEFT_VERSION, "revision": None, "task_type": "CAUSAL_LM", "token_dim": d["token_dim"]}


def adapter_config(case, c):
    o, cfg = case["options"], base_fields(case, c)
    if case["method"] == "prompt-tuning":
        text = o.get("prompt_tuning_init") == "TEXT"
        cfg.update(prompt_tuning_init=o.get("prompt_tuning_init", "RANDOM"),
                   prompt_tuning_init_text=o.get("prompt_tuning_init_text"), tokenizer_kwargs=None,
                   tokenizer_name_or_path=c["name"] if text else None)
    elif case["method"] == "p-tuning":
        cfg.update(encoder_dropout=0.0, encoder_hidden_size=case["hidden"], encoder_num_layers=o.get("encoder_num_layers", 2),
                   encoder_reparameterization_type=o.get("encoder_reparameterization_type", "MLP"))
    else:
        cfg.update(encoder_hidden_size=case["hidden"], init_weights=None, prefix_projection=o.get("prefix_projection", False))
    return cfg


def dumps(cfg):
    """json.dumps(indent=2, sort_keys=True) with Python's float spelling for encoder_dropout (0.0)."""
    text = json.dumps(cfg, indent=2, sort_keys=True)
    return text.replace('"encoder_dropout": 0,', '"encoder_dropout": 0.0,')


def write_adapter(folder, cfg, saved):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        f.write(dumps(cfg))
    return write_safetensors(os.path.join(folder, "adapter_model.safetensors"), {"prompt_embeddings": saved},
                             {"format": "pt"})


# ---- cases ------------------------------------------------------------------------------------------------------

CASES = [
    dict(name="prompt_text", model="llama", method="prompt-tuning", peft_type="PROMPT_TUNING", n=12,
         options={"num_virtual_tokens": 12, "prompt_tuning_init": "TEXT", "prompt_tuning_init_text": INIT_TEXT}),
    dict(name="prompt_cut", model="gqa", method="prompt-tuning", peft_type="PROMPT_TUNING", n=5,
         options={"num_virtual_tokens": 5, "prompt_tuning_init": "TEXT", "prompt_tuning_init_text": INIT_TEXT}),
    dict(name="prompt_random", model="gqa", method="prompt-tuning", peft_type="PROMPT_TUNING", n=4,
         options={"num_virtual_tokens": 4}),
    dict(name="ptuning_mlp", model="llama", method="p-tuning", peft_type="P_TUNING", n=6,
         options={"num_virtual_tokens": 6, "encoder_hidden_size": 24}),
    dict(name="ptuning_lstm", model="gqa", method="p-tuning", peft_type="P_TUNING", n=5,
         options={"num_virtual_tokens": 5, "encoder_reparameterization_type": "LSTM", "encoder_hidden_size": 12}),
    dict(name="prefix", model="llama", method="prefix-tuning", peft_type="PREFIX_TUNING", n=4,
         options={"num_virtual_tokens": 4}),
    dict(name="prefix_gqa", model="gqa", method="prefix-tuning", peft_type="PREFIX_TUNING", n=3,
         options={"num_virtual_tokens": 3}),
    dict(name="prefix_projection", model="gqa", method="prefix-tuning", peft_type="PREFIX_TUNING", n=3,
         options={"num_virtual_tokens": 3, "prefix_projection": True, "encoder_hidden_size": 20}),
]


def make_encoder(case, c, w):
    o, d = case["options"], case["dims"]
    n = case["n"]
    if case["method"] == "prompt-tuning":
        text = pl.encode(o["prompt_tuning_init_text"]) if o.get("prompt_tuning_init") == "TEXT" else None
        return PromptEmbedding(n, d["token_dim"], w["model.embed_tokens.weight"].float(), text), text
    if case["method"] == "p-tuning":
        return PromptEncoder(n, d["token_dim"], case["hidden"], o.get("encoder_reparameterization_type", "MLP")), None
    return PrefixEncoder(n, d["token_dim"], d["num_layers"], case["hidden"], o.get("prefix_projection", False)), None


def run_case(case, models, seed):
    c, w = models[case["model"]]
    torch.manual_seed(seed)  # the encoders' default inits (nn.Embedding N(0,1), nn.Linear / nn.LSTM uniform)
    case["dims"] = prompt_dims(c, case["method"] == "prefix-tuning")
    case["hidden"] = case["options"].get("encoder_hidden_size", case["dims"]["token_dim"])
    enc, text_ids = make_encoder(case, c, w)
    init = {f"prompt_encoder.default.{k}": v.detach().clone() for k, v in enc.named_parameters()}  # f32
    enc = enc.double()
    p = {k: v for k, v in w.items()}
    g = torch.Generator().manual_seed(seed)
    ids, labels, mask = pl.batch(g, c)
    loss = peft_loss(case, enc, p, c, ids, labels, mask)
    loss.backward()
    with torch.no_grad():
        logits = peft_logits(case, enc, p, c, ids, mask)
        saved = enc(torch.arange(case["n"]).long().unsqueeze(0))[0].float()  # get_prompt_embedding_to_save
    out = [("input_ids", ids.to(torch.int32)), ("labels", labels.to(torch.int32)), ("attention_mask", mask.to(torch.int32)),
           ("logits", logits.float()), ("loss", loss.detach().float().reshape(1)), ("saved.prompt_embeddings", saved)]
    out += [(f"init.{k}", v) for k, v in init.items()]
    out += [(f"grad.prompt_encoder.default.{k}", v.grad.float()) for k, v in enc.named_parameters()]
    if text_ids is not None:
        out.append(("text.ids", torch.tensor(text_ids, dtype=torch.int32)))
    if case["method"] == "prefix-tuning":  # the column order, as get_prompt reads the saved tensor
        for l, (k, v) in enumerate(get_prompt_kv(saved.double()[None], 1, case["dims"])):
            out += [(f"kv.{l}.k", k[0].float()), (f"kv.{l}.v", v[0].float())]
    prompt, gen = pl.greedy(lambda x: peft_logits(case, enc, p, c, x, torch.ones_like(x, dtype=torch.int64)), g, GEN_STEPS)
    out += [("gen.prompt", torch.tensor(prompt, dtype=torch.int32)), ("gen.tokens", torch.tensor(gen, dtype=torch.int32))]
    folder = os.path.join(pl.FIXTURES, case["name"])
    size = write_adapter(os.path.join(folder, "adapter"), adapter_config(case, c), saved)
    meta = {"case": case["name"], "method": case["method"], "model": case["model"], "options": json.dumps(case["options"]),
            "source": f"scripts/ref/prompt_reference.py torch {torch.__version__}"}
    return size + write_safetensors(os.path.join(folder, "reference.safetensors"), out, meta), saved


def legacy(cases_by_name):
    """Folders as older PEFT releases wrote them (v0.6.0's dataclasses: no peft_version, modules_to_save,
    tokenizer_kwargs, init_weights), one saved before training (inference_mode false), one from a newer PEFT with
    a field we do not know. The tensors are the cases' saved ones."""
    size = 0
    drop = {"peft_version", "modules_to_save", "tokenizer_kwargs", "init_weights"}
    for name, src, extra in [("prompt_v0.6", "prompt_text", {}), ("ptuning_v0.6", "ptuning_lstm", {}),
                             ("prefix_v0.6", "prefix", {"inference_mode": False}),
                             ("prefix_future", "prefix_gqa", {"peft_version": "0.99.0", "future_field": {"x": 1}})]:
        folder = os.path.join(pl.FIXTURES, "legacy", name)
        with open(os.path.join(pl.FIXTURES, src, "adapter", "adapter_config.json")) as f:
            cfg = json.load(f)
        if "future" not in name:
            cfg = {k: v for k, v in cfg.items() if k not in drop}
        cfg.update(extra)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "adapter_config.json"), "w") as f:
            f.write(dumps(cfg))
        size += write_safetensors(os.path.join(folder, "adapter_model.safetensors"),
                                  {"prompt_embeddings": cases_by_name[src]}, {"format": "pt"})
    return size


def main():
    models, total = {}, 0
    for i, (name, c) in enumerate(pl.MODELS.items()):
        w, size = pl.write_model(c, 2024 + i)
        models[name] = (c, w)
        total += size
    saved = {}
    for i, case in enumerate(CASES):
        size, saved[case["name"]] = run_case(case, models, 300 + i)
        total += size
    total += legacy(saved)
    print(f"wrote {total} bytes of safetensors to {os.path.relpath(pl.FIXTURES, pl.ROOT)}")


if __name__ == "__main__":
    main()
