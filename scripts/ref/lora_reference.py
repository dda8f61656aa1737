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
few matrices (packages/core-tensor/test/linalg-*.test.ts read it from here).

Run (from the repo root; Debian's python has torch):
    /usr/bin/python3 scripts/ref/lora_reference.py
Writes packages/plugin-lora/test/fixtures/. Deterministic: fixed seeds.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
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
    os.makedirs(os.path.join(OUT, "linalg"), exist_ok=True)
    meta = {"source": f"scripts/ref/lora_reference.py numpy {np.__version__} torch {torch.__version__}"}
    return write_safetensors(os.path.join(OUT, "linalg", "reference.safetensors"), out, meta)


def main():
    total = linalg_fixture()
    print(f"wrote {total} bytes of safetensors to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
