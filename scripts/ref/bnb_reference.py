#!/usr/bin/env python3
"""Independent reference for peft's bitsandbytes formats; writes the golden fixtures.

What it is: a numpy re-implementation of bitsandbytes' 4-bit (NF4/FP4, blockwise, double quant),
blockwise 8-bit (dynamic map) and LLM.int8 row quantization, following the exact f32 numerics that
`packages/core-tensor/src/backend/types.ts` specifies (the thresholds of bitsandbytes' CUDA kernels,
csrc/kernels.cu dQuantizeNF4 / dQuantizeFP4), and the serialization of bitsandbytes'
`Linear4bit._save_to_state_dict` / `QuantState.as_dict(packed=True)` (bitsandbytes/functional.py,
nn/modules.py) and `Linear8bitLt._save_to_state_dict`. It shares no code with the TypeScript.

What it is not: bitsandbytes itself. bitsandbytes is not installed here (it wants CUDA); where its code
paths differ from the spec we follow (Python default backend: argmin + clamp instead of thresholds;
torch's f32 pairwise mean for the double-quant offset; Int8Params rounding weights to fp16 first),
this script follows the spec, and says so.

Run (from the repo root):
    /usr/bin/python3 scripts/ref/bnb_reference.py          # torch available: the dynamic map comes from torch
    python3 scripts/ref/bnb_reference.py                   # numpy only: uses the torch-faithful emulation,
                                                           # checked against the committed dynamic_map.json
Writes packages/core-tensor/test/fixtures/bnb/{*.safetensors, dynamic_map.json}. Deterministic (fixed seeds).
"""
import json
import os
import sys
from decimal import Decimal

import numpy as np

from ref_common import write_safetensors

try:
    import torch
except ImportError:  # numpy-only mode
    torch = None

F32 = np.float32
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packages", "core-tensor", "test",
                   "fixtures", "bnb")

# ---- tables (bitsandbytes/functional.py get_4bit_type; csrc/kernels.cu) --------------------------------

NF4 = np.array([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                0.7229568362236023, 1.0], dtype=F32)


def f32_literal(text):
    """A C float literal (`0.5016634166240692f`): decimal rounded straight to the nearest f32, as
    nvcc/gcc/rustc do. np.float32(float(text)) rounds twice (decimal -> f64 -> f32) and is off by an
    ulp for 4 of the NF4 thresholds, whose f64 value is an exact f32 midpoint."""
    d = Decimal(text)
    f = np.float32(float(text))
    near = [np.nextafter(f, F32(-np.inf)), f, np.nextafter(f, F32(np.inf))]
    dist = sorted((abs(Decimal(float(c)) - d), c) for c in near)
    assert dist[0][0] != dist[1][0], text  # no decimal tie among these literals
    return dist[0][1]


NF4_THRESHOLDS = np.array([f32_literal(t) for t in (
    "-0.8480964004993439 -0.6106329262256622 -0.4599952697753906 -0.33967943489551544 -0.23460740596055984 "
    "-0.13791173323988914 -0.045525018125772476 0.03979014977812767 0.1202552504837513 0.2035212516784668 "
    "0.2920137718319893 0.3893125355243683 0.5016634166240692 0.6427869200706482 0.8614784181118011").split()],
    dtype=F32)
FP4_THRESHOLDS = np.array([f32_literal(t) for t in
                           "0.00260417 0.0859375 0.20833333 0.29166667 0.4166667 0.583333 0.8333333".split()],
                          dtype=F32)
FP4_BITS = [0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011]
# Dequantization table: the CUDA kernel (dDequantizeFP4Tree) multiplies by a sign, so code 8 gives -0.
FP4 = np.array([0, 0.0625, 8, 12, 4, 6, 2, 3, -0.0, -0.0625, -8, -12, -4, -6, -2, -3], dtype=F32) / F32(12)


