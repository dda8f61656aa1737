"""Shared by the reference scripts: a minimal safetensors writer and reader and transformers' rotary inv_freq.
Importing this module needs only numpy; torch is imported by the functions that use it."""
import json
import math
import struct

import numpy as np

# numpy dtype -> safetensors dtype; uint16 arrays carry bf16 bits (what bnb_reference writes).
_DTYPES = {np.dtype(np.float64): "F64", np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
           np.dtype(np.int32): "I32", np.dtype(np.int8): "I8", np.dtype(np.uint8): "U8", np.dtype(np.uint16): "BF16"}


def write_safetensors(path, tensors, metadata):
    """u64 LE header length, compact JSON header padded to 8 bytes, raw little-endian data in the given order.
    `tensors`: a dict or a list of (name, array) with numpy arrays or torch tensors. Returns the file size."""
    header, chunks, off = {"__metadata__": {k: str(v) for k, v in metadata.items()}}, [], 0
    for key, arr in (tensors.items() if isinstance(tensors, dict) else tensors):
        if hasattr(arr, "detach"):
            arr = arr.detach().contiguous().numpy()
        raw = np.ascontiguousarray(arr).tobytes()
        header[key] = {"dtype": _DTYPES[arr.dtype], "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))
    return 8 + len(h) + off


def read_safetensors(path):
    """The tensors of a safetensors file as numpy arrays (the dtypes write_safetensors writes, BF16 excepted)."""
    names = {v: k for k, v in _DTYPES.items() if v != "BF16"}
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[key] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=names[info["dtype"]]).reshape(info["shape"]).copy()
    return out


def default_inv_freq(base, dim, dtype=None):
    """transformers _compute_default_rope_parameters: 1 / base ** (arange(0, dim, 2) / dim), in f32 by default."""
    import torch
    dtype = dtype or torch.float32
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(dtype=dtype) / dim))


def llama3_inv_freq(inv_freq, factor, low_freq_factor, high_freq_factor, old_context_len):
    """transformers _compute_llama3_parameters, applied to the default inv_freq (tensor ops, Python scalars)."""
    import torch
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    # wavelen < high_freq_wavelen: kept; wavelen > low_freq_wavelen: divided by factor; between: smoothed
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
