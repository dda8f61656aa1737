#!/usr/bin/env python3
"""The numpy peer of scripts/bench-rsvd.mjs: builds an M x N float32 matrix with a decaying spectrum
(A = U diag(s) Vᵀ + a small Gaussian floor, U and V orthonormal from QR; s_i = exp(-i / 20) over the first
512 directions), writes it (raw little-endian f32) for the Node side, and times numpy's full SVD of it
(np.linalg.svd, LAPACK gesdd through OpenBLAS), whose singular values it writes too (f64).
Prints JSON: {"svd_seconds", "m", "n"}.

Run with Debian's python: /usr/bin/python3 scripts/bench_rsvd_numpy.py OUTDIR [M N]
"""
import json
import os
import sys
import time

import numpy as np


def main():
    out = sys.argv[1]
    m, n = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (4096, 4096)
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(2024)
    k = min(512, m, n)
    u, _ = np.linalg.qr(rng.standard_normal((m, k)))
    v, _ = np.linalg.qr(rng.standard_normal((n, k)))
    s = np.exp(-np.arange(k) / 20.0)
    a = ((u * s) @ v.T + 1e-7 * rng.standard_normal((m, n))).astype(np.float32)
    a.tofile(os.path.join(out, "a.f32"))
    t0 = time.perf_counter()
    sv = np.linalg.svd(a, compute_uv=True, full_matrices=False)[1]
    seconds = time.perf_counter() - t0
    sv.astype(np.float64).tofile(os.path.join(out, "s.f64"))
    print(json.dumps({"svd_seconds": seconds, "m": m, "n": n, "numpy": np.__version__}))


if __name__ == "__main__":
    main()
