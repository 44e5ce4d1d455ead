"""Band selection, pixel validity and the scaling rule that maps raw pixel values to [0, 1].

A rule is stated in **physical units**: 8-bit display values (`dn`, 0..1 after /255) or reflectance
(a fraction). Each raster has an **encoding** that turns its raw values into that quantity
(`physical = raw * scale + offset`), so a bundle trained on uint16 chips (reflectance x 10000) scales a
float 0-1 reflectance scene with the same physical window. The rule travels from `finetune` (recorded in
lut.json) to `export` and `classify`.

Decision table (`encoding_for`), tested row by row:

| pixel type          | valid values (99th percentile) | quantity    | physical value         | training window |
|---------------------|--------------------------------|-------------|------------------------|-----------------|
| uint8               | any                            | dn          | raw / 255              | 0 .. 1          |
| uint16, int16       | any                            | reflectance | (raw + offset) / 10000 | 0 .. 0.3        |
| float               | <= 1.5                         | reflectance | raw                    | 0 .. 0.3        |
| float               | 255 < p99 <= 20000             | reflectance | raw / 10000            | 0 .. 0.3        |
| float (other), int32, uint32, int8 | -               | unknown     | percentile stretch 2-98 | -              |

`offset` is the Sentinel-2 L2A `BOA_ADD_OFFSET` (-1000 from processing baseline 04.00), read from the
raster's metadata where present, else given with `--reflectance-offset`. GDAL scale/offset metadata on
integer bands, where set, define the encoding instead.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace

import numpy as np

from .errors import InputError

#: reflectance 0..0.3 is stretched to 0..1: the range of most land surfaces in visible bands.
REFLECTANCE_WINDOW = 0.3
REFLECTANCE_SCALE = 1e-4  # integer reflectance products store reflectance x 10000
#: float scenes: a 99th percentile up to this is reflectance as a fraction ...
FRACTION_MAX = 1.5
#: ... and between these two it is reflectance x 10000; anything else is of unknown encoding.
SCALED_MIN, SCALED_MAX = 255.0, 20000.0


@dataclass(frozen=True)
class Encoding:
    """How one raster's raw values encode a physical quantity: physical = raw * scale + offset."""

    quantity: str  # "dn" | "reflectance" | "unknown"
    scale: float = 1.0
    offset: float = 0.0
    description: str = ""
    source: str = ""  # what decided it: metadata, an option, or the pixel type (the fallback)


