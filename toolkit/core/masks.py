"""Cloud, shadow and quality masks: a rule over a quality raster's values, read on the scene's grid.

A rule says which values make a pixel invalid. Two kinds cover the quality bands users get:

- class values (`values:0,1,3,8,9,10`), like the Sentinel-2 Scene Classification Layer;
- bit fields (`bits:0,3,4,14-15>=2`), like Landsat QA bands: a single bit `B` excludes a pixel where it is
  set; a field `LO-HI>=N` excludes it where the field's value (bits LO..HI) is N or more.

Named rules (`NAMED_RULES`) spell out the products' documented layouts. The mask is warped onto the scene's
grid with nearest resampling (classes stay classes), pixels the mask does not cover are masked, and
`dilate` grows the masked area by that many pixels (a square), because cloud edges and shadows are what
masks miss.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError

#: the documented layouts, by name
NAMED_RULES = {
    # ESA Sentinel-2 L2A SCL: 0 no data, 1 saturated/defective, 3 cloud shadow, 8/9 cloud medium/high
    # probability, 10 thin cirrus; snow (11) stays valid for glacier work
    "scl": "values:0,1,3,8,9,10",
    # USGS Landsat Collection 2 QA_PIXEL: 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow
    "qa_pixel": "bits:0,1,2,3,4",
    # USGS Landsat-8 pre-collection BQA: 0 fill, 14-15 cloud confidence medium (2) or high (3)
    "bqa": "bits:0,14-15>=2",
}
RULE_HELP = ("a named rule (" + ", ".join(NAMED_RULES) + "), values:V,V,... (class values to exclude) or "
             "bits:B,LO-HI>=N,... (bits set, or bit fields at or above N, exclude)")

_FIELD = re.compile(r"^(\d+)-(\d+)>=(\d+)$")


@dataclass(frozen=True)
class MaskRule:
    """Which quality values exclude a pixel; `text` is the rule as given, `name` its named form if any."""

    text: str
    values: tuple[int, ...] = ()
    bits: tuple[int, ...] = ()
    fields: tuple[tuple[int, int, int], ...] = ()  # (low bit, high bit, threshold)

    def excluded(self, q: np.ndarray) -> np.ndarray:
        """True where a quality value excludes its pixel."""
        q = q.astype(np.int64, copy=False)
        out = np.isin(q, self.values) if self.values else np.zeros(q.shape, bool)
        for b in self.bits:
            out |= (q >> b) & 1 == 1
        for lo, hi, threshold in self.fields:
            out |= ((q >> lo) & ((1 << (hi - lo + 1)) - 1)) >= threshold
        return out


def parse_rule(text: str) -> MaskRule:
    """A rule from its name or its `values:`/`bits:` spelling; InputError naming the forms otherwise."""
    spelled = NAMED_RULES.get(text.strip().lower(), text.strip())
    kind, _, body = spelled.partition(":")
    items = [part.strip() for part in body.split(",") if part.strip()]
    try:
        if kind == "values" and items:
            return MaskRule(text, values=tuple(int(v) for v in items))
        if kind == "bits" and items:
            bits = tuple(int(v) for v in items if v.isdigit())
            fields = tuple(_field(v) for v in items if not v.isdigit())
            if all(0 <= b < 32 for b in bits):
                return MaskRule(text, bits=bits, fields=fields)
    except ValueError as exc:
        raise InputError(f"`mask_rule` {text!r} is not a rule: use {RULE_HELP}") from exc
    raise InputError(f"`mask_rule` {text!r} is not a rule: use {RULE_HELP}")


def _field(item: str) -> tuple[int, int, int]:
    match = _FIELD.match(item)
    if not match:
        raise ValueError(item)
    lo, hi, threshold = (int(g) for g in match.groups())
    if not 0 <= lo <= hi < 32:
        raise ValueError(item)
    return lo, hi, threshold


def rule_for_name(name: str) -> str | None:
    """The named rule a quality file's or asset's name implies (SCL, QA_PIXEL, BQA), else None."""
    upper = Path(name).name.upper()
    for key, pattern in (("qa_pixel", "QA_PIXEL"), ("scl", "SCL"), ("bqa", "BQA")):
        if pattern in upper:
            return key
    return None


@dataclass(frozen=True)
class MaskSpec:
    """A quality raster (a GDAL path), its rule and the dilation in scene pixels."""

    path: str
    rule: MaskRule
    dilate: int = 0

    def to_dict(self) -> dict:
        return {"path": self.path, "rule": self.rule.text, "dilate": self.dilate}


def dilate(mask: np.ndarray, n: int) -> np.ndarray:
    """Grow True areas by `n` pixels in every direction (a (2n+1)² square), by running sums: numpy only."""
    if n <= 0 or not mask.any():
        return mask
    out = mask
    for axis in (0, 1):
        padded = np.pad(out.astype(np.int32), [(n, n) if a == axis else (0, 0) for a in (0, 1)])
        sums = np.cumsum(padded, axis=axis)
        sums = np.insert(sums, 0, 0, axis=axis)
        length = out.shape[axis]
        hi = np.take(sums, np.arange(2 * n + 1, 2 * n + 1 + length), axis=axis)
        lo = np.take(sums, np.arange(0, length), axis=axis)
        out = (hi - lo) > 0
    return out


class MaskReader:
    """Reads a mask on the scene's grid, window by window: True where a pixel is masked. Open one per thread
    (a GDAL dataset is not thread-safe)."""

    def __init__(self, spec: MaskSpec, profile: dict) -> None:
        import rasterio
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        self.spec, self.height, self.width = spec, profile["height"], profile["width"]
        try:
            self.src = rasterio.open(spec.path)
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(f"mask {spec.path} cannot be read by GDAL: check the path, or pass `mask` "
                             "a quality raster") from exc
        try:
            self.vrt = WarpedVRT(self.src, crs=profile["crs"] or self.src.crs, transform=profile["transform"],
                                 width=self.width, height=self.height, resampling=Resampling.nearest,
                                 add_alpha=True)
        except BaseException:
            self.src.close()
            raise

    def read(self, window) -> np.ndarray:
        """(h, w) masked pixels of a scene window, dilated with the window read `dilate` pixels wider."""
        from rasterio.windows import Window

        n = self.spec.dilate
        col0, row0 = max(0, int(window.col_off) - n), max(0, int(window.row_off) - n)
        col1 = min(self.width, int(window.col_off + window.width) + n)
        row1 = min(self.height, int(window.row_off + window.height) + n)
        wide = Window(col0, row0, col1 - col0, row1 - row0)
        quality, alpha = self.vrt.read([1, self.vrt.count], window=wide)
        masked = dilate(self.spec.rule.excluded(quality) | (alpha == 0), n)
        y, x = int(window.row_off) - row0, int(window.col_off) - col0
        return masked[y:y + int(window.height), x:x + int(window.width)]

    def close(self) -> None:
        self.vrt.close()
        self.src.close()


def check_overlap(spec: MaskSpec, profile: dict, scene: str) -> None:
    """The mask must cover some of the scene: a mask of another place would mask everything silently."""
    import rasterio
    from rasterio.warp import transform_bounds
    from rasterio.windows import bounds as window_bounds, Window

    reader = MaskReader(spec, profile)
    try:
        src = reader.src
        if src.crs is None or profile["crs"] is None:
            raise InputError(f"mask {spec.path} or scene {scene} has no CRS, so the mask cannot be placed on "
                             "the scene: give both a CRS")
        scene_box = window_bounds(Window(0, 0, profile["width"], profile["height"]), profile["transform"])
        left, bottom, right, top = transform_bounds(profile["crs"], src.crs, *scene_box)
        b = src.bounds
        if left >= b.right or right <= b.left or bottom >= b.top or top <= b.bottom:
            raise InputError(f"mask {spec.path} does not overlap scene {scene}: pass the quality band of the "
                             "same scene with `mask`")
    except rasterio.errors.CRSError as exc:
        raise InputError(f"mask {spec.path} cannot be placed on scene {scene}: {exc}") from exc
    finally:
        reader.close()
