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
from rasterio.enums import ColorInterp

from lut.toolkit.gis.legend import Category, Legend, class_colours
from lut.toolkit.core.ownership import MAP_FORMAT, MAP_TAG
from lut.toolkit.core.formats import PROBABILITIES_FORMAT
from lut.toolkit.core.raster import gdal_env, overview_factors
from lut.toolkit.core.formats import MAP_NODATA as NODATA, CONFIDENCE_NODATA

#: the confidence band's nodata: 0 is a valid percentage, so nodata is 255 like the class band's


class ClassMapWriter:
    """Opens the output once and takes finished rows of the map in order."""

    def __init__(self, path: Path, src_profile: dict, classes: list[str], confidence: bool) -> None:
        import rasterio

        width, height = src_profile["width"], src_profile["height"]
        profile = {
            "driver": "GTiff", "width": width, "height": height, "count": 2 if confidence else 1,
            "dtype": "uint8", "nodata": NODATA, "crs": src_profile.get("crs"), "transform": src_profile["transform"],
            "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate", "interleave": "band",
        }
        self.classes = classes
        self.confidence = confidence
        self.stack = contextlib.ExitStack()
        try:
            self.stack.enter_context(gdal_env(pam=False))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a scene without CRS is allowed, and warned about elsewhere
                self.dst = self.stack.enter_context(rasterio.open(path, "w", **profile))
        except BaseException:
            self.stack.close()
            raise
        self.dst.write_colormap(1, class_colours(classes))
        if confidence:
            self.dst.colorinterp = [ColorInterp.palette, ColorInterp.gray]
        self.dst.update_tags(class_names=",".join(classes), nodata_class=str(NODATA), **{MAP_TAG: MAP_FORMAT},
                             **{f"class_{i}": name for i, name in enumerate(classes)})
        self.dst.set_band_description(1, "land-use class")
        if confidence:
            self.dst.set_band_description(2, f"confidence of the winning class, percent ({CONFIDENCE_NODATA} = nodata)")
        self.counts = np.zeros(len(classes), np.int64)

    def write_rows(self, y0: int, classes: np.ndarray, confidence: np.ndarray | None,
                   counts: np.ndarray | None = None) -> None:
        """Rows `y0`.. of the map; `counts` (pixels per class) when the caller already knows them."""
        from rasterio.windows import Window

        h, w = classes.shape
        window = Window(0, y0, w, h)
        self.dst.write(classes, 1, window=window)
        if self.confidence and confidence is not None:
            self.dst.write(confidence, 2, window=window)
        if counts is None:
            counts = np.bincount(classes.ravel(), minlength=256)[: len(self.classes)]  # nodata lands in 255
        self.counts += counts

    def close(self) -> None:
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


def open_band_raster(path: Path, src_profile: dict, count: int, nodata: int | None):
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


def map_legend(classes: list[str], counts: np.ndarray, pixel_area_m2: float | None, confidence: bool) -> Legend:
    colours = class_colours(classes)
    categories = [Category(i, name, colours[i], int(n), None if pixel_area_m2 is None else n * pixel_area_m2 / 1e6)
                  for i, (name, n) in enumerate(zip(classes, counts.tolist()))]
    notes = {2: f"confidence of the winning class, percent ({CONFIDENCE_NODATA} = nodata)"} if confidence else {}
    return Legend(categories, NODATA, notes)


def to_cog(gtiff: Path, target: Path) -> None:
    """Rewrite as a Cloud Optimized GeoTIFF: tiled, internal overviews by nearest neighbour (classes stay
    classes, never averaged into other classes), overviews after the header and before the data.

    GDAL's COG driver (3.10) marks a palette band's second band as alpha in the TIFF itself, so the
    confidence band would draw as transparency; its documented equivalent, GTiff with
    COPY_SRC_OVERVIEWS=YES, keeps it a plain band: PHOTOMETRIC=MINISBLACK with the colour table, which
    GDAL (and so QGIS) still reads as a palette band."""
    import rasterio
    import rasterio.shutil
    from rasterio.enums import Resampling

    with gdal_env(pam=False):
        with rasterio.open(gtiff, "r+") as src:
            factors = overview_factors(src.width, src.height)
            if factors:
                src.build_overviews(factors, Resampling.nearest)
            two_bands = src.count == 2
        rasterio.shutil.copy(gtiff, target, driver="GTiff", tiled=True, blockxsize=256, blockysize=256,
                             compress="DEFLATE", copy_src_overviews=True,
                             **({"photometric": "MINISBLACK"} if two_bands else {}))
