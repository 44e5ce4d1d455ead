"""What lut reads from a raster besides its pixels, shared by training chips, pretraining windows and scenes:
which pixels are valid, how the values encode a physical quantity, and the ground sampling distance."""

from __future__ import annotations

import contextlib
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from .errors import InputError
from .radiometry import Encoding, boa_offset, encoding_for, invalid_pixels

#: GDAL's block cache defaults to 5% of RAM and fills up on big rasters; strips need far less.
GDAL_CACHE_MB = 64

EARTH_METRES_PER_DEGREE = 111_320.0


#: the name a stacked scene's in-memory VRT carries for messages (its GDAL name is the whole VRT text)
NAME_TAG = "LUT_NAME"


def display_name(src) -> str:
    """A dataset's name for messages: the scene argument of a stacked scene, else the file's name."""
    return src.tags().get(NAME_TAG) or str(src.name)


def _masked_bands(src, bands: tuple[int, ...]) -> bool:
    """Whether an internal mask or alpha band marks pixels invalid (nodata values are tested on values)."""
    return any(flag.name in ("per_dataset", "alpha") for band in bands for flag in src.mask_flag_enums[band - 1])


def valid_mask(src, data: np.ndarray, bands: tuple[int, ...], nodata: float | None = None, window=None,
               out_shape=None) -> np.ndarray:
    """(H, W) True where a pixel may reach a model: not NaN/inf in any band (declared or not), not the
    nodata value (`nodata`, else the file's) in every band, and not masked by an internal mask or alpha
    band. Values are tested on `data`, the pixels already read; only masks need GDAL's read_masks."""
    invalid = invalid_pixels(data, src.nodata if nodata is None else nodata)
    if _masked_bands(src, bands):
        from rasterio.enums import Resampling

        kwargs = {"window": window} if window is not None else {}
        if out_shape is not None:
            kwargs.update(out_shape=out_shape, resampling=Resampling.nearest)
        invalid |= np.any(src.read_masks(list(bands), **kwargs) == 0, axis=0)
    return ~invalid


def raster_encoding(src, bands: tuple[int, ...], p99: float | None = None, offset_dn: float | None = None,
                    metadata_source: str | None = None) -> Encoding:
    """The radiometry decision table applied to this raster and its metadata, in this order: GDAL band
    scale/offset (which a STAC item or MTL set on a stacked scene: `metadata_source` names it), `offset_dn`
    (the `reflectance_offset` option), the BOA_ADD_OFFSET tags of the dataset and its bands, and last the
    pixel type. `p99`: the 99th percentile of valid values, needed for float rasters only. The encoding's
    `source` says which decided."""
    given = offset_dn is not None
    if offset_dn is None:
        tags = dict(src.tags())
        for b in bands:
            tags.update(src.tags(b))
        offset_dn = boa_offset(tags)
    pairs = {(float(src.scales[b - 1] or 1.0), float(src.offsets[b - 1] or 0.0)) for b in bands}
    if len(pairs) > 1:
        raise InputError(f"the bands of {display_name(src)} have different GDAL scales or offsets; lut applies one "
                         "to all")
    scale, offset = pairs.pop()
    dtype = src.dtypes[bands[0] - 1]
    encoding = encoding_for(dtype, p99, offset_dn or 0.0, scale, offset)
    if np.dtype(dtype).kind in "iu" and np.dtype(dtype) != np.uint8 and (scale, offset) != (1.0, 0.0):
        source = metadata_source or "GDAL band scale/offset"
    elif given:
        source = "`reflectance_offset`"
    elif offset_dn is not None and encoding.quantity == "reflectance":
        source = "BOA_ADD_OFFSET metadata"
    else:
        source = f"pixel type {np.dtype(dtype).name} (the fallback: no scale or offset in the metadata)"
    return replace(encoding, source=source)


def raster_gsd(src) -> float | None:
    """Metres per pixel: from a projected CRS in metres or feet, approximated at the centre for geographic
    CRSs; None without a CRS."""
    crs = src.crs
    if crs is None:
        return None
    a, e = abs(src.transform.a), abs(src.transform.e)
    if crs.is_projected:
        units = (crs.linear_units or "").lower()
        factor = 1.0 if units in ("metre", "meter", "m") else (0.3048 if "foot" in units or "feet" in units else None)
        return None if factor is None else math.sqrt(a * e) * factor
    if crs.is_geographic:
        lat = src.transform.f + src.transform.e * src.height / 2
        return math.sqrt(a * EARTH_METRES_PER_DEGREE * math.cos(math.radians(lat)) * e * EARTH_METRES_PER_DEGREE)
    return None


