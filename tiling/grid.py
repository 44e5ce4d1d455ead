"""The patch grid over a scene: window origins every `stride` pixels, the last one aligned inward.

Windows start at 0, stride, 2*stride, ... and, where that does not end exactly on the scene's edge, one
more window starts at size - patch: every window lies inside the scene and sees real pixels, never
padding (a zero-padded edge window was classified as a dark class). Map **cells** are the pieces between
consecutive window edges, so the inward-aligned window simply covers a few narrower cells; overlapping
windows average their probabilities per cell. A cell row is final once the last window row covering it
is done, which is what lets the pipeline stream the map out row by row.

All sizes are in scene pixels. A scene narrower than the patch has a single window, read with reflect
padding (see `MIN_SIDE_FRACTION`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from lut.toolkit.core.errors import InputError

#: a scene side shorter than this fraction of the window is refused instead of reflect-padded: below
#: a quarter, most of the window would be mirrored copies and the class would be a guess.
MIN_SIDE_FRACTION = 0.25


def window_origins(size: int, patch: int, stride: int) -> np.ndarray:
    if size <= patch:
        return np.zeros(1, np.int64)
    origins = list(range(0, size - patch + 1, stride))
    if origins[-1] != size - patch:
        origins.append(size - patch)
    return np.asarray(origins, np.int64)


def cell_edges(size: int, origins: np.ndarray, patch: int) -> np.ndarray:
    ends = np.minimum(origins + patch, size)
    return np.unique(np.concatenate([[0, size], origins, ends]))


@dataclass(frozen=True)
class PatchGrid:
    height: int
    width: int
    patch: int
    stride: int

    def __post_init__(self) -> None:
        if self.stride < 1 or self.stride > self.patch:
            raise InputError(f"`stride` {self.stride} must be between 1 and the window size {self.patch}")
        least = max(2, int(np.ceil(self.patch * MIN_SIDE_FRACTION)))
        if min(self.height, self.width) < least:
            raise InputError(f"the scene is {self.width} x {self.height} px, too small for {self.patch} px windows: "
                           f"each side needs at least {least} px (smaller scenes would be mostly reflect padding)")

    @cached_property
    def y_origins(self) -> np.ndarray:
        return window_origins(self.height, self.patch, self.stride)

    @cached_property
    def x_origins(self) -> np.ndarray:
        return window_origins(self.width, self.patch, self.stride)

    @cached_property
    def y_edges(self) -> np.ndarray:
        return cell_edges(self.height, self.y_origins, self.patch)

    @cached_property
    def x_edges(self) -> np.ndarray:
        return cell_edges(self.width, self.x_origins, self.patch)

    @property
    def window_rows(self) -> int:
        return len(self.y_origins)

    @property
    def window_cols(self) -> int:
        return len(self.x_origins)

    @property
    def windows(self) -> int:
        return self.window_rows * self.window_cols

    @property
    def cell_rows(self) -> int:
        return len(self.y_edges) - 1

    @property
    def cell_cols(self) -> int:
        return len(self.x_edges) - 1

    @cached_property
    def row_cells(self) -> np.ndarray:
        """(window_rows, 2): the [first, end) cell rows each window row covers."""
        return self._cover(self.y_origins, self.y_edges, self.height)

    @cached_property
    def col_cells(self) -> np.ndarray:
        """(window_cols, 2): the [first, end) cell columns each window column covers."""
        return self._cover(self.x_origins, self.x_edges, self.width)

    def _cover(self, origins: np.ndarray, edges: np.ndarray, size: int) -> np.ndarray:
        first = np.searchsorted(edges, origins)
        end = np.searchsorted(edges, np.minimum(origins + self.patch, size))
        return np.stack([first, end], axis=1)

    def cells_final_after(self, window_row: int) -> range:
        """Cell rows whose probabilities are complete once `window_row` is processed: those no later window
        row covers. Window row `window_row` covers all of them, so its strip holds their pixels."""
        start = int(self.row_cells[window_row, 0]) if window_row else 0
        last = window_row == self.window_rows - 1
        end = self.cell_rows if last else int(self.row_cells[window_row + 1, 0])
        return range(start, end)

    def cell_heights(self) -> np.ndarray:
        return np.diff(self.y_edges)

    def cell_widths(self) -> np.ndarray:
        return np.diff(self.x_edges)
