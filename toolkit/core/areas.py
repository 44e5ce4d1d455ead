"""Areas of pixels, defined once for every table lut writes (summaries, attribute tables, change matrices,
sample designs and area estimates).

- A projected CRS in metres: every pixel has the grid's area (|a·e - b·d| m²), the area on the projected
  plane, as GDAL and OGR count it.
- A geographic CRS (degrees): each row of pixels has its area on the WGS84 ellipsoid, from the closed-form
  area of the zone between two parallels, `2π b² ... ` per radian of longitude (authalic latitude). It is
  the area an equal-area projection such as EPSG:6933 (which `lut vectorize` uses) gives the same cells,
  and it agrees with pyproj's `Geod` (geodesic polygons) to 1e-6 for cells up to 0.05° (tested; geodesic
  edges bulge poleward of the parallels that bound a cell, by an amount growing with its width squared).
- Anything else (no CRS, feet, other units): no km², pixels only.
"""

from __future__ import annotations

import math

import numpy as np

from .raster import is_metric, pixel_area

WGS84_A = 6378137.0
WGS84_F = 1 / 298.257223563
METHOD_PROJECTED = "projected grid: pixel width x height in the CRS's metres"
METHOD_ELLIPSOID = "WGS84 ellipsoid: exact area of each row's cells between their parallels"


def _zone(lat_deg: np.ndarray) -> np.ndarray:
    """Area (m²) between the equator and latitude φ per radian of longitude on the WGS84 ellipsoid."""
    e2 = WGS84_F * (2 - WGS84_F)
    e = math.sqrt(e2)
    b2 = (WGS84_A * (1 - WGS84_F)) ** 2
    s = np.sin(np.radians(lat_deg))
    return b2 / 2 * (s / (1 - e2 * s * s) + np.log((1 + e * s) / (1 - e * s)) / (2 * e))


def row_areas_m2(transform, crs, height: int) -> np.ndarray | None:
    """m² of one pixel in each of `height` rows, or None where km² cannot be stated."""
    if is_metric(crs):
        return np.full(height, pixel_area(transform))
    if crs is None or not crs.is_geographic or transform.b != 0 or transform.d != 0:
        return None
    edges = transform.f + transform.e * np.arange(height + 1)
    lats = np.clip(edges, -90.0, 90.0)
    return np.abs(np.diff(_zone(lats))) * math.radians(abs(transform.a))


def area_method(crs) -> str | None:
    if is_metric(crs):
        return METHOD_PROJECTED
    return METHOD_ELLIPSOID if crs is not None and crs.is_geographic else None


def weighted_counts(values: np.ndarray, row_areas: np.ndarray | None, y0: int, size: int) -> np.ndarray | None:
    """m² per value 0..size-1 of a (rows, width) strip starting at row `y0` (values >= size left out)."""
    if row_areas is None:
        return None
    h, w = values.shape
    rows = row_areas[y0:y0 + h]
    if rows.min() == rows.max():  # a projected grid: one area for every pixel (3% of a fast model's run)
        return np.bincount(values.ravel(), minlength=size)[:size] * rows[0]
    weights = np.repeat(rows, w)
    flat = values.ravel()
    keep = flat < size
    return np.bincount(flat[keep].astype(np.int64), weights=weights[keep], minlength=size)
