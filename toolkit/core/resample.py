"""Antialiased bilinear resizing as two small matrix products, in numpy.

Training resizes chips with it and `classify` resizes scene windows with it, so a window covering the
training chips' ground footprint reaches the model exactly as a chip would, without the tiler importing
torch (which would cost it about 1 GB of memory). The weights are those of torch's
`interpolate(mode="bilinear", antialias=True, align_corners=False)`: a triangle filter widened by the
reduction factor when shrinking.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def _blas():
    """numpy's BLAS pool. These GEMMs are small: with several BLAS threads beside torch's or ONNX Runtime's
    own pools on the same cores, one resize took 24 ms instead of 1.4 ms (224 -> 112 px, 2 cores)."""
    from threadpoolctl import ThreadpoolController  # ships with scikit-learn, a lut dependency

    return ThreadpoolController()


@lru_cache(maxsize=64)
def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32 weights: out = M @ in along one axis."""
    scale = n_in / n_out
    support = scale if scale >= 1.0 else 1.0
    inv = 1.0 / scale if scale >= 1.0 else 1.0
    m = np.zeros((n_out, n_in), np.float64)
    for i in range(n_out):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        j = np.arange(lo, hi)
        w = np.clip(1.0 - np.abs((j - center + 0.5) * inv), 0.0, None)
        total = w.sum()
        m[i, lo:hi] = w / total if total > 0 else 0.0
    m.setflags(write=False)
    return m.astype(np.float32)


def resize_chw(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize (C, H, W) or (N, C, H, W) float32 to size x size (or (h, w)) with antialiasing."""
    h_out, w_out = (size, size) if isinstance(size, int) else size
    h_in, w_in = image.shape[-2:]
    if (h_in, w_in) == (h_out, w_out):
        return image
    lead = image.shape[:-2]
    rows = resize_matrix(h_in, h_out)
    cols_t = np.ascontiguousarray(resize_matrix(w_in, w_out).T)
    # two plain 2-D GEMMs on one BLAS thread
    with _blas().limit(limits=1, user_api="blas"):
        flat = np.ascontiguousarray(image, dtype=np.float32).reshape(-1, w_in) @ cols_t  # (..., h_in, w_out)
        stacked = flat.reshape(-1, h_in, w_out).transpose(1, 0, 2).reshape(h_in, -1)  # (h_in, n * w_out)
        out = (rows @ stacked).reshape(h_out, -1, w_out).transpose(1, 0, 2)
    return np.ascontiguousarray(out.reshape(*lead, h_out, w_out))
