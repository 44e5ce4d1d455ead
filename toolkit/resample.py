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
    rows = resize_matrix(h_in, h_out)
    cols = resize_matrix(w_in, w_out)
    out = np.matmul(np.matmul(rows, image.astype(np.float32, copy=False)), cols.T)
    return np.ascontiguousarray(out, dtype=np.float32)
