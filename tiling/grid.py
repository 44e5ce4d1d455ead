"""The patch grid over a scene: windows every `stride` pixels, map cells of stride x stride pixels.

A window at (row r, col c) covers cells r..r+m-1 and c..c+m-1 with m = patch / stride, so cell row r is
final as soon as window row r is done; that is what lets the pipeline stream the map out row by row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lut.toolkit.errors import LutError


@dataclass(frozen=True)
class PatchGrid:
    height: int
    width: int
    patch: int
    stride: int

    def __post_init__(self) -> None:
        if self.stride < 1 or self.stride > self.patch or self.patch % self.stride:
            raise LutError(f"--stride {self.stride} must divide the patch size {self.patch}")

    @property
    def span(self) -> int:
        """Cells per window side."""
        return self.patch // self.stride

    @staticmethod
    def _windows(size: int, patch: int, stride: int) -> int:
        return 1 if size <= patch else math.ceil((size - patch) / stride) + 1

    @property
    def window_rows(self) -> int:
        return self._windows(self.height, self.patch, self.stride)

    @property
    def window_cols(self) -> int:
        return self._windows(self.width, self.patch, self.stride)

    @property
    def cell_rows(self) -> int:
        return math.ceil(self.height / self.stride)

    @property
    def cell_cols(self) -> int:
        return math.ceil(self.width / self.stride)

    @property
    def padded_width(self) -> int:
        """Width of a strip that holds every window of a row, padding included."""
        return (self.window_cols - 1) * self.stride + self.patch

    @property
    def windows(self) -> int:
        return self.window_rows * self.window_cols

    def cells_final_after(self, window_row: int) -> range:
        """Cell rows whose probabilities are complete once `window_row` is processed."""
        if window_row == self.window_rows - 1:
            return range(window_row, self.cell_rows)
        return range(window_row, window_row + 1)
