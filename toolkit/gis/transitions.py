"""A from-to transition matrix and what users read from it: km², percent, gains, losses and net change.

Pure: built from pixel counts, so every table is exact and testable without a raster.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

ARROW = "→"


@dataclass
class Transitions:
    classes: list[str]
    pixels: np.ndarray  # (n, n) int64: row = class before, column = class after
    pixel_area_m2: float | None  # the grid's pixel area in a metric CRS; None otherwise
    removed: np.ndarray | None = None  # (n, n) low-confidence changes that were counted as unchanged
    area_m2: np.ndarray | None = None  # (n, n) m² of each cell (default: pixels x pixel_area_m2; geographic
    # maps: summed row by row on the ellipsoid, `lut.toolkit.core.areas`); None: km² cannot be stated
    removed_m2: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.classes)
        self.pixels = np.asarray(self.pixels, np.int64).reshape(n, n)
        self.removed = np.zeros((n, n), np.int64) if self.removed is None else np.asarray(self.removed, np.int64)
        if self.area_m2 is None and self.pixel_area_m2 is not None:
            self.area_m2 = self.pixels * self.pixel_area_m2
            self.removed_m2 = self.removed * self.pixel_area_m2
        if self.area_m2 is not None:
            self.area_m2 = np.asarray(self.area_m2, float).reshape(n, n)
            self.removed_m2 = (np.zeros((n, n)) if self.removed_m2 is None
                               else np.asarray(self.removed_m2, float).reshape(n, n))

    @property
    def total(self) -> int:
        """Pixels valid in both maps: the matrix sums to exactly this."""
        return int(self.pixels.sum())

    @property
    def has_area(self) -> bool:
        return self.area_m2 is not None

    def km2_matrix(self) -> np.ndarray | None:
        return None if self.area_m2 is None else self.area_m2 / 1e6

    def percent(self) -> np.ndarray:
        return self.pixels * (100.0 / self.total) if self.total else np.zeros_like(self.pixels, float)

    def per_class(self) -> list[dict]:
        """Before, after, gains (from other classes), losses (to other classes) and net, per class."""
        rows = []
        km2 = self.km2_matrix()
        for i, name in enumerate(self.classes):
            row = {"class": name, **{f"{k}_pixels": int(v) for k, v in _flows(self.pixels, i).items()}}
            if km2 is not None:
                row.update({f"{k}_km2": float(v) for k, v in _flows(km2, i).items()})
            rows.append(row)
        return rows

    def changed_pixels(self) -> int:
        return self.total - int(np.trace(self.pixels))

    def to_json(self) -> dict:
        km2 = self.km2_matrix()
        return {
            "classes": self.classes, "pixel_area_m2": self.pixel_area_m2, "valid_pixels": self.total,
            "valid_km2": None if km2 is None else float(km2.sum()),
            "changed_pixels": self.changed_pixels(),
            "changed_percent": 100.0 * self.changed_pixels() / self.total if self.total else 0.0,
            "matrix": {"rows": "before", "columns": "after", "pixels": self.pixels.tolist(),
                       "km2": None if km2 is None else km2.tolist(), "percent": self.percent().tolist()},
            "per_class": self.per_class(),
            "low_confidence_changes": {"pixels": int(self.removed.sum()),
                                       "km2": None if km2 is None else float(self.removed_m2.sum() / 1e6),
                                       "matrix_pixels": self.removed.tolist()},
        }

    def matrix_csv(self) -> str:
        """Long form, one row per (before, after) pair: the easiest to filter and pivot."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(MATRIX_HEADER)
        km2, pct = self.km2_matrix(), self.percent()
        for i, a in enumerate(self.classes):
            for j, b in enumerate(self.classes):
                writer.writerow([a, b, int(self.pixels[i, j]), "" if km2 is None else f"{km2[i, j]:.6f}",
                                 f"{pct[i, j]:.4f}", int(self.removed[i, j])])
        return out.getvalue()

    def classes_csv(self) -> str:
        out = io.StringIO()
        rows = self.per_class()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()

    def markdown(self, title: str) -> str:
        unit = "km²" if self.has_area else "pixels"
        values = self.km2_matrix() if self.has_area else self.pixels

        def fmt(v) -> str:
            return f"{v:,.3f}" if self.has_area else f"{int(v):,}"

        pct = self.percent()
        lines = [MARKDOWN_MARK, f"# {title}", "",
                 f"Rows: class before; columns: class after; mapped {unit} (percent of the {fmt(values.sum())} "
                 f"{unit} valid in both maps).", "",
                 "Mapped areas are pixel counts, biased by the maps' errors; for areas with 95% confidence "
                 "intervals, sample this change raster and estimate them: `lut assess design` then "
                 "`lut assess estimate` (Olofsson et al. 2014).", "",
                 "| before \\ after | " + " | ".join(self.classes) + " | total |",
                 "|---|" + "---:|" * (len(self.classes) + 1)]
        for i, name in enumerate(self.classes):
            cells = [f"{fmt(values[i, j])} ({pct[i, j]:.1f}%)" for j in range(len(self.classes))]
            lines.append(f"| **{name}** | " + " | ".join(cells) + f" | {fmt(values[i].sum())} |")
        lines.append("| **total** | " + " | ".join(fmt(values[:, j].sum()) for j in range(len(self.classes)))
                     + f" | {fmt(values.sum())} |")
        lines += ["", f"| class | before | after | gains | losses | net (mapped {unit}) |",
                  "|---|---:|---:|---:|---:|---:|"]
        suffix = "_km2" if self.has_area else "_pixels"
        for row in self.per_class():
            cells = [fmt(row[k + suffix]) for k in ("before", "after", "gains", "losses")]
            net = row["net" + suffix]
            lines.append(f"| {row['class']} | " + " | ".join(cells) + f" | {'+' if net > 0 else ''}{fmt(net)} |")
        removed = int(self.removed.sum())
        if removed:
            amount = fmt(self.removed_m2.sum() / 1e6) if self.has_area else fmt(removed)
            lines += ["", f"Low-confidence changes counted as unchanged: {amount} {unit}."]
        return "\n".join(lines) + "\n"


MATRIX_HEADER = ["before", "after", "pixels", "km2", "percent", "low_confidence_pixels"]
MARKDOWN_MARK = "<!-- lut change: transition matrix (lut-change/1) -->"


def transition_name(before: str, after: str) -> str:
    return f"{before} (unchanged)" if before == after else f"{before}{ARROW}{after}"


def _flows(matrix: np.ndarray, i: int) -> dict:
    """Before, after, unchanged, gains, losses and net of class i in a from-to matrix (pixels or km²)."""
    off = matrix - np.diag(np.diag(matrix))
    flows = {"before": matrix[i].sum(), "after": matrix[:, i].sum(), "unchanged": matrix[i, i],
             "gains": off[:, i].sum(), "losses": off[i].sum()}
    flows["net"] = flows["gains"] - flows["losses"]
    return flows
