"""Opening a scene, choosing its bands and the scaling that makes it look like the training patches, and
refusing a scaling that clips most of it."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import FormatError, InputError, warn
from .masks import MaskReader, MaskSpec
from lut.toolkit.core.radiometry import FORCED_ENCODINGS, BandRule, default_bands, default_rule, percentile_rule
from lut.toolkit.core.raster import display_name, raster_encoding, valid_mask

SCALES = ("auto", "bundle", "uint8", "reflectance", "fraction", "percentile")
QUANTITY_NAMES = {"dn": "8-bit display values", "reflectance": "reflectance", "raw": "percentile-stretched values"}


def open_raster(path: Path):
    """Open a local raster file; errors name the file and what is wrong with it."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"scene {path} does not exist")
    if path.is_dir():
        raise InputError(f"scene {path} is a directory, not a raster file")
    return open_path(str(path), str(path))


def open_path(path: str, name: str):
    """Open a GDAL path (a file, /vsicurl/ URL or VRT text) named `name` in messages. A remote file GDAL
    cannot fetch, after its retries (GDAL_HTTP_MAX_RETRY), is an InputError naming it."""
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return rasterio.open(path)
    except RasterioIOError as exc:
        if path.startswith("/vsi"):
            raise InputError(f"{name} cannot be fetched ({exc}): check the URL and the network, or point it at "
                             "a reachable copy with `href_map`") from exc
        raise FormatError(f"{name} is not a raster that GDAL can read (damaged, or another format)") from exc


def read_window(src, bands: tuple[int, ...], window=None, **kwargs) -> np.ndarray:
    """src.read that names the file when GDAL fails (a truncated or corrupt GeoTIFF)."""
    from rasterio.errors import RasterioError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return src.read(list(bands), window=window, **kwargs)
    except RasterioError as exc:
        where = f" at {window}" if window is not None else ""
        raise FormatError(f"{display_name(src)} is damaged: GDAL cannot read its pixels{where} (truncated or corrupt "
                       "file); download or export it again") from exc


def check_nodata(src, nodata: float | None, bands: tuple[int, ...]) -> None:
    """`--nodata` must be a value the scene's pixel type can hold."""
    if nodata is None or np.isnan(nodata):
        return
    dtype = np.dtype(src.dtypes[bands[0] - 1])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if not (info.min <= nodata <= info.max) or nodata != int(nodata):
            raise InputError(f"`nodata` {nodata:g} cannot occur in {display_name(src)}, whose {dtype.name} pixels hold "
                           f"integers {info.min}..{info.max}")