def quant_map(qtype):
    """The `quant_map` tensor bitsandbytes serializes: get_4bit_type(). Its FP4 list has the int `-0`,
    i.e. +0.0 at index 8 (unlike the dequantization table above)."""
    raw = NF4.tolist() if qtype == "nf4" else [0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0, -0, -0.0625, -8.0,
                                               -12.0, -4.0, -6.0, -2.0, -3.0]
    data = np.array(raw, dtype=F32)
    return data / np.abs(data).max()


# ---- create_dynamic_map (bitsandbytes/functional.py), copied faithfully ---------------------------------

def create_dynamic_map_torch(signed=True, max_exponent_bits=7, total_bits=8):
    data = []
    non_sign_bits = total_bits - (1 if signed else 1)
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    for i in range(max_exponent_bits):
        fraction_items = int(2 ** (i + non_sign_bits - max_exponent_bits) + 1 if signed
                             else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1)
        boundaries = torch.linspace(0.1, 1, fraction_items)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    if additional_items > 0:
        boundaries = torch.linspace(0.1, 1, additional_items + 1)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    data.append(0)
    data.append(1.0)
    assert len(data) == 2 ** total_bits
    data.sort()
    return torch.Tensor(data).numpy().astype(F32)


def fma32(a, b, c):
    """f32(a * b + c) rounded once: the products here are exact in f64, so this is a true f32 FMA."""
    return F32(float(a) * float(b) + float(c))


def torch_linspace_f32(start, end, steps, vec=8):
    """torch.linspace in f32 as ATen's CPU kernel computes it (aten/src/ATen/native/cpu/
    RangeFactoriesKernel.cpp, AVX2 build): step in f32; element i is `start + step * i` below the halfway
    point and `end - step * (steps - i - 1)` above it, which GCC contracts to an FMA; the vectorized loop
    takes two 8-lane vectors at a time, each `arange(base, step)` = base + f32(k * step), and the scalar
    formula finishes the tail. Verified bit-exact against torch 1.13 (CPU capability AVX2) for every
    size create_dynamic_map uses; another vector width or no FMA can move single entries by one ulp."""
    start, end = F32(start), F32(end)
    step = (end - start) / F32(steps - 1)
    half = steps // 2

    def scalar(i):
        return fma32(step, i, start) if i < half else fma32(-step, steps - i - 1, end)

    out, i = [], 0
    while i <= steps - 2 * vec:
        for _ in range(2):
            base = scalar(i)
            out += [base + F32(F32(k) * step) for k in range(vec)]
            i += vec
    out += [scalar(j) for j in range(i, steps)]
    return np.array(out, dtype=F32)


def create_dynamic_map_numpy():
    """The same map for signed=True, 7 exponent bits, 8 bits, emulating torch's f32 arithmetic."""
    data = []
    for i in range(7):
        b = torch_linspace_f32(0.1, 1, 2 ** i + 1)
        means = (b[:-1] + b[1:]) / F32(2.0)
        scale = F32(10.0 ** (-6 + i))  # torch casts the Python scalar to the tensor's f32
        data += (scale * means).astype(F32).tolist() + (F32(-scale) * means).astype(F32).tolist()
    data += [0.0, 1.0]
    return np.array(sorted(data), dtype=F32)


# ---- quantization (the spec in src/backend/types.ts; all f32) -----------------------------------------

def blocks_of(n, bs):
    return [(b, min(n, b + bs)) for b in range(0, n, bs)]