@dataclass(frozen=True)
class BandRule:
    """1-based bands, an encoding (scale, offset) and per-band physical [low, high] mapped to [0, 1]."""

    bands: tuple[int, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    description: str
    quantity: str = "raw"  # "dn" | "reflectance" | "raw" (percentile stretch on raw values)
    scale: float = 1.0
    offset: float = 0.0

    def apply(self, raw: np.ndarray, mean: np.ndarray | None = None, std: np.ndarray | None = None,
              out: np.ndarray | None = None, valid: np.ndarray | None = None) -> np.ndarray:
        """Scale already-selected bands (C, H, W) to float32 in [0, 1], fill invalid pixels, then normalise
        by (mean, std) shaped (C, 1, 1) when given. Works in place in `out` (the tiler's batch buffer).

        Invalid pixels (`valid` False, or not finite in any band) never keep a value: they get the mean of
        the window's valid pixels, band by band. That fill is neutral in the sense that matters: it adds no
        colour or texture the valid pixels do not already show, so a window touching nodata is classified
        by its valid content, where a black or grey fill would pull it towards dark or urban classes."""
        low = np.asarray(self.low, dtype=np.float32)[:, None, None]
        span = np.maximum(np.asarray(self.high, dtype=np.float32)[:, None, None] - low, 1e-12)
        if out is None:
            out = np.empty(raw.shape, np.float32)
        np.multiply(raw, np.float32(self.scale) / span, out=out, casting="unsafe")
        out += (np.float32(self.offset) - low) / span
        invalid = None if valid is None else ~valid
        if raw.dtype.kind == "f":
            finite = np.isfinite(out).all(axis=0)
            if not finite.all():
                invalid = ~finite if invalid is None else invalid | ~finite
        np.clip(out, 0.0, 1.0, out=out)  # NaN stays NaN here; filled below
        if invalid is not None and invalid.any():
            fill_invalid(out, invalid)
        if mean is not None and std is not None:
            out -= mean
            out *= 1.0 / std
        return out

    def with_encoding(self, bands: tuple[int, ...], encoding: Encoding) -> BandRule:
        """The same physical window read through another raster's encoding."""
        return replace(self, bands=tuple(bands), scale=encoding.scale, offset=encoding.offset,
                       description=f"{self.description}; read as {encoding.description}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> BandRule:
        bands = tuple(int(b) for b in data["bands"])
        low = tuple(float(v) for v in data["low"])
        high = tuple(float(v) for v in data["high"])
        description = str(data.get("description", ""))
        if "quantity" not in data:  # lut-bundle/1 stated its rules on raw values
            return _legacy_rule(bands, low, high, description)
        return cls(bands, low, high, description, str(data["quantity"]), float(data.get("scale", 1.0)),
                   float(data.get("offset", 0.0)))


def _legacy_rule(bands, low, high, description: str) -> BandRule:
    n = len(bands)
    if description.startswith("uint8"):
        return default_rule(Encoding("dn", 1 / 255, 0.0, "uint8"), bands)
    if description.startswith("uint16 reflectance"):
        return default_rule(Encoding("reflectance", REFLECTANCE_SCALE, 0.0, "uint16"), bands)
    if description.startswith("float"):
        return BandRule(bands, (0.0,) * n, (1.0,) * n, description, "reflectance")
    return BandRule(bands, low, high, description, "raw")


def fill_invalid(out: np.ndarray, invalid: np.ndarray) -> None:
    """Set invalid pixels of (C, H, W) to each band's mean over the valid ones (0.5 if none is valid)."""
    valid = ~invalid
    count = int(valid.sum())
    for band in out:
        band[invalid] = float(band[valid].mean(dtype=np.float64)) if count else 0.5


def default_rule(encoding: Encoding, bands: tuple[int, ...]) -> BandRule:
    """The training window for a quantity: dn 0..1 (i.e. raw/255), reflectance 0..0.3."""
    n = len(bands)
    if encoding.quantity == "dn":
        return BandRule(bands, (0.0,) * n, (1.0,) * n, "8-bit values / 255", "dn", encoding.scale, encoding.offset)
    if encoding.quantity == "reflectance":
        return BandRule(bands, (0.0,) * n, (REFLECTANCE_WINDOW,) * n,
                        f"reflectance 0..{REFLECTANCE_WINDOW:g} stretched to 0..1 ({encoding.description})",
                        "reflectance", encoding.scale, encoding.offset)
    raise InputError("a percentile stretch needs pixel samples (see percentile_rule)")


def encoding_for(dtype: np.dtype | str, p99: float | None = None, offset_dn: float = 0.0,
                 gdal_scale: float = 1.0, gdal_offset: float = 0.0) -> Encoding:
    """The decision table above. `p99`: 99th percentile of valid values (needed for floats only)."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return Encoding("dn", 1 / 255, 0.0, "uint8: value / 255")
    if dtype.kind in "iu" and (gdal_scale != 1.0 or gdal_offset != 0.0):
        return Encoding("reflectance", gdal_scale, gdal_offset,
                        f"{dtype.name}: value x {gdal_scale:g} + {gdal_offset:g} (GDAL scale/offset)")
    if dtype in (np.uint16, np.int16):
        shift = f" + {offset_dn:g}" if offset_dn else ""
        return Encoding("reflectance", REFLECTANCE_SCALE, offset_dn * REFLECTANCE_SCALE,
                        f"{dtype.name} reflectance: (value{shift}) / 10000")
    if dtype.kind == "f" and p99 is not None and np.isfinite(p99):
        if p99 <= FRACTION_MAX:
            return Encoding("reflectance", 1.0, 0.0, "float reflectance 0..1")
        if SCALED_MIN < p99 <= SCALED_MAX:
            return Encoding("reflectance", REFLECTANCE_SCALE, offset_dn * REFLECTANCE_SCALE,
                            "float reflectance x 10000: value / 10000")
    return Encoding("unknown", description=f"{dtype.name}: unknown encoding")


#: `--scale` names that force an encoding
FORCED_ENCODINGS = {
    "uint8": Encoding("dn", 1 / 255, 0.0, "forced: value / 255"),
    "reflectance": Encoding("reflectance", REFLECTANCE_SCALE, 0.0, "forced: reflectance x 10000"),
    "fraction": Encoding("reflectance", 1.0, 0.0, "forced: reflectance 0..1"),
}


def boa_offset(tags: dict) -> float | None:
    """Sentinel-2 L2A BOA_ADD_OFFSET (or RADIO_ADD_OFFSET) in digital numbers, if the metadata has it."""
    for key, value in tags.items():
        if re.search(r"(BOA|RADIO)_ADD_OFFSET", str(key).upper()):
            try:
                return float(value)
            except (TypeError, ValueError):
                continue
    return None


def invalid_pixels(data: np.ndarray, nodata: float | None = None) -> np.ndarray:
    """(H, W) True where a pixel is not valid from its values alone: NaN or +-inf in any band (declared
    or not), or the nodata value in every band (GDAL's dataset-mask rule for a per-band nodata value)."""
    invalid = np.zeros(data.shape[1:], bool)
    if data.dtype.kind == "f":
        invalid |= ~np.isfinite(data).all(axis=0)
    if nodata is not None and not np.isnan(nodata):
        invalid |= np.all(data == nodata, axis=0)
    return invalid


def parse_bands(text: str | None, expected: int = 3) -> tuple[int, ...] | None:
    """Parse '3,2,1' into (3, 2, 1); the models take exactly `expected` channels."""
    if text is None or text == "":
        return None
    try:
        bands = tuple(int(part) for part in str(text).split(","))
    except ValueError as exc:
        raise InputError(f"`bands` must be comma-separated 1-based integers such as 3,2,1, got {text!r}") from exc
    if any(b < 1 for b in bands):
        raise InputError(f"`bands` are 1-based, got {text!r}")
    if len(bands) != expected:
        raise InputError(f"`bands` must name {expected} bands (the model takes RGB-like input), got {text!r}")
    return bands


def default_bands(count: int, bands: tuple[int, ...] | None, source: str) -> tuple[int, ...]:
    """Bands to read from a raster with `count` bands; checks they exist."""
    if bands is None and count == 1:
        raise InputError(f"{source} has 1 band and the model takes 3: pass `bands` 1,1,1 to read it as grey RGB")
    chosen = bands or (1, 2, 3)
    if count < max(chosen):
        raise InputError(f"{source} has {count} band(s) but band {max(chosen)} was asked for; "
                       f"pass `bands` with 3 of bands 1..{count}")
    return chosen


def rule_for_dtype(dtype: np.dtype | str, bands: tuple[int, ...]) -> BandRule:
    """The training rule for an integer pixel type (uint8 and the 16-bit reflectance types)."""
    encoding = encoding_for(dtype)
    if encoding.quantity == "unknown":
        raise InputError(f"{np.dtype(dtype).name} pixels have no fixed encoding")
    return default_rule(encoding, bands)


def percentile_rule(samples: np.ndarray, bands: tuple[int, ...], lower: float = 2.0, upper: float = 98.0) -> BandRule:
    """A per-band percentile stretch from valid pixel samples shaped (C, N), on raw values."""
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
