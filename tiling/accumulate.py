"""Class probabilities per cell (the pieces of the scene between window edges): overlapping windows average
out, and finished cell rows become map pixels, confidence and probabilities."""

from __future__ import annotations

import numpy as np

from lut.toolkit.core.formats import CONFIDENCE_NODATA, MAP_NODATA as NODATA

from .grid import PatchGrid


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class CellAccumulator:
    """Summed class probabilities per cell (the pieces between window edges); overlaps average out."""

    def __init__(self, grid: PatchGrid, classes: int) -> None:
        self.grid = grid
        self.probs = np.zeros((grid.cell_rows, grid.cell_cols, classes), np.float32)
        self.hits = np.zeros((grid.cell_rows, grid.cell_cols), np.float32)
        self.widths = grid.cell_widths()
        self.heights = grid.cell_heights()
        self.starts = np.concatenate([[0], np.cumsum(self.widths)[:-1]])

    def add(self, where: list[tuple[int, int]], probs: np.ndarray) -> None:
        rows, cols = self.grid.row_cells, self.grid.col_cells
        for (r, c), p in zip(where, probs):
            (y0, y1), (x0, x1) = rows[r], cols[c]
            self.probs[y0:y1, x0:x1] += p
            self.hits[y0:y1, x0:x1] += 1

    def row_pixels(self, cell_row: int, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Class and confidence (0-100) pixels of one cell row, nodata where invalid or never classified, and
        the pixels per class, counted per cell (valid pixels of each classified cell) rather than per pixel."""
        hits = self.hits[cell_row]
        mean = self.probs[cell_row] / np.maximum(hits, 1)[:, None]
        cls = np.where(hits > 0, mean.argmax(1), NODATA).astype(np.uint8)
        conf = np.where(hits > 0, np.round(mean.max(1) * 100), CONFIDENCE_NODATA).astype(np.uint8)
        rows = int(self.heights[cell_row])
        cls_px = np.repeat(np.repeat(cls, self.widths)[None], rows, 0)
        conf_px = np.repeat(np.repeat(conf, self.widths)[None], rows, 0)
        invalid = ~valid
        cls_px[invalid] = NODATA
        conf_px[invalid] = CONFIDENCE_NODATA
        valid_per_cell = np.add.reduceat(valid.sum(axis=0), self.starts)
        seen = hits > 0
        counts = np.bincount(cls[seen], weights=valid_per_cell[seen], minlength=self.probs.shape[-1])
        return cls_px, conf_px, counts.astype(np.int64)

    def row_probabilities(self, cell_row: int, valid: np.ndarray) -> np.ndarray:
        """(K, rows, width) uint8 class probabilities in percent of one cell row, 255 where not mapped."""
        hits = self.hits[cell_row]
        mean = self.probs[cell_row] / np.maximum(hits, 1)[:, None]
        cells = np.where(hits[:, None] > 0, np.round(mean * 100), CONFIDENCE_NODATA).astype(np.uint8)
        out = np.repeat(np.repeat(cells.T, self.widths, axis=1)[:, None], int(self.heights[cell_row]), axis=1)
        out[:, ~valid] = CONFIDENCE_NODATA
        return out
