"""Reading a scene in strips: window rows in column chunks, with each pixel's validity (nodata, NaN, internal
masks, and a cloud/quality mask), so memory does not grow with the scene's width."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .masks import MaskReader, MaskSpec
from .raster import valid_mask
from .scene import read_window


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
    masked: np.ndarray | None = None  # (patch, same width) bool: otherwise valid pixels the mask removed


class _Opened:
    """A thread's dataset and mask reader."""

    def __init__(self, opener: Callable, mask: MaskSpec | None) -> None:
        self.src = opener()
        try:
            self.mask = None if mask is None else MaskReader(mask, _profile(self.src))
        except BaseException:
            self.src.close()
            raise

    def close(self) -> None:
        if self.mask is not None:
            self.mask.close()
        self.src.close()


def _profile(src) -> dict:
    return {"width": src.width, "height": src.height, "crs": src.crs, "transform": src.transform}


class ChunkReader:
    """Reads a window row in column chunks, so memory does not grow with the scene's width.

    `opener` opens the scene (a rasterio dataset); `mask` is read on the scene's grid and removes the
    pixels it excludes. With `threads` > 1 several chunks are read at once, each thread through its own
    GDAL datasets (a dataset is not thread-safe; GDAL releases the GIL while it reads), and they are handed
    out in order."""

    def __init__(self, opener: Callable, bands: tuple[int, ...], nodata: float | None, grid, chunk_px: int = 2048,
                 threads: int = 1, mask: MaskSpec | None = None) -> None:
        self.opener, self.bands, self.nodata, self.grid, self.mask = opener, bands, nodata, grid, mask
        self.chunk_cols = max(1, chunk_px // grid.stride)
        self.threads = max(1, threads)

    def _plan(self) -> list[tuple[int, int, int]]:
        """(window row, its y, first window column) of every chunk, in reading order."""
        g = self.grid
        return [(r, y, first) for r, y in enumerate(g.y_origins.tolist())
                for first in range(0, g.window_cols, self.chunk_cols)]

    def _read(self, opened: _Opened, r: int, y: int, first: int) -> SceneChunk:
        from rasterio.windows import Window

        g, src = self.grid, opened.src
        h = min(g.patch, src.height - y)
        ncols = min(self.chunk_cols, g.window_cols - first)
        cols = g.x_origins[first:first + ncols]
        x_start = int(cols[0])
        width = min(int(cols[-1]) + g.patch, src.width) - x_start
        window = Window(x_start, y, width, h)
        raw = read_window(src, self.bands, window)
        valid = valid_mask(src, raw, self.bands, self.nodata, window=window)
        masked = None
        if opened.mask is not None:
            masked = opened.mask.read(window) & valid
            valid &= ~masked
        need_w = int(cols[-1]) + g.patch - x_start
        if h < g.patch or width < need_w:  # a scene smaller than one window: mirror it
            pad = ((0, 0), (0, g.patch - h), (0, need_w - width))
            raw = np.pad(raw, pad, mode="reflect")
            valid = np.pad(valid, pad[1:], mode="reflect")
            masked = None if masked is None else np.pad(masked, pad[1:], mode="reflect")
        return SceneChunk(r, first, ncols, first + ncols == g.window_cols, x_start, width, cols - x_start, raw, valid,
                          masked)

    def chunks(self, stop: Callable[[], bool] = lambda: False):
        if self.threads > 1:
            yield from self._parallel(self._plan(), stop)
            return
        opened = _Opened(self.opener, self.mask)
        try:
            for r, y, first in self._plan():
                if stop():
                    return
                yield self._read(opened, r, y, first)
        finally:
            opened.close()

    def _parallel(self, plan: list[tuple[int, int, int]], stop: Callable[[], bool]):
        import collections
        from concurrent.futures import ThreadPoolExecutor

        local = threading.local()
        opened: list[_Opened] = []

        def read(item):
            if not hasattr(local, "opened"):
                local.opened = _Opened(self.opener, self.mask)
                opened.append(local.opened)
            return self._read(local.opened, *item)

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
                for o in opened:
                    o.close()