def decimated_sample(src, bands: tuple[int, ...], nodata: float | None, max_side: int = 1024,
                     mask: MaskSpec | None = None) -> np.ndarray:
    """Valid pixel values (C, N) from an overview-sized read: cheap, and enough for percentiles. Pixels
    `mask` removes are left out (a cloud is not the scene's brightness)."""
    from affine import Affine
    from rasterio.enums import Resampling

    factor = max(1, int(np.ceil(max(src.height, src.width) / max_side)))
    shape = (len(bands), max(1, src.height // factor), max(1, src.width // factor))
    data = read_window(src, bands, out_shape=shape, resampling=Resampling.nearest)
    valid = valid_mask(src, data, bands, nodata, out_shape=shape)
    if mask is not None:
        from rasterio.windows import Window

        coarse = {"width": shape[2], "height": shape[1], "crs": src.crs,
                  "transform": src.transform * Affine.scale(src.width / shape[2], src.height / shape[1])}
        reader = MaskReader(replace(mask, dilate=mask.dilate // factor), coarse)
        try:
            valid &= ~reader.read(Window(0, 0, shape[2], shape[1]))
        finally:
            reader.close()
    return data[:, valid]


def clipped_fraction(rule: BandRule, sample: np.ndarray) -> float:
    """The share of valid pixels (C, N) that the rule pushes outside [0, 1] in any band: saturated white
    or black, whatever the scene shows there."""
    if sample.size == 0 or rule.quantity == "raw":
        return 0.0
    low = np.asarray(rule.low)[:, None]
    span = np.maximum(np.asarray(rule.high)[:, None] - low, 1e-12)
    scaled = (sample.astype(np.float64) * rule.scale + rule.offset - low) / span
    return float(((scaled < 0) | (scaled > 1)).any(axis=0).mean())


def cannot_clip(rule: BandRule, dtype) -> bool:
    """uint8 values read as value / 255 over the full 0..1 window, or a percentile stretch: no sample needed."""
    full = all(lo == 0.0 for lo in rule.low) and all(hi == 1.0 for hi in rule.high)
    dn = rule.quantity == "dn" and np.dtype(dtype) == np.uint8 and abs(rule.scale - 1 / 255) < 1e-12 and full
    return rule.quantity == "raw" or (dn and rule.offset == 0.0)


def check_clipping(rule: BandRule, sample: np.ndarray, limit: float, scene: str) -> float:
    """Refuse a scaling that clips more than `limit` of the valid pixels: a white or black scene mapped
    with exit 0 is a wrong map nobody notices."""
    fraction = clipped_fraction(rule, sample)
    if fraction > limit:
        raise InputError(f"{scene}: the scaling ({rule.description}) clips {fraction:.0%} of the valid pixels "
                         f"(more than `max_clipped` {limit:.0%}), so its values are not what the rule assumes: "
                         "pass `scale` percentile, or give the scene's scale and offset (`reflectance_offset`, "
                         "GDAL scale/offset, a STAC item or the Landsat MTL beside its bands)")
    return fraction


def _named(quantity: str) -> str:
    return QUANTITY_NAMES.get(quantity, quantity)


@dataclass(frozen=True)
class Scaling:
    """The chosen rule and what decided it (metadata, an option, or the pixel type as the fallback)."""

    rule: BandRule
    source: str


def choose_rule(src, bands: tuple[int, ...], scale: str, bundle_rule: BandRule | None, nodata: float | None,
                offset_dn: float | None = None, sample: np.ndarray | None = None,
                metadata_source: str | None = None, strict: bool = False,
                sampler: Callable[[], np.ndarray] | None = None) -> Scaling:
    """The scaling that makes this scene look like the training patches: the bundle's physical window
    through the scene's own encoding whenever both are the same quantity. `sample`: valid pixel values
    (C, N) when the caller already has them (the overview is read at most once either way);
    `metadata_source`: who set the GDAL scale/offset of a stacked scene (a STAC item, an MTL); `strict`: a
    model that describes its input (MLM) refuses values of unknown encoding instead of stretching them;
    `sampler`: how to take the sample when one is needed (the caller's, which leaves masked pixels out)."""
    if scale not in SCALES:
        raise InputError(f"`scale` must be one of {', '.join(SCALES)}")
    samples: list[np.ndarray] = [] if sample is None else [sample]

    def valid_sample() -> np.ndarray:
        if not samples:
            samples.append(sampler() if sampler is not None else decimated_sample(src, bands, nodata))
        return samples[0]

    def stretch() -> BandRule:
        return percentile_rule(valid_sample().astype(np.float64), bands)

    if scale == "percentile":
        return Scaling(stretch(), "`scale` percentile: the scene's own 2-98 percentiles")
    encoding = FORCED_ENCODINGS.get(scale)
    if encoding is None:
        floats = np.dtype(src.dtypes[bands[0] - 1]).kind == "f"
        p99 = float(np.percentile(valid_sample(), 99)) if floats and valid_sample().size else None
        encoding = raster_encoding(src, bands, p99, offset_dn, metadata_source)
    else:
        encoding = replace(encoding, source=f"`scale` {scale}")
    if encoding.quantity == "unknown":
        if strict and scale == "auto" and valid_sample().size:  # (an all-invalid scene maps to all nodata)
            raise InputError(f"{display_name(src)} holds {encoding.description}, which no rule of the model's input "
                             "maps: pass `scale` percentile (or uint8, reflectance, fraction) to say how to read it")
        if scale == "bundle":
            raise InputError(f"cannot tell how {display_name(src)} encodes its values ({encoding.description}), so the "
                           "bundle's rule cannot be applied: pass `scale` uint8|reflectance|fraction|percentile")
        warn(f"{display_name(src)}: {encoding.description}; using a 2-98 percentile stretch (pass --scale to choose)")
        return Scaling(stretch(), f"{encoding.description}: a percentile stretch")
    if bundle_rule is not None and bundle_rule.quantity == encoding.quantity:
        return Scaling(bundle_rule.with_encoding(bands, encoding), encoding.source)
    if bundle_rule is not None:
        mismatch = (f"{display_name(src)} holds {_named(encoding.quantity)} but the bundle was trained on "
                    f"{_named(bundle_rule.quantity)}")
        if scale == "bundle":
            raise InputError(f"{mismatch}: its rule cannot be applied; drop `scale` bundle")
        warn(f"{mismatch}; scaling the scene by its own default rule")
    return Scaling(default_rule(encoding, bands), encoding.source)


def scene_bands(src, bands: tuple[int, ...] | None, fallback: tuple[int, ...] | None) -> tuple[int, ...]:
    """`--bands`, else the bundle's, else 1,2,3; says which bands a scene is read as RGB unless obvious."""
    if bands is None and src.count == 1:
        raise InputError(f"{display_name(src)} has 1 band and the model takes 3: pass `bands` 1,1,1 to read it as "
                         "grey RGB")
    chosen = default_bands(src.count, bands or fallback, display_name(src))
    if bands is None and (src.count != 3 or chosen != (1, 2, 3)):
        whose = "the bundle's bands" if fallback else "the default"
        warn(f"{display_name(src)} has {src.count} bands; reading bands {','.join(map(str, chosen))} as red, green, "
             f"blue ({whose}; pass --bands to choose)")
    return chosen
