#!/usr/bin/env python3
"""Golden numbers for `peft eval` on {"text"} rows (packages/core-tensor/src/tasks/eval-text.ts, data/windows.ts).

What it is: the perplexity metrics of texts longer than the window, computed exactly as the two references
compute them, on the committed tiny Llama fixture (packages/core-tensor/test/fixtures/llama/llama, the model of
scripts/ref/llama_reference.py, whose torch transcription of the Llama forward is reused: f64 on the stored
f32 weights), with and without a LoRA adapter:

  - rolling (no --stride): EleutherAI/lm-evaluation-harness loglikelihood_rolling, transcribed below from
    lm_eval/utils.py (get_rolling_token_windows, make_disjoint_window) and lm_eval/models/huggingface.py
    (HFLM.loglikelihood_rolling with context_len=1, max_seq_len=max_length; _loglikelihood_tokens: the input
    is (context + continuation)[-(max_length + 1):][:-1], the last len(continuation) log-softmax rows scored).
  - strided (--stride): transformers docs/source/en/perplexity.md "Perplexity of fixed-length models", its
    begin_loc / end_loc / prev_end_loc loop with targets masked to -100, the loss of each window summed per
    token (the guide weights a window's mean loss by num_valid - 1, one short of its scored tokens for every
    window after the first; here each scored token counts once, as in peft).
  - metrics: lm_eval/tasks/wikitext/preprocess_wikitext.py process_results (words = len(re.split(r"\\s+",
    text)), bytes = len(text.encode("utf-8"))) aggregated by lm_eval/api/metrics.py (weighted_perplexity =
    exp(-sum(ll) / sum(weight)), bits_per_byte = -sum(ll) / sum(bytes) / ln 2); per token likewise.

The token ids are inputs here (no tokenizers library in Debian's python): IDS is what the repo's fixture
tokenizer (src/fixtures/tokenizer.ts, tokenizerJson(320)) encodes each text to with special tokens, BOS (1)
first; the tests re-encode the texts and check they still give these ids. lm-eval's token_list is IDS[1:]
(add_special_tokens=False, its causal default before PR #3347; BOS is not scored twice) and its
prefix_token_id is BOS = IDS[0]; the guide's
encodings are IDS (transformers' tokenizer(text) adds BOS). LoRA: W' = W + (lora_alpha / r) B A on
q_proj and v_proj of both layers (huggingface/peft tuners/lora/layer.py get_delta_weight), in f64.

Run (from the repo root; Debian's python has torch):  /usr/bin/python3 scripts/ref/eval_reference.py
Writes packages/core-tensor/test/fixtures/eval/{text.jsonl, reference.json, lora/}. Deterministic (fixed seed).
"""
import json
import math
import os
import re
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_reference as lr  # noqa: E402  (the Llama forward, reused)
from ref_common import read_safetensors, write_safetensors  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packages", "core-tensor", "test", "fixtures")
MODEL = os.path.join(FIXTURES, "llama", "llama")
OUT = os.path.join(FIXTURES, "eval")

TEXTS = [
    "The quick brown fox jumps over the lazy dog.  A language model predicts the next token \u2014 from the tokens "
    "before it, caf\u00e9 and na\u00efve included.\nLow-rank adapters train a small number of extra weights; "
    "quantization stores the frozen weights in four bits. Numbers like 1, 2, 3, 10, 100 appear too, as do names: "
    "Zo\u00eb, \u00c6r\u00f8, \u6771\u4eac. ",
    "Hello world!",
    "  What is the answer? The answer is forty two, said the model,\tand then it stopped.",
]
IDS = [
    [1, 301, 35, 116, 120, 108, 102, 110, 276, 117, 292, 113, 267, 114, 123, 35, 109, 309, 115, 118, 280, 121, 264, 261, 287,
     100, 125, 124, 35, 103, 114, 106, 49, 35, 35, 68, 287, 278, 106, 120, 100, 106, 104, 298, 35, 115, 117, 104, 103, 108,
     102, 275, 261, 295, 272, 288, 35, 229, 131, 151, 312, 306, 261, 315, 311, 105, 293, 313, 47, 35, 102, 100, 105, 198,
     172, 281, 295, 100, 198, 178, 121, 104, 282, 102, 111, 120, 103, 104, 103, 49, 13, 79, 292, 48, 117, 319, 262, 103,
     100, 115, 119, 264, 118, 259, 308, 274, 262, 269, 112, 100, 111, 111, 295, 309, 101, 264, 280, 105, 35, 272, 308, 316,
     62, 35, 116, 120, 278, 119, 108, 125, 284, 108, 114, 113, 269, 119, 266, 273, 261, 312, 114, 125, 265, 316, 282, 267,
     307, 117, 276, 108, 275, 49, 35, 81, 309, 101, 264, 118, 287, 108, 110, 104, 294, 47, 35, 53, 47, 35, 54, 47, 294, 51,
     47, 294, 299, 262, 115, 115, 104, 100, 117, 277, 114, 47, 262, 118, 35, 103, 114, 295, 318, 273, 61, 35, 93, 114, 198,
     174, 47, 35, 198, 137, 117, 198, 187, 47, 35, 233, 160, 180, 231, 189, 175, 49, 35],
    [1, 75, 279, 111, 114, 296, 266, 111, 103, 36],
    [1, 35, 35, 90, 107, 284, 297, 261, 270, 118, 122, 264, 66, 35, 301, 270, 118, 122, 264, 297, 267, 266, 119, 124, 259,
     122, 114, 47, 269, 100, 108, 103, 261, 298, 47, 12, 278, 103, 261, 113, 313, 269, 119, 114, 115, 115, 104, 103, 49],
]
CASES = [  # (name, seq-len, stride or None, adapter)
    ("rolling-16", 16, None, False),
    ("stride-16-6", 16, 6, False),
    ("rolling-1024", 1024, None, False),
    ("rolling-16-lora", 16, None, True),
    ("stride-16-6-lora", 16, 6, True),
]
LORA_R, LORA_ALPHA, LORA_TARGETS = 4, 8, ["q_proj", "v_proj"]


