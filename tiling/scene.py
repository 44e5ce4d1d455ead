"""Reading a scene in strips: band selection, scaling to what the model was trained on, nodata masks."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lut.toolkit.errors import LutError
from lut.toolkit.radiometry import BandRule, default_bands, percentile_rule, rule_for_dtype

SCALES = ("auto", "bundle", "uint8", "reflectance", "percentile")


def open_raster(path: Path):
    import rasterio
    from rasterio.errors import RasterioIOError

    path = Path(path)
    if not path.exists():
        raise LutError(f"scene {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return rasterio.open(path)
    except RasterioIOError:
        raise LutError(f"{path} is not a raster that GDAL can read") from None


def decimated_sample(src, bands: tuple[int, ...], nodata: float | None, max_side: int = 1024) -> np.ndarray:
    """Valid pixel values (C, N) from an overview-sized read: cheap, and enough for percentiles."""
    from rasterio.enums import Resampling

    factor = max(1, int(np.ceil(max(src.height, src.width) / max_side)))
    shape = (len(bands), max(1, src.height // factor), max(1, src.width // factor))
    data = src.read(list(bands), out_shape=shape, resampling=Resampling.nearest)
    valid = valid_mask(src, data, bands, nodata, out_shape=shape)
    return data[:, valid]


def valid_mask(src, data: np.ndarray, bands: tuple[int, ...], nodata: float | None, window=None,
               out_shape=None) -> np.ndarray:
    """True where a pixel has data: not nodata in every band (GDAL's rule), or per the file's mask.

    A nodata value (given, or the file's) is tested on `data`, the pixels already read; only internal
    masks and alpha bands need GDAL's read_masks, which would otherwise decode the pixels again."""
    nodata = src.nodata if nodata is None else nodata
    if nodata is not None:
        if np.isnan(nodata):
            return ~np.all(np.isnan(data), axis=0)
        return ~np.all(data == nodata, axis=0)
    if all(flag.name == "all_valid" for band in bands for flag in src.mask_flag_enums[band - 1]):
        return np.ones(data.shape[1:], bool)
    from rasterio.enums import Resampling

    kwargs = {"window": window} if window is not None else {}
    if out_shape is not None:
        kwargs.update(out_shape=out_shape, resampling=Resampling.nearest)
    masks = src.read_masks(list(bands), **kwargs)
    return np.any(masks > 0, axis=0)


def choose_rule(src, bands: tuple[int, ...], scale: str, bundle_rule: BandRule | None,
                nodata: float | None) -> BandRule:
    """The scaling that makes this scene look like the training patches."""
    dtype = np.dtype(src.dtypes[bands[0] - 1])
    if scale not in SCALES:
        raise LutError(f"--scale must be one of {', '.join(SCALES)}")
    if scale == "auto":
        fits = bundle_rule is not None and (dtype == np.uint8) == (max(bundle_rule.high) <= 255)
        scale = "bundle" if fits else ("uint8" if dtype == np.uint8 else "percentile")
    if scale == "bundle" and bundle_rule is not None:
        return BandRule(bands, bundle_rule.low, bundle_rule.high, bundle_rule.description)
    if scale == "uint8" or (scale == "bundle" and dtype == np.uint8):
        return rule_for_dtype(np.uint8, bands)
    if scale == "reflectance":
        return rule_for_dtype(np.uint16, bands)
    return percentile_rule(decimated_sample(src, bands, nodata).astype(np.float64), bands)


@dataclass
class SceneChunk:
    """Windows first_col .. first_col + ncols - 1 of one window row, with the pixels they cover."""

    row: int
    first_col: int
    ncols: int
    last: bool  # the last chunk of its row
    data: np.ndarray  # (C, patch, (ncols - 1) * stride + patch), raw values, zero-padded past the scene
    valid: np.ndarray  # (patch, same width) bool


class ChunkReader:
    """Reads a window row in column chunks, so memory does not grow with the scene's width."""

    def __init__(self, path: Path, bands: tuple[int, ...], nodata: float | None, grid, chunk_px: int = 2048) -> None:
        self.path, self.bands, self.nodata, self.grid = Path(path), bands, nodata, grid
        self.chunk_cols = max(1, chunk_px // grid.stride)

    def chunks(self, stop: Callable[[], bool] = lambda: False):
        from rasterio.windows import Window

        g = self.grid
        with open_raster(self.path) as src:
            for r in range(g.window_rows):
                y0 = r * g.stride
                h = min(g.patch, src.height - y0)
                for first in range(0, g.window_cols, self.chunk_cols):
                    if stop():
                        return
                    ncols = min(self.chunk_cols, g.window_cols - first)
                    x0 = first * g.stride
                    width = (ncols - 1) * g.stride + g.patch
                    w = min(width, src.width - x0)
                    window = Window(x0, y0, w, h)
                    raw = src.read(list(self.bands), window=window)
                    valid = valid_mask(src, raw, self.bands, self.nodata, window=window)
                    data = np.zeros((len(self.bands), g.patch, width), raw.dtype)
                    mask = np.zeros((g.patch, width), bool)
                    data[:, :h, :w] = raw
                    mask[:h, :w] = valid
                    yield SceneChunk(r, first, ncols, first + ncols == g.window_cols, data, mask)


def scene_bands(src, bands: tuple[int, ...] | None, fallback: tuple[int, ...] | None) -> tuple[int, ...]:
    return default_bands(src.count, bands or fallback, str(src.name))
