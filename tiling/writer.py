"""The land-use GeoTIFF: uint8 classes with 255 = nodata, colour table, class names, tiled and compressed.

Band 1 is a palette band; the optional band 2 (confidence) is a plain data band, never alpha: "unspecified"
in the TIFF, "Gray" in the `.aux.xml` lut writes beside the map with the category names and attribute
table (`map_legend`). GDAL's own PAM is switched off while writing, or it would leave a sidecar named
after the temporary file."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np

from lut.toolkit.gis.legend import Category, Legend, class_colours
from lut.toolkit.core.formats import CONFIDENCE_FORMAT, MAP_FORMAT, MAP_TAG
from lut.toolkit.core.formats import PROBABILITIES_FORMAT
from lut.toolkit.core.areas import row_areas_m2, weighted_counts
from lut.toolkit.core.raster import gdal_env, overview_factors
from lut.toolkit.core.formats import MAP_NODATA as NODATA, CONFIDENCE_NODATA

#: the confidence file's band: 0 is a valid percentage, so nodata is 255 like the class band's
CONFIDENCE_NOTE = f"confidence of the winning class, percent ({CONFIDENCE_NODATA} = nodata)"


class ClassMapWriter:
    """Opens the map once and takes finished rows in order: one paletted class band (lut-map/2), and with
    `confidence` (a path) the winning probability in its own one-band file, never an extra sample of the
    class file, so every reader, with or without GDAL's metadata, shows the map as classes."""

    def __init__(self, path: Path, src_profile: dict, classes: list[str], confidence: Path | None = None) -> None:
        self.classes = classes
        self.row_areas = row_areas_m2(src_profile["transform"], src_profile.get("crs"), src_profile["height"])
        self.area_m2 = np.zeros(len(classes)) if self.row_areas is not None else None
        self.dst, self.stack = open_band_raster(path, src_profile, 1, NODATA, photometric=None)
        try:
            self.dst.write_colormap(1, class_colours(classes))
            self.dst.update_tags(class_names=",".join(classes), nodata_class=str(NODATA), **{MAP_TAG: MAP_FORMAT},
                                 **{f"class_{i}": name for i, name in enumerate(classes)})
            self.dst.set_band_description(1, "land-use class")
            self.conf = None
            if confidence is not None:
                self.conf, conf_stack = open_band_raster(confidence, src_profile, 1, CONFIDENCE_NODATA)
                self.stack.push(conf_stack)
                self.conf.update_tags(**{MAP_TAG: CONFIDENCE_FORMAT}, map=Path(path).name)
                self.conf.set_band_description(1, CONFIDENCE_NOTE)
        except BaseException:
            self.stack.close()
            raise
        self.counts = np.zeros(len(classes), np.int64)

    def write_rows(self, y0: int, classes: np.ndarray, confidence: np.ndarray | None = None,
                   counts: np.ndarray | None = None) -> None:
        """Rows `y0`.. of the map; `counts` (pixels per class) when the caller already knows them."""
        from rasterio.windows import Window

        h, w = classes.shape
        window = Window(0, y0, w, h)
        self.dst.write(classes, 1, window=window)
        if self.conf is not None and confidence is not None:
            self.conf.write(confidence, 1, window=window)
        if counts is None:
            counts = np.bincount(classes.ravel(), minlength=256)[: len(self.classes)]  # nodata lands in 255
        self.counts += counts
        if self.area_m2 is not None:
            self.area_m2 += weighted_counts(classes, self.row_areas, y0, len(self.classes))

    def close(self, overviews: bool = True) -> None:
        """Build internal overviews (nearest for classes, average for confidence), then close."""
        from rasterio.enums import Resampling

        try:
            factors = overview_factors(self.dst.width, self.dst.height)
            if overviews and factors:
                self.dst.build_overviews(factors, Resampling.nearest)  # classes stay classes
                if self.conf is not None:
                    self.conf.build_overviews(factors, Resampling.average)
        finally:
            self.stack.close()


class ProbabilityWriter:
    """Per-class probabilities beside a map: one uint8 band per class in percent (0-100), 255 = nodata,
    each band named after its class. It adds K bytes per pixel before compression (six classes: six times
    the class band); `lut composite` averages them over dates."""

    def __init__(self, path: Path, src_profile: dict, classes: list[str]) -> None:
        self.dst, self.stack = open_band_raster(path, src_profile, len(classes), CONFIDENCE_NODATA)
        self.dst.update_tags(class_names=",".join(classes), **{MAP_TAG: PROBABILITIES_FORMAT})
        for i, name in enumerate(classes, start=1):
            self.dst.set_band_description(i, f"probability of {name}, percent ({CONFIDENCE_NODATA} = nodata)")

    def write_rows(self, y0: int, probabilities: np.ndarray) -> None:
        from rasterio.windows import Window

        k, h, w = probabilities.shape
        self.dst.write(probabilities, window=Window(0, y0, w, h))

    def close(self) -> None:
        self.stack.close()


def open_band_raster(path: Path, src_profile: dict, count: int, nodata: int | None,
                     photometric: str | None = "MINISBLACK"):
    """A tiled, compressed uint8 GeoTIFF of `count` plain (grey) bands on the scene's grid, GDAL's PAM off;
    returns the dataset and the ExitStack that closes it."""
    import rasterio

    profile = {
        "driver": "GTiff", "width": src_profile["width"], "height": src_profile["height"], "count": count,
        "dtype": "uint8", "nodata": nodata, "crs": src_profile.get("crs"), "transform": src_profile["transform"],
        "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate", "interleave": "band",
        "photometric": "MINISBLACK",
    }
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(gdal_env(pam=False))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dst = stack.enter_context(rasterio.open(path, "w", **profile))
    except BaseException:
        stack.close()
        raise
    return dst, stack


def map_legend(classes: list[str], counts: np.ndarray, area_m2: np.ndarray | None) -> Legend:
    """Categories with pixels and km² (`area_m2` per class, None where the CRS states no area)."""
    colours = class_colours(classes)
    categories = [Category(i, name, colours[i], int(n), None if area_m2 is None else float(area_m2[i]) / 1e6)
                  for i, (name, n) in enumerate(zip(classes, counts.tolist()))]
    return Legend(categories, NODATA, {})
