"""Reading a scene in strips: band selection, encoding and scaling, validity masks, damaged files."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FormatError, InputError, warn
from lut.toolkit.core.radiometry import FORCED_ENCODINGS, BandRule, default_bands, default_rule, percentile_rule
from lut.toolkit.core.raster import raster_encoding, valid_mask

SCALES = ("auto", "bundle", "uint8", "reflectance", "fraction", "percentile")
QUANTITY_NAMES = {"dn": "8-bit display values", "reflectance": "reflectance", "raw": "percentile-stretched values"}


def open_raster(path: Path):
    import rasterio
    from rasterio.errors import RasterioIOError

    path = Path(path)
    if not path.exists():
        raise InputError(f"scene {path} does not exist")
    if path.is_dir():
        raise InputError(f"scene {path} is a directory, not a raster file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return rasterio.open(path)
    except RasterioIOError as exc:
        raise FormatError(f"{path} is not a raster that GDAL can read (damaged, or another format)") from exc


def read_window(src, bands: tuple[int, ...], window=None, **kwargs) -> np.ndarray:
    """src.read that names the file when GDAL fails (a truncated or corrupt GeoTIFF)."""
    from rasterio.errors import RasterioError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return src.read(list(bands), window=window, **kwargs)
    except RasterioError as exc:
        where = f" at {window}" if window is not None else ""
        raise FormatError(f"{src.name} is damaged: GDAL cannot read its pixels{where} (truncated or corrupt "
                       "file); download or export it again") from exc


def check_nodata(src, nodata: float | None, bands: tuple[int, ...]) -> None:
    """`--nodata` must be a value the scene's pixel type can hold."""
    if nodata is None or np.isnan(nodata):
        return
    dtype = np.dtype(src.dtypes[bands[0] - 1])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if not (info.min <= nodata <= info.max) or nodata != int(nodata):
            raise InputError(f"`nodata` {nodata:g} cannot occur in {src.name}, whose {dtype.name} pixels hold "
                           f"integers {info.min}..{info.max}")


