"""Band selection and the linear scaling rule that maps raw pixel values to [0, 1].

The same rule object travels from `finetune` (recorded in lut.json) to `export` and `classify`,
so a scene is scaled exactly like the patches the model was trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import LutError

#: uint16 imagery is assumed to be reflectance x 10000; 0..0.3 reflectance is stretched to 0..1.
REFLECTANCE_HIGH = 3000.0


@dataclass(frozen=True)
class BandRule:
    """1-based band indices plus per-band [low, high] values mapped linearly to [0, 1]."""

    bands: tuple[int, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    description: str

    def apply(self, raw: np.ndarray, mean: np.ndarray | None = None, std: np.ndarray | None = None,
              out: np.ndarray | None = None) -> np.ndarray:
        """Scale already-selected bands, shape (C, H, W), to float32 in [0, 1]; then normalise by
        (mean, std), shaped (C, 1, 1), when given. Works in place in `out` (the tiler's batch buffer)."""
        low = np.asarray(self.low, dtype=np.float32)[:, None, None]
        span = np.maximum(np.asarray(self.high, dtype=np.float32)[:, None, None] - low, 1e-6)
        if out is None:
            out = np.empty(raw.shape, np.float32)
        np.subtract(raw, low, out=out, casting="unsafe")
        out *= 1.0 / span
        np.clip(out, 0.0, 1.0, out=out)
        if mean is not None and std is not None:
            out -= mean
            out *= 1.0 / std
        return out

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> BandRule:
        return cls(
            bands=tuple(int(b) for b in data["bands"]),
            low=tuple(float(v) for v in data["low"]),
            high=tuple(float(v) for v in data["high"]),
            description=str(data.get("description", "")),
        )


def parse_bands(text: str | None, expected: int = 3) -> tuple[int, ...] | None:
    """Parse '3,2,1' into (3, 2, 1); the models take exactly `expected` channels."""
    if text is None or text == "":
        return None
    try:
        bands = tuple(int(part) for part in str(text).split(","))
    except ValueError:
        raise LutError(f"--bands must be comma-separated 1-based integers such as 3,2,1, got {text!r}") from None
    if any(b < 1 for b in bands):
        raise LutError(f"--bands are 1-based, got {text!r}")
    if len(bands) != expected:
        raise LutError(f"--bands must name {expected} bands (the model takes RGB-like input), got {text!r}")
    return bands


def default_bands(count: int, bands: tuple[int, ...] | None, source: str) -> tuple[int, ...]:
    """Bands to read from a raster with `count` bands; checks they exist."""
    chosen = bands or (1, 2, 3)
    if count < max(chosen):
        if bands is None and count == 1:
            return (1, 1, 1)
        raise LutError(f"{source} has {count} band(s) but band {max(chosen)} was asked for")
    return chosen


def rule_for_dtype(dtype: np.dtype | str, bands: tuple[int, ...]) -> BandRule:
    """The recorded default rule for a pixel type: uint8 /255, uint16 reflectance /10000 stretched to 0..0.3."""
    dtype = np.dtype(dtype)
    n = len(bands)
    if dtype == np.uint8:
        return BandRule(bands, (0.0,) * n, (255.0,) * n, "uint8: value / 255")
    if dtype == np.uint16:
        return BandRule(bands, (0.0,) * n, (REFLECTANCE_HIGH,) * n, "uint16 reflectance: value / 10000, stretched 0..0.3")
    if np.issubdtype(dtype, np.floating):
        return BandRule(bands, (0.0,) * n, (1.0,) * n, "float: clipped to 0..1")
    info = np.iinfo(dtype)
    return BandRule(bands, (float(max(info.min, 0)),) * n, (float(info.max),) * n, f"{dtype.name}: full range")


def percentile_rule(samples: np.ndarray, bands: tuple[int, ...], lower: float = 2.0, upper: float = 98.0) -> BandRule:
    """A per-band percentile stretch from valid pixel samples shaped (C, N)."""
    if samples.size == 0 or samples.shape[1] == 0:
        n = len(bands)
        return BandRule(bands, (0.0,) * n, (1.0,) * n, "percentile stretch (no valid pixels)")
    lo = np.percentile(samples, lower, axis=1)
    hi = np.percentile(samples, upper, axis=1)
    hi = np.where(hi <= lo, lo + 1.0, hi)
    return BandRule(
        bands,
        tuple(float(v) for v in lo),
        tuple(float(v) for v in hi),
        f"percentile stretch {lower:g}-{upper:g}",
    )
