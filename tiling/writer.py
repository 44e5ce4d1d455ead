"""The land-use GeoTIFF: uint8 classes with 255 = nodata, colour table, class names, tiled and compressed."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from lut.toolkit.ownership import MAP_FORMAT, MAP_TAG
from lut.toolkit.synthetic import CLASS_COLOURS

NODATA = 255
#: the confidence band's nodata: 0 is a valid percentage, so nodata is 255 like the class band's
CONFIDENCE_NODATA = 255


#: name fragments that mean one of the land-use colours (checked in this order)
SYNONYMS: dict[str, tuple[str, ...]] = {
    "water": ("water", "river", "lake", "sea", "ocean", "pond"),
    "wetland": ("wetland", "marsh", "swamp", "mangrove"),
    "forest": ("forest", "tree", "wood"),
    "cropland": ("crop", "field", "farm", "agri"),
    "barren": ("barren", "bare", "desert", "sand", "rock"),
    "urban": ("urban", "resident", "city", "build", "industr"),
}
GRASS = (150, 205, 90)


def class_colours(classes: list[str]) -> dict[int, tuple[int, int, int, int]]:
    """Land-use names (and synonyms) get their conventional colour, each colour used once; other classes
    get distinct tab20 colours."""
    import matplotlib

    tab = matplotlib.colormaps["tab20"]
    table, used = {}, set()
    for i, name in enumerate(classes):
        lower = name.lower()
        rgb = next((CLASS_COLOURS[k] for k, words in SYNONYMS.items() if any(w in lower for w in words)), None)
        if rgb is None and any(w in lower for w in ("grass", "meadow", "pasture")):
            rgb = GRASS
        if rgb is None or rgb in used:
            candidates = [tuple(int(255 * v) for v in tab(j % 20)[:3]) for j in range(i, i + 20)]
            rgb = max(candidates, key=lambda c: min((sum((a - b) ** 2 for a, b in zip(c, u)) for u in used),
                                                    default=0))
        used.add(rgb)
        table[i] = (*rgb, 255)
    table[NODATA] = (0, 0, 0, 0)
    return table


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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a scene without CRS is allowed, and warned about elsewhere
            self.dst = rasterio.open(path, "w", **profile)
        self.dst.write_colormap(1, class_colours(classes))
        self.dst.update_tags(class_names=",".join(classes), nodata_class=str(NODATA), **{MAP_TAG: MAP_FORMAT},
                             **{f"class_{i}": name for i, name in enumerate(classes)})
        self.dst.set_band_description(1, "land-use class")
        if confidence:
            self.dst.set_band_description(2, f"confidence of the winning class, percent ({CONFIDENCE_NODATA} = nodata)")
        self.counts = np.zeros(len(classes), np.int64)

    def write_rows(self, y0: int, classes: np.ndarray, confidence: np.ndarray | None) -> None:
        from rasterio.windows import Window

        h, w = classes.shape
        window = Window(0, y0, w, h)
        self.dst.write(classes, 1, window=window)
        if self.confidence and confidence is not None:
            self.dst.write(confidence, 2, window=window)
        valid = classes[classes != NODATA]
        self.counts += np.bincount(valid, minlength=len(self.classes))[: len(self.classes)]

    def close(self) -> None:
        self.dst.close()


def to_cog(gtiff: Path, target: Path) -> None:
    """Rewrite as a Cloud Optimized GeoTIFF (internal overviews by nearest neighbour: classes stay classes)."""
    import rasterio.shutil

    rasterio.shutil.copy(gtiff, target, driver="COG", compress="DEFLATE", overview_resampling="NEAREST",
                         blocksize=256)