def decimated_sample(src, bands: tuple[int, ...], nodata: float | None, max_side: int = 1024) -> np.ndarray:
    """Valid pixel values (C, N) from an overview-sized read: cheap, and enough for percentiles."""
    from rasterio.enums import Resampling

    factor = max(1, int(np.ceil(max(src.height, src.width) / max_side)))
    shape = (len(bands), max(1, src.height // factor), max(1, src.width // factor))
    data = read_window(src, bands, out_shape=shape, resampling=Resampling.nearest)
    valid = valid_mask(src, data, bands, nodata, out_shape=shape)
    return data[:, valid]


def _named(quantity: str) -> str:
    return QUANTITY_NAMES.get(quantity, quantity)


def choose_rule(src, bands: tuple[int, ...], scale: str, bundle_rule: BandRule | None, nodata: float | None,
                offset_dn: float | None = None, sample: np.ndarray | None = None) -> BandRule:
    """The scaling that makes this scene look like the training patches: the bundle's physical window
    through the scene's own encoding whenever both are the same quantity. `sample`: valid pixel values
    (C, N) when the caller already has them (the overview is read at most once either way)."""
    if scale not in SCALES:
        raise InputError(f"`scale` must be one of {', '.join(SCALES)}")
    samples: list[np.ndarray] = [] if sample is None else [sample]

    def valid_sample() -> np.ndarray:
        if not samples:
            samples.append(decimated_sample(src, bands, nodata))
        return samples[0]

    def stretch() -> BandRule:
        return percentile_rule(valid_sample().astype(np.float64), bands)

    if scale == "percentile":
        return stretch()
    encoding = FORCED_ENCODINGS.get(scale)
    if encoding is None:
        floats = np.dtype(src.dtypes[bands[0] - 1]).kind == "f"
        p99 = float(np.percentile(valid_sample(), 99)) if floats and valid_sample().size else None
        encoding = raster_encoding(src, bands, p99, offset_dn)
    if encoding.quantity == "unknown":
        if scale == "bundle":
            raise InputError(f"cannot tell how {src.name} encodes its values ({encoding.description}), so the "
                           "bundle's rule cannot be applied: pass `scale` uint8|reflectance|fraction|percentile")
        warn(f"{src.name}: {encoding.description}; using a 2-98 percentile stretch (pass --scale to choose)")
        return stretch()
    if bundle_rule is not None and bundle_rule.quantity == encoding.quantity:
        return bundle_rule.with_encoding(bands, encoding)
    if bundle_rule is not None:
        mismatch = (f"{src.name} holds {_named(encoding.quantity)} but the bundle was trained on "
                    f"{_named(bundle_rule.quantity)}")
        if scale == "bundle":
            raise InputError(f"{mismatch}: its rule cannot be applied; drop `scale` bundle")
        warn(f"{mismatch}; scaling the scene by its own default rule")
    return default_rule(encoding, bands)


@dataclass
class SceneChunk:
    """Windows first_col .. first_col + ncols - 1 of one window row, with the pixels they cover."""

    row: int
    first_col: int
    ncols: int
    last: bool  # the last chunk of its row
    x_start: int  # scene column of data[..., 0]
    width: int  # real scene pixels in the chunk (data may be reflect-padded past them)
    offsets: np.ndarray  # each window's column in `data`
    data: np.ndarray  # (C, patch, >= width) raw values
    valid: np.ndarray  # (patch, same width) bool


class ChunkReader:
    """Reads a window row in column chunks, so memory does not grow with the scene's width.

    With `threads` > 1 several chunks are read at once, each thread through its own GDAL dataset (a
    dataset is not thread-safe; GDAL releases the GIL while it reads), and they are handed out in order."""

    def __init__(self, path: Path, bands: tuple[int, ...], nodata: float | None, grid, chunk_px: int = 2048,
                 threads: int = 1) -> None:
        self.path, self.bands, self.nodata, self.grid = Path(path), bands, nodata, grid
        self.chunk_cols = max(1, chunk_px // grid.stride)
        self.threads = max(1, threads)

    def _plan(self) -> list[tuple[int, int, int]]:
        """(window row, its y, first window column) of every chunk, in reading order."""
        g = self.grid
        return [(r, y, first) for r, y in enumerate(g.y_origins.tolist())
                for first in range(0, g.window_cols, self.chunk_cols)]

    def _read(self, src, r: int, y: int, first: int) -> SceneChunk:
        from rasterio.windows import Window

        g = self.grid
        h = min(g.patch, src.height - y)
        ncols = min(self.chunk_cols, g.window_cols - first)
        cols = g.x_origins[first:first + ncols]
        x_start = int(cols[0])
        width = min(int(cols[-1]) + g.patch, src.width) - x_start
        window = Window(x_start, y, width, h)
        raw = read_window(src, self.bands, window)
        valid = valid_mask(src, raw, self.bands, self.nodata, window=window)
        need_w = int(cols[-1]) + g.patch - x_start
        if h < g.patch or width < need_w:  # a scene smaller than one window: mirror it
            pad = ((0, 0), (0, g.patch - h), (0, need_w - width))
            raw = np.pad(raw, pad, mode="reflect")
            valid = np.pad(valid, pad[1:], mode="reflect")
        return SceneChunk(r, first, ncols, first + ncols == g.window_cols, x_start, width, cols - x_start, raw, valid)

    def chunks(self, stop: Callable[[], bool] = lambda: False):
        if self.threads > 1:
            yield from self._parallel(self._plan(), stop)
            return
        with open_raster(self.path) as src:
            for r, y, first in self._plan():
                if stop():
                    return
                yield self._read(src, r, y, first)

    def _parallel(self, plan: list[tuple[int, int, int]], stop: Callable[[], bool]):
        import collections
        from concurrent.futures import ThreadPoolExecutor

        local = threading.local()
        opened: list = []

        def read(item):
            if not hasattr(local, "src"):
                local.src = open_raster(self.path)
                opened.append(local.src)
            return self._read(local.src, *item)

        with ThreadPoolExecutor(self.threads, thread_name_prefix="lut-read") as pool:
            ahead: collections.deque = collections.deque()
            try:
                for item in plan:
                    ahead.append(pool.submit(read, item))
                    if len(ahead) > self.threads:
                        if stop():
                            return
                        yield ahead.popleft().result()
                while ahead and not stop():
                    yield ahead.popleft().result()
            finally:
                for future in ahead:
                    future.cancel()
                pool.shutdown(wait=True)
                for src in opened:
                    src.close()


def scene_bands(src, bands: tuple[int, ...] | None, fallback: tuple[int, ...] | None) -> tuple[int, ...]:
    """`--bands`, else the bundle's, else 1,2,3; says which bands a scene is read as RGB unless obvious."""
    if bands is None and src.count == 1:
        raise InputError(f"{src.name} has 1 band and the model takes 3: pass `bands` 1,1,1 to read it as grey RGB")
    chosen = default_bands(src.count, bands or fallback, str(src.name))
    if bands is None and (src.count != 3 or chosen != (1, 2, 3)):
        whose = "the bundle's bands" if fallback else "the default"
        warn(f"{src.name} has {src.count} bands; reading bands {','.join(map(str, chosen))} as red, green, blue "
             f"({whose}; pass --bands to choose)")
    return chosen