# ---- lm-evaluation-harness, transcribed ------------------------------------------------------------------------

def get_rolling_token_windows(token_list, prefix_token, max_seq_len, context_len):
    """lm_eval/utils.py get_rolling_token_windows: (input_tokens, pred_tokens) pairs; score the last len(pred)."""
    assert 1 <= context_len <= max_seq_len
    if not token_list:
        return
    pred_len = max_seq_len - context_len + 1
    predicted = 0
    first_seq_len = min(max_seq_len, len(token_list))
    yield [prefix_token] + token_list[: first_seq_len - 1], token_list[:first_seq_len]
    predicted += first_seq_len
    while predicted < len(token_list):
        window_pred_len = min(len(token_list) - predicted, pred_len)
        window_end = predicted + window_pred_len
        yield (token_list[window_end - max_seq_len - 1: window_end - 1], token_list[window_end - window_pred_len: window_end])
        predicted += window_pred_len


def make_disjoint_window(pair):
    """lm_eval/utils.py make_disjoint_window: the context no longer overlaps the continuation."""
    a, b = pair
    return a[: len(a) - (len(b) - 1)], b


def loglikelihood_rolling(logprobs_of, token_list, prefix_token, max_length):
    """HFLM.loglikelihood_rolling for one string: (sum of log p over every token, windows)."""
    windows = [make_disjoint_window(w) for w in get_rolling_token_windows(token_list, prefix_token, max_length, 1)]
    total = 0.0
    for context_enc, continuation_enc in windows:
        inp = (context_enc + continuation_enc)[-(max_length + 1):][:-1]  # _loglikelihood_tokens, causal
        logprobs = logprobs_of(inp)[len(inp) - len(continuation_enc):]  # [contlen, V]
        total += float(logprobs.gather(1, torch.tensor(continuation_enc)[:, None]).sum())
    return total, len(windows)


# ---- transformers' perplexity guide, transcribed ---------------------------------------------------------------

def strided_loglikelihood(logits_of, ids, max_length, stride):
    """The guide's loop over encodings.input_ids = ids: (sum of log p over every scored token, windows, tokens)."""
    encodings = torch.tensor(ids)[None, :]
    seq_len = encodings.size(1)
    nll_sum, n_tokens, windows = 0.0, 0, 0
    prev_end_loc = 0
    for begin_loc in range(0, seq_len, stride):
        end_loc = min(begin_loc + max_length, seq_len)
        trg_len = end_loc - prev_end_loc
        input_ids = encodings[:, begin_loc:end_loc]
        target_ids = input_ids.clone()
        target_ids[:, :-trg_len] = -100
        logits = logits_of(input_ids[0].tolist())
        # model(input_ids, labels=target_ids).loss is the mean of these (labels shifted left by one)
        nll_sum += float(F.cross_entropy(logits[:-1], target_ids[0, 1:], ignore_index=-100, reduction="sum"))
        n_tokens += int((target_ids[0, 1:] != -100).sum())
        windows += 1
        prev_end_loc = end_loc
        if end_loc == seq_len:
            break
    return -nll_sum, windows, n_tokens


# ---- the model -------------------------------------------------------------------------------------------------

