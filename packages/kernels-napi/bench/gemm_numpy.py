"""numpy / OpenBLAS side of bench/gemm-vs-openblas.mjs (not a test).

Started once by the JS benchmark. Prints one JSON line describing the BLAS it runs (numpy
version, OpenBLAS core type and thread count), then answers requests, one JSON line each:
  {"shape": [m, n, k, ta, tb]}            set up A, B, C (float32) for that product
  {"reps": r}                             time r calls of C = op(A) @ op(B); reply seconds per call
op(A) = A.T when ta (A stored [k, m]), op(B) = B.T when tb (B stored [n, k]): numpy passes the
transposed views to sgemm with the transpose flags (no copies), as the native gemm reads them.
"""
import ctypes
import glob
import json
import os
import sys
import time

import numpy as np


def openblas_info():
    """Core type and threads of numpy's bundled OpenBLAS (threadpoolctl is not installed here)."""
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs", "*openblas*.so*"))
    info = {"numpy": np.__version__, "lib": os.path.basename(libs[0]) if libs else None}
    if libs:
        lib = ctypes.CDLL(libs[0])
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                name = f"{prefix}_get_corename{suffix}"
                if hasattr(lib, name):
                    f = getattr(lib, name)
                    f.restype = ctypes.c_char_p
                    info["corename"] = f().decode()
                    threads = getattr(lib, f"{prefix}_get_num_threads{suffix}")
                    info["threads"] = threads()
                    return info
    return info


def main():
    print(json.dumps(openblas_info()), flush=True)
    rng = np.random.default_rng(0)
    a = b = c = None
    for line in sys.stdin:
        req = json.loads(line)
        if "shape" in req:
            m, n, k, ta, tb = req["shape"]
            a_s = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
            b_s = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
            a, b = (a_s.T if ta else a_s), (b_s.T if tb else b_s)
            c = np.empty((m, n), dtype=np.float32)
            np.matmul(a, b, out=c)
            print(json.dumps({"ok": True}), flush=True)
        else:
            reps = req["reps"]
            t = time.perf_counter()
            for _ in range(reps):
                np.matmul(a, b, out=c)
            print(json.dumps({"s": (time.perf_counter() - t) / reps}), flush=True)


if __name__ == "__main__":
    main()