def scaled_blocks(x, bs):
    """Yields (block index, start, scaled values s = x * f32(1/absmax)) and fills absmax."""
    absmax = np.zeros((len(x) + bs - 1) // bs, dtype=F32)
    out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for b, (lo, hi) in enumerate(blocks_of(len(x), bs)):
            absmax[b] = np.abs(x[lo:hi]).max()
            inv = F32(1.0) / absmax[b]          # inf for an all-zero block, so s = 0 * inf = NaN
            out.append((lo, hi, (x[lo:hi] * inv).astype(F32)))
    return absmax, out


def code_nf4(s):
    return (s[:, None] > NF4_THRESHOLDS[None, :]).sum(1)  # NaN compares false: code 0


def code_fp4(s):
    sign = np.where(s < 0, 8, 0)
    c = (np.abs(s)[:, None] > FP4_THRESHOLDS[None, :]).sum(1)
    return sign + np.array(FP4_BITS)[c]


def quantize_4bit(x, bs, qtype):
    absmax, parts = scaled_blocks(x, bs)
    codes = np.concatenate([(code_nf4 if qtype == "nf4" else code_fp4)(s) for _, _, s in parts])
    if len(codes) % 2:
        codes = np.append(codes, 0)
    packed = ((codes[0::2] << 4) | codes[1::2]).astype(np.uint8)
    return codes[: len(x)], packed, absmax


def dequantize_4bit(codes, absmax, bs, qtype):
    table = NF4 if qtype == "nf4" else FP4
    return np.array([table[c] * absmax[i // bs] for i, c in enumerate(codes)], dtype=F32)


def quantize_blockwise(x, code, bs):
    mid = ((code[:-1] + code[1:]) * F32(0.5)).astype(F32)
    absmax, parts = scaled_blocks(x, bs)
    q = np.concatenate([(s[:, None] > mid[None, :]).sum(1) for _, _, s in parts]).astype(np.uint8)
    return q, absmax


def double_quant(absmax, dyn):
    """offset = mean(absmax) accumulated in f64 left to right, rounded to f32 (bitsandbytes: torch's f32
    absmax.mean(), which can differ in the last bit); then blockwise-8 of absmax - offset, blocksize 256."""
    acc = 0.0
    for v in absmax:
        acc += float(v)
    offset = F32(acc / len(absmax))
    q, nested = quantize_blockwise((absmax - offset).astype(F32), dyn, 256)
    recovered = np.array([F32(dyn[c] * nested[i // 256]) + offset for i, c in enumerate(q)], dtype=F32)
    return offset, q, nested, recovered


def quantize_int8_rows(w):
    """LLM.int8 row-wise: scb = max|row|, cb = round_half_even(f32(w * f32(127 / scb))); scb 0 -> 0.
    (bitsandbytes' Int8Params first casts the weight to fp16; we quantize the f32 values as given.)"""
    scb = np.abs(w).max(axis=1).astype(F32)
    cb = np.zeros(w.shape, dtype=np.int8)
    for r in range(w.shape[0]):
        if scb[r] != 0:
            f = F32(127.0) / scb[r]
            cb[r] = np.rint((w[r] * f).astype(F32)).astype(np.int8)  # np.rint: half to even
    deq = ((cb.astype(F32) * scb[:, None]).astype(F32) * f32_literal("7.874015718698502e-3")).astype(F32)
    return cb, scb, deq


# ---- serialization ------------------------------------------------------------------------------------

def quant_state_bytes(qtype, bs, dtype, shape, offset=None):
    """QuantState.as_dict(packed=True) -> pack_dict_to_tensor: json.dumps of the non-tensor items."""
    d = {"quant_type": qtype, "blocksize": bs, "dtype": dtype, "shape": tuple(shape)}
    if offset is not None:
        d.update({"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": float(offset)})
    return np.frombuffer(json.dumps(d).encode("utf-8"), dtype=np.uint8)


# ---- inputs -------------------------------------------------------------------------------------------

def normal_with_outliers(rng, n, as_f16):
    x = rng.standard_normal(n) * 0.02
    x[::53] *= 25.0                       # outliers
    x = x.astype(np.float16 if as_f16 else F32)
    return x.astype(F32), x


def special_block(qtype):
    """absmax 1 (so s == x exactly): every threshold, its f32 neighbours, -0, tiny negatives."""
    t = NF4_THRESHOLDS if qtype == "nf4" else np.concatenate([FP4_THRESHOLDS, -FP4_THRESHOLDS])
    vals = [1.0, -0.0, -1e-30, -1e-7, 1e-7, -0.5, 0.5]
    for v in t:
        vals += [v, np.nextafter(v, F32(2)), np.nextafter(v, F32(-2))]
    return np.array(vals, dtype=F32)


def module_4bit(prefix, x, shape, qtype, bs, dq, dtype, dyn):
    codes, packed, absmax = quantize_4bit(x, bs, qtype)
    t = [(f"{prefix}.weight", packed.reshape(-1, 1))]
    meta = {}
    if dq:
        offset, q, nested, recovered = double_quant(absmax, dyn)
        t += [(f"{prefix}.weight.absmax", q), (f"{prefix}.weight.quant_map", quant_map(qtype)),
              (f"{prefix}.weight.nested_absmax", nested), (f"{prefix}.weight.nested_quant_map", dyn.copy())]
        meta["offset_bits"] = "%08x" % np.array([offset], dtype=F32).view(np.uint32)[0]
        used = recovered
    else:
        offset, recovered = None, None
        t += [(f"{prefix}.weight.absmax", absmax), (f"{prefix}.weight.quant_map", quant_map(qtype))]
        used = absmax
    t.append((f"{prefix}.weight.quant_state.bitsandbytes__{qtype}",
              quant_state_bytes(qtype, bs, dtype, shape, offset)))
    ref = [("ref.absmax", absmax)]
    if recovered is not None:
        ref.append(("ref.absmax_dq", recovered))
    if len(x) <= 4096:
        ref.append(("ref.dequant", dequantize_4bit(codes, used, bs, qtype)))
    return t + ref, meta


CASES_4BIT = [
    # name, shape, qtype, blocksize, double quant, dtype, f16 input, seed
    ("nf4_bs64_odd", [33, 63], "nf4", 64, False, "bfloat16", False, 1),
    ("fp4_bs64_odd", [33, 63], "fp4", 64, False, "float16", False, 2),
    ("nf4_bs256", [5, 300], "nf4", 256, False, "float16", False, 3),
    ("nf4_bs32_dq", [8300], "nf4", 32, True, "float32", True, 4),
    ("fp4_bs32_dq", [8300], "fp4", 32, True, "bfloat16", True, 5),
    ("nf4_bs64_dq", [97, 199], "nf4", 64, True, "bfloat16", True, 6),
    ("fp4_bs4096_dq", [3, 3001], "fp4", 4096, True, "float16", True, 7),
]
PREFIX = "model.layers.0.self_attn.q_proj"


def write_4bit_case(case, dyn):
    name, shape, qtype, bs, dq, dtype, f16, seed = case
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    x, stored = normal_with_outliers(rng, n, f16)
    zb = min(2, (n - 1) // bs)            # an all-zero block
    x[zb * bs: (zb + 1) * bs] = 0
    stored[zb * bs: (zb + 1) * bs] = 0
    if not f16:                           # the threshold block (needs exact f32 input)
        sp = special_block(qtype)
        lo = (zb + 1) * bs
        x[lo: lo + len(sp)] = sp
        x[lo + len(sp): lo + bs] = 0
        stored = x
    tensors, meta = module_4bit(PREFIX, x, shape, qtype, bs, dq, dtype, dyn)
    meta.update({"case": name, "prefix": PREFIX, "quant_type": qtype, "blocksize": str(bs),
                 "double_quant": str(dq).lower(), "dtype": dtype, "shape": json.dumps(shape)})
    return write_safetensors(os.path.join(OUT, name + ".safetensors"),
                             [("ref.input", stored.reshape(shape))] + tensors, meta)


def write_int8_case():
    rng = np.random.default_rng(11)
    w = (rng.standard_normal((17, 33)) * 0.05).astype(F32)
    w[3] = 0                                               # a zero row
    w[5, :8] = [127.0, 2.5, -2.5, 3.5, 0.5, -0.5, 1.5, -126.5]  # scb 127: f = 1, exact .5 ties
    w[5, 8:] = 0
    w[7, 0] = -40.0                                        # negative absmax
    cb, scb, deq = quantize_int8_rows(w)
    p = "model.layers.0.mlp.down_proj"
    tensors = [("ref.input", w), (f"{p}.weight", cb), (f"{p}.SCB", scb),
               (f"{p}.weight_format", np.array(0, dtype=np.uint8)), ("ref.dequant", deq)]
    return write_safetensors(os.path.join(OUT, "int8_rows.safetensors"), tensors,
                             {"case": "int8_rows", "prefix": p, "shape": json.dumps(list(w.shape))})


def bf16_bits_numpy(x):
    """f32 -> bf16 round-to-nearest-even on the high half (NaNs are excluded by the caller)."""
    b = x.view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def write_conversions():
    """f32 -> f16 by numpy (its own RNE, subnormals, overflow) and f32 -> bf16 by torch, on random bit
    patterns, f16/bf16 ties and the f16 subnormal range. NaNs are left out: numpy keeps signalling
    NaNs signalling and torch drops a NaN's sign; the spec's NaN rules are tested by hand in TS."""
    rng = np.random.default_rng(21)
    bits = rng.integers(0, 2 ** 32, 1200, dtype=np.uint64).astype(np.uint32)
    h = rng.integers(0, 0x7BFF, 600).astype(np.uint16)
    lo, hi = h.view(np.float16).astype(np.float64), (h + 1).view(np.float16).astype(np.float64)
    ties16 = ((lo + hi) / 2).astype(F32) * np.where(rng.random(600) < 0.5, 1, -1).astype(F32)
    ties_bf = ((rng.integers(0, 2 ** 16, 400, dtype=np.uint32) << 16) | 0x8000).astype(np.uint32).view(F32)
    sub = (rng.random(400) * 2.0 ** -14).astype(F32)
    x = np.concatenate([bits.view(F32), ties16, ties_bf, sub, np.array([65504, 65519.99, 65520, 7e4, 1e-8], F32)])
    x = x[~np.isnan(x)]
    with np.errstate(over="ignore"):
        f16 = x.astype(np.float16)
    bf = bf16_bits_numpy(x)
    if torch is not None:
        tb = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        if not np.array_equal(tb, bf):
            sys.exit("numpy bf16 rounding disagrees with torch")
    return write_safetensors(os.path.join(OUT, "conversions.safetensors"),
                             [("input", x), ("f16", f16), ("bf16", bf)], {"case": "conversions"})


def dynamic_map():
    emulated = create_dynamic_map_numpy()
    path = os.path.join(OUT, "dynamic_map.json")
    if torch is not None:
        dyn = create_dynamic_map_torch()
        if not np.array_equal(dyn.view(np.uint32), emulated.view(np.uint32)):
            sys.exit("numpy emulation of create_dynamic_map disagrees with torch")
    else:
        print("torch not importable: using the numpy emulation, checked against dynamic_map.json")
        dyn = emulated
        with open(path) as f:
            committed = np.array([int(h, 16) for h in json.load(f)["f32_bits"]], dtype=np.uint32)
        if not np.array_equal(committed, dyn.view(np.uint32)):
            sys.exit("emulated dynamic map differs from the committed torch values")
        return dyn  # keep the committed file (and its provenance line) as torch wrote it
    assert len(dyn) == 256 and np.all(np.diff(dyn) > 0) and dyn[-1] == 1.0
    doc = {"source": "bitsandbytes.functional.create_dynamic_map(signed=True, max_exponent_bits=7, "
                     "total_bits=8), computed with torch " + (torch.__version__ if torch else "(emulated)"),
           "values": [float(v) for v in dyn],
           "f32_bits": ["%08x" % b for b in dyn.view(np.uint32)]}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    return dyn


def main():
    os.makedirs(OUT, exist_ok=True)
    dyn = dynamic_map()
    total = sum(write_4bit_case(c, dyn) for c in CASES_4BIT) + write_int8_case() + write_conversions()
    print(f"wrote {len(CASES_4BIT) + 2} safetensors fixtures ({total} bytes) and dynamic_map.json to {OUT}")


if __name__ == "__main__":
    main()