def lora_adapter(c, rng):
    """A PEFT LoRA adapter folder's config and tensors (f32), and the f64 update of each target weight."""
    tensors, deltas = {}, {}
    hd = c["hidden"] // c["heads"]
    for layer in range(c["layers"]):
        for t in LORA_TARGETS:
            out_f = c["hidden"] if t == "q_proj" else c["kv"] * hd
            a = (rng.standard_normal((LORA_R, c["hidden"])) / np.sqrt(c["hidden"])).astype(np.float32)
            b = (rng.standard_normal((out_f, LORA_R)) * 0.3).astype(np.float32)
            module = f"model.layers.{layer}.self_attn.{t}"
            tensors[f"base_model.model.{module}.lora_A.weight"] = a
            tensors[f"base_model.model.{module}.lora_B.weight"] = b
            deltas[f"{module}.weight"] = (LORA_ALPHA / LORA_R) * (b.astype(np.float64) @ a.astype(np.float64))
    config = {"base_model_name_or_path": "llama", "bias": "none", "lora_alpha": LORA_ALPHA, "lora_dropout": 0.0,
              "peft_type": "LORA", "r": LORA_R, "target_modules": LORA_TARGETS, "task_type": "CAUSAL_LM",
              "use_dora": False, "use_rslora": False}
    return config, tensors, deltas


def model_fns(weights, c):
    p = {k: torch.from_numpy(v).double() for k, v in weights.items()}

    def logits_of(ids):
        with torch.no_grad():
            return lr.forward(p, c, torch.tensor([ids], dtype=torch.int32))[0][0]  # [T, V]

    return logits_of, lambda ids: F.log_softmax(logits_of(ids), dim=-1)


def weighted_perplexity(items):
    """lm_eval/api/metrics.py: exp(-weighted_mean(items)), weighted_mean = sum(a) / sum(b)."""
    a, b = zip(*items)
    return math.exp(-sum(a) / sum(b))


def bits_per_byte(items):
    a, b = zip(*items)
    return -(sum(a) / sum(b)) / math.log(2)


def run_case(weights, c, seq_len, stride):
    logits_of, logprobs_of = model_fns(weights, c)
    lls, ns, windows = [], [], 0
    for ids in IDS:
        if stride is None:
            ll, w = loglikelihood_rolling(logprobs_of, ids[1:], ids[0], seq_len)
            n = len(ids) - 1
        else:
            ll, w, n = strided_loglikelihood(logits_of, ids, seq_len, stride)
        assert n == len(ids) - 1, "every token after the prefix is scored once"
        lls.append(ll)
        ns.append(n)
        windows += w
    words = [len(re.split(r"\s+", t)) for t in TEXTS]  # process_results: counted on the text as given
    nbytes = [len(t.encode("utf-8")) for t in TEXTS]
    ll, tokens = sum(lls), sum(ns)
    return {
        "seqLen": seq_len, "stride": stride, "rows": len(TEXTS), "tokens": tokens, "windows": windows,
        "bytes": sum(nbytes), "words": sum(words), "loglikelihood": ll, "loss": -ll / tokens,
        "perplexity": weighted_perplexity(list(zip(lls, ns))),
        "bytePerplexity": weighted_perplexity(list(zip(lls, nbytes))), "bitsPerByte": bits_per_byte(list(zip(lls, nbytes))),
        "wordPerplexity": weighted_perplexity(list(zip(lls, words))),
    }


def main():
    c = lr.CASES[0]
    with open(os.path.join(MODEL, "config.json")) as f:
        cfg = json.load(f)
    assert (cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"]) == (c["vocab"], c["hidden"], c["layers"])
    base = read_safetensors(os.path.join(MODEL, "model.safetensors"))
    config, tensors, deltas = lora_adapter(c, np.random.default_rng(4242))
    merged = {k: (v.astype(np.float64) + deltas[k] if k in deltas else v) for k, v in base.items()}
    os.makedirs(os.path.join(OUT, "lora"), exist_ok=True)
    with open(os.path.join(OUT, "lora", "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    write_safetensors(os.path.join(OUT, "lora", "adapter_model.safetensors"), tensors, {"format": "pt"})
    with open(os.path.join(OUT, "text.jsonl"), "w", encoding="utf-8") as f:
        for t in TEXTS:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    cases = {}
    for name, seq_len, stride, lora in CASES:
        cases[name] = {"adapter": "lora" if lora else None, **run_case(merged if lora else base, c, seq_len, stride)}
        print(f"{name}: {cases[name]}")
    ref = {"source": f"scripts/ref/eval_reference.py torch {torch.__version__}", "model": "../llama/llama",
           "rows": "text.jsonl", "ids": IDS, "cases": cases}
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
