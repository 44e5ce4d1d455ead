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
    pixel_area_m2: float | None  # None when the CRS is not metric: km² cannot be stated
    removed: np.ndarray | None = None  # (n, n) low-confidence changes that were counted as unchanged

    def __post_init__(self) -> None:
        n = len(self.classes)
        self.pixels = np.asarray(self.pixels, np.int64).reshape(n, n)
        self.removed = np.zeros((n, n), np.int64) if self.removed is None else np.asarray(self.removed, np.int64)

    @property
    def total(self) -> int:
        """Pixels valid in both maps: the matrix sums to exactly this."""
        return int(self.pixels.sum())

    def km2(self, pixels: np.ndarray | int) -> np.ndarray | float | None:
        return None if self.pixel_area_m2 is None else np.asarray(pixels) * self.pixel_area_m2 / 1e6

    def percent(self) -> np.ndarray:
        return self.pixels * (100.0 / self.total) if self.total else np.zeros_like(self.pixels, float)

    def per_class(self) -> list[dict]:
        """Before, after, gains (from other classes), losses (to other classes) and net, per class."""
        off = self.pixels - np.diag(np.diag(self.pixels))
        rows = []
        for i, name in enumerate(self.classes):
            counts = {"before": int(self.pixels[i].sum()), "after": int(self.pixels[:, i].sum()),
                      "unchanged": int(self.pixels[i, i]), "gains": int(off[:, i].sum()),
                      "losses": int(off[i].sum())}
            counts["net"] = counts["gains"] - counts["losses"]
            row = {"class": name, **{f"{k}_pixels": v for k, v in counts.items()}}
            if self.pixel_area_m2 is not None:
                row.update({f"{k}_km2": float(self.km2(v)) for k, v in counts.items()})
            rows.append(row)
        return rows

    def changed_pixels(self) -> int:
        return self.total - int(np.trace(self.pixels))

    def to_json(self) -> dict:
        km2 = self.km2(self.pixels)
        return {
            "classes": self.classes, "pixel_area_m2": self.pixel_area_m2, "valid_pixels": self.total,
            "valid_km2": None if km2 is None else float(self.km2(self.total)),
            "changed_pixels": self.changed_pixels(),
            "changed_percent": 100.0 * self.changed_pixels() / self.total if self.total else 0.0,
            "matrix": {"rows": "before", "columns": "after", "pixels": self.pixels.tolist(),
                       "km2": None if km2 is None else km2.tolist(), "percent": self.percent().tolist()},
            "per_class": self.per_class(),
            "low_confidence_changes": {"pixels": int(self.removed.sum()),
                                       "km2": None if km2 is None else float(self.km2(int(self.removed.sum()))),
                                       "matrix_pixels": self.removed.tolist()},
        }

    def matrix_csv(self) -> str:
        """Long form, one row per (before, after) pair: the easiest to filter and pivot."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(MATRIX_HEADER)
        km2, pct = self.km2(self.pixels), self.percent()
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
        unit = "km²" if self.pixel_area_m2 is not None else "pixels"
        values = self.km2(self.pixels) if self.pixel_area_m2 is not None else self.pixels

        def fmt(v) -> str:
            return f"{v:,.3f}" if self.pixel_area_m2 is not None else f"{int(v):,}"

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
        suffix = "_km2" if self.pixel_area_m2 is not None else "_pixels"
        for row in self.per_class():
            cells = [fmt(row[k + suffix]) for k in ("before", "after", "gains", "losses")]
            net = row["net" + suffix]
            lines.append(f"| {row['class']} | " + " | ".join(cells) + f" | {'+' if net > 0 else ''}{fmt(net)} |")
        removed = int(self.removed.sum())
        if removed:
            amount = fmt(self.km2(removed)) if self.pixel_area_m2 is not None else fmt(removed)
            lines += ["", f"Low-confidence changes counted as unchanged: {amount} {unit}."]
        return "\n".join(lines) + "\n"


MATRIX_HEADER = ["before", "after", "pixels", "km2", "percent", "low_confidence_pixels"]
MARKDOWN_MARK = "<!-- lut change: transition matrix (lut-change/1) -->"


def transition_name(before: str, after: str) -> str:
    return f"{before} (unchanged)" if before == after else f"{before}{ARROW}{after}"
