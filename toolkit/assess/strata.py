"""The strata of a map: its classes (a lut map) or its transitions (a lut change raster), and their pixel
counts from one streaming pass."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lut.toolkit.core.errors import InputError
from lut.toolkit.core.formats import CHANGE_FORMAT, MAP_TAG
from lut.toolkit.core.ownership import is_class_raster_tags, map_classes
from lut.toolkit.core.areas import row_areas_m2, weighted_counts
from lut.toolkit.core.raster import gdal_env, is_metric, pixel_area

#: pixels read at a time: memory stays flat whatever the map's width
STRIP_PIXELS = 1 << 22


@dataclass
class MapLegend:
    """A lut map or change raster: its grid, the value of each class (or transition) and its name."""

    path: Path
    kind: str  # "classes" | "transitions"
    names: list[str]  # index = raster value
    nodata: int
    crs: Any  # rasterio CRS or None
    transform: Any  # affine.Affine
    width: int
    height: int

    @property
    def pixel_area_m2(self) -> float | None:
        return pixel_area(self.transform) if is_metric(self.crs) else None

    def index(self, label: str) -> int | None:
        """The value a reference label names: a class name (any case), or its value as a number."""
        text = str(label).strip()
        lower = [n.lower() for n in self.names]
        if text.lower() in lower:
            return lower.index(text.lower())
        if text.lstrip("-").isdigit() and 0 <= int(text) < len(self.names):
            return int(text)
        if "->" in text:  # forest->urban for forest→urban
            return self.index(text.replace("->", "→"))
        return None


def read_legend(path: Path) -> MapLegend:
    """A lut map (classes) or lut change raster (transitions `before→after`); anything else is refused."""
    import rasterio
    from rasterio.errors import RasterioIOError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"map {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as src:
                tags, grid = src.tags(), (src.crs, src.transform, src.width, src.height, src.nodata)
    except RasterioIOError as exc:
        raise InputError(f"map {path} is not a raster GDAL can read") from exc
    crs, transform, width, height, nodata = grid
    if tags.get(MAP_TAG) == CHANGE_FORMAT:
        classes = tags.get("class_names", "").split(",")
        names = [f"{a}→{b}" for a in classes for b in classes]
        return MapLegend(path, "transitions", names, int(nodata), crs, transform, width, height)
    if not is_class_raster_tags(tags):
        raise InputError(f"{path} is not a land-use map or change raster written by lut: assess a map of lut "
                         "classify or lut change")
    return MapLegend(path, "classes", map_classes(tags), int(nodata if nodata is not None else 255), crs, transform,
                     width, height)


def strips(legend: MapLegend, pixels: int = STRIP_PIXELS):
    """(first row, band-1 rows) of the map, about `pixels` at a time, through lut's capped GDAL cache."""
    import rasterio
    from rasterio.windows import Window

    rows = max(1, pixels // max(legend.width, 1))
    with gdal_env(), rasterio.open(legend.path) as src:
        for y0 in range(0, legend.height, rows):
            h = min(rows, legend.height - y0)
            yield y0, src.read(1, window=Window(0, y0, legend.width, h))


def count_values(legend: MapLegend) -> np.ndarray:
    """Pixels of each value 0..len(names)-1 (nodata and unknown values left out), in one streaming pass."""
    return tally(legend)[0]


def tally(legend: MapLegend) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels and m² of each value, in one streaming pass; m² as `lut.toolkit.core.areas` defines them
    (None where the CRS states no area)."""
    size = len(legend.names)
    counts = np.zeros(size, np.int64)
    rows = row_areas_m2(legend.transform, legend.crs, legend.height)
    areas = None if rows is None else np.zeros(size)
    for y0, data in strips(legend):
        counts += np.bincount(data.ravel(), minlength=size)[:size]
        if areas is not None:
            areas += weighted_counts(data, rows, y0, size)
    return counts, areas
