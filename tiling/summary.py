"""What a map says: area per class, and a quick-look picture with a legend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lut.toolkit.core.ownership import PREVIEW_SOFTWARE
from lut.toolkit.gis.legend import rgba_table
from lut.toolkit.core.areas import area_method
from lut.toolkit.core.raster import decimated, is_metric, pixel_area


#: what the km² of a map are, and where publishable areas come from
AREA_NOTE = ("km2 are mapped areas (pixel counts), biased by the map's errors; for areas with 95% confidence "
             "intervals: lut assess design, then lut assess estimate")


def area_summary(counts: np.ndarray, classes: list[str], transform, crs, nodata_pixels: int,
                 area_m2: np.ndarray | None = None) -> dict:
    """Pixels, km² and percent of the mapped area, per class. km² come from `area_m2` (per class, as the
    writer summed them row by row: `lut.toolkit.core.areas`), else from the grid's pixel area in a metric
    CRS; `area_method` says which."""
    area = pixel_area(transform)
    metric = is_metric(crs)
    if area_m2 is None and metric:
        area_m2 = counts * area
    total = int(counts.sum())
    rows = {}
    for i, (name, n) in enumerate(zip(classes, counts.tolist())):
        rows[name] = {"pixels": int(n), "km2": None if area_m2 is None else float(area_m2[i]) / 1e6,
                      "percent": 100.0 * n / total if total else 0.0}
    return {"classes": rows, "mapped_pixels": total, "nodata_pixels": int(nodata_pixels),
            "pixel_area_m2": area if metric else None, "area_method": area_method(crs),
            "crs": crs.to_string() if crs else None, "area_note": AREA_NOTE}


def format_summary(summary: dict) -> str:
    width = max(len(c) for c in summary["classes"])
    lines = [f"{'class':<{width}}  {'pixels':>12}  {'mapped km2':>10}  {'%':>6}"]
    for name, r in summary["classes"].items():
        km2 = "-" if r["km2"] is None else f"{r['km2']:.3f}"
        lines.append(f"{name:<{width}}  {r['pixels']:>12,}  {km2:>10}  {r['percent']:>6.1f}")
    lines.append(f"{'nodata':<{width}}  {summary['nodata_pixels']:>12,}")
    lines.append(AREA_NOTE)
    return "\n".join(lines)


def write_preview(map_path: Path, png: Path, classes: list[str], colours: dict, max_side: int = 1024) -> None:
    """A decimated view of the written map, so it costs little even for huge scenes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    data = decimated(map_path, max_side)
    lut = rgba_table(colours)
    fig, ax = plt.subplots(figsize=(8, 8 * data.shape[0] / max(data.shape[1], 1) + 0.5))
    ax.imshow(lut[data], interpolation="nearest")
    ax.set_axis_off()
    handles = [Patch(color=lut[i][:3], label=name) for i, name in enumerate(classes)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(png, dpi=100, bbox_inches="tight", format="png", metadata={"Software": PREVIEW_SOFTWARE})
    plt.close(fig)