def check_gsd(value: float | None, flag: str = "--gsd") -> float | None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise InputError(f"{flag} must be a positive number of metres per pixel, got {value}")
    return value


def is_metric(crs) -> bool:
    """A projected CRS in metres, where pixel areas are m²."""
    return crs is not None and crs.is_projected and (crs.linear_units or "").lower() in ("metre", "meter", "m")


def pixel_area(transform) -> float:
    """One pixel's area in CRS units squared."""
    return abs(transform.a * transform.e - transform.b * transform.d)


#: remote reads: retry what servers say is temporary (429, 502-504), and never list a bucket "directory"
#: to find sidecars (a request per file opened); the user's own environment variables win
REMOTE_OPTIONS = {"GDAL_HTTP_MAX_RETRY": "3", "GDAL_HTTP_RETRY_DELAY": "1",
                  "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_TIMEOUT": "60"}


def gdal_env(pam: bool = True):
    """rasterio's GDAL settings for lut's reads and writes: the block cache capped, retries and no directory
    listings for remote files (`REMOTE_OPTIONS`), and (pam=False) GDAL's own `.aux.xml` off, for writes
    through temporary names where GDAL would leave a sidecar named after the temporary file (lut writes
    its legend sidecar itself)."""
    import os

    import rasterio

    options: dict[str, int | str] = {"GDAL_CACHEMAX": GDAL_CACHE_MB * 1024 * 1024}
    options.update({k: v for k, v in REMOTE_OPTIONS.items() if k not in os.environ})
    if not pam:
        options["GDAL_PAM_ENABLED"] = "NO"
    return rasterio.Env(**options)


def overview_factors(width: int, height: int, block: int = 256) -> list[int]:
    """Halvings until the coarsest overview fits in one block, as GDAL's COG driver makes them."""
    factors, f = [], 2
    while max(width, height) / (f // 2) > block:
        factors.append(f)
        f *= 2
    return factors


def to_cog(gtiff: Path, target: Path) -> None:
    """Rewrite as a Cloud Optimized GeoTIFF: tiled, internal overviews by nearest neighbour (classes stay
    classes, never averaged into other classes), overviews after the header and before the data.

    Written as GDAL's GTiff with COPY_SRC_OVERVIEWS=YES, the COG driver's documented equivalent, which keeps
    a one-band map PHOTOMETRIC=PALETTE and a one-band confidence file MINISBLACK."""
    import rasterio
    import rasterio.shutil
    from rasterio.enums import Resampling

    with gdal_env(pam=False):
        with rasterio.open(gtiff, "r+") as src:
            factors = overview_factors(src.width, src.height)
            if factors and not src.overviews(1):
                src.build_overviews(factors, Resampling.nearest)
        rasterio.shutil.copy(gtiff, target, driver="GTiff", tiled=True, blockxsize=256, blockysize=256,
                             compress="DEFLATE", copy_src_overviews=True)


@contextlib.contextmanager
def on_grid(path, crs, transform, width: int, height: int, nodata: int = 255):
    """A raster read on another grid: the file itself when it already lies on it, else a nearest-neighbour
    WarpedVRT over it (classes and percentages stay values, never blends), `nodata` outside it."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    with rasterio.open(path) as src:
        if src.crs == crs and src.transform.almost_equals(transform) and (src.width, src.height) == (width, height):
            yield src
            return
        with WarpedVRT(src, crs=crs, transform=transform, width=width, height=height, resampling=Resampling.nearest,
                       src_nodata=nodata, nodata=nodata) as vrt:
            yield vrt


@contextlib.contextmanager
def written_as_cog(targets: list, cog: bool):
    """The paths to write rasters to: the targets themselves, or with `cog` GTiff stages beside them that
    become Cloud Optimized GeoTIFFs at the targets once the block exits cleanly (the stages are removed
    either way)."""
    staged = [Path(t).with_name(Path(t).name + ".gtiff.tif") for t in targets] if cog else [Path(t) for t in targets]
    try:
        yield staged
        if cog:
            for stage, target in zip(staged, targets):
                to_cog(stage, Path(target))
    finally:
        if cog:
            for stage in staged:
                stage.unlink(missing_ok=True)


def decimated(path, max_side: int) -> np.ndarray:
    """Band 1 read at most `max_side` pixels a side, nearest neighbour (class values stay class values)."""
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.open(path) as src:
        factor = max(1, int(np.ceil(max(src.height, src.width) / max_side)))
        return src.read(1, out_shape=(max(1, src.height // factor), max(1, src.width // factor)),
                        resampling=Resampling.nearest)
