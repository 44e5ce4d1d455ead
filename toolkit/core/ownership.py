"""What `--overwrite` may replace: only what lut itself wrote, never an input, never anything else.

lut marks its outputs so they can be recognised: `lut.json` (format "lut") in bundles, backbones and
ONNX exports, `compare.json` in compare results, a `LUT_FORMAT` tag in a map's GeoTIFF metadata, a
format field in a map's summary and a `Software: lut` text chunk in its preview PNG. Every check here runs
before any training, export or inference starts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from .atomic import check_writable_dir, refuse_existing
from .bundle import is_lut_directory
from .errors import InputError, OwnershipError
from .formats import (COMPARE_FORMAT, CONFIDENCE_FORMAT, MAP_FORMATS, MAP_TAG, MOSAIC_FORMAT, PREVIEW_SOFTWARE,
                      PROBABILITIES_FORMAT, SUMMARY_FORMAT)



def _resolved(path: Path) -> Path:
    return Path(path).expanduser().resolve()


def check_not_input(target: Path, inputs: Iterable[Path | str | None], what: str = "output") -> None:
    """Refuse an output that is an input, holds an input, or lies inside an input directory."""
    out = _resolved(target)
    for item in inputs:
        if item is None:
            continue
        src = _resolved(Path(item))
        if out == src:
            raise OwnershipError(f"{what} {target} is also an input of this command; lut never writes over its "
                           "inputs: choose another output path")
        if src.is_relative_to(out):
            raise OwnershipError(f"{what} {target} contains the input {item}; lut never replaces its inputs: "
                           "choose another output path")
        if Path(item).is_dir() and out.is_relative_to(src):
            raise OwnershipError(f"{what} {target} lies inside the input folder {item}; lut never writes into its "
                           "inputs: choose an output outside it")


def is_compare_directory(path: Path) -> bool:
    """compare.json with lut's format field (or, from lut before it had one, its fingerprint id)."""
    try:
        stamp = json.loads((Path(path) / "compare.json").read_text())
        return stamp.get("format") == COMPARE_FORMAT or ("format" not in stamp and {"id", "train"} <= set(stamp))
    except (OSError, ValueError, AttributeError):
        return False


def check_output_dir(target: Path, overwrite: bool, kinds: tuple[str, ...], inputs: Iterable = (),
                     what: str = "output") -> None:
    """An output directory: new, or (with --overwrite) a lut directory of one of `kinds`."""
    target = Path(target)
    check_not_input(target, inputs, what)
    if target.exists() or target.is_symlink():
        refuse_existing(target, overwrite, what)
        if target.is_symlink() or not target.is_dir():
            raise OwnershipError(f"{what} {target} exists and is not a lut output directory; `overwrite=True` replaces "
                           "only what lut wrote: choose another output path")
        owned = is_compare_directory(target) if kinds == ("compare",) else is_lut_directory(target, kinds)
        if not owned and (is_lut_directory(target) or is_compare_directory(target)):
            raise OwnershipError(f"{what} {target} holds another kind of lut output than a {' or '.join(kinds)}; "
                           "`overwrite=True` replaces only the same kind: choose another output path")
        if not owned:
            raise OwnershipError(f"{what} {target} exists and was not written by lut (no lut {' or '.join(kinds)} "
                           "marker); `overwrite=True` replaces only what lut wrote: choose another output path")
    check_writable_dir(target.parent, create=True)


def raster_tags(path: Path) -> dict:
    """The GeoTIFF's dataset tags; {} for anything GDAL cannot open (which is not lut's then)."""
    import warnings

    import rasterio

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as src:
                return dict(src.tags())
    except Exception:  # noqa: BLE001 - GDAL raises a zoo of types for what is not a raster
        return {}


def is_lut_map(path: Path) -> bool:
    return is_lut_map_tags(raster_tags(path))


def is_lut_map_tags(tags: dict) -> bool:
    # lut before the format tag wrote exactly these two tags on every map
    legacy = MAP_TAG not in tags and {"class_names", "nodata_class"} <= set(tags)
    return tags.get(MAP_TAG) in MAP_FORMATS or legacy


def confidence_path_of(output: Path) -> Path:
    """A map's confidence companion: MAP.confidence.tif."""
    return Path(output).with_suffix(".confidence.tif")


def is_lut_confidence(path: Path) -> bool:
    return Path(path).is_file() and raster_tags(path).get(MAP_TAG) == CONFIDENCE_FORMAT


def is_lut_stac_item(path: Path) -> bool:
    """A STAC Item lut wrote for one of its rasters (its properties carry `lut:kind`)."""
    try:
        data = json.loads(Path(path).read_text())
        return data.get("type") == "Feature" and "lut:kind" in data.get("properties", {})
    except (OSError, ValueError, AttributeError):
        return False


def is_lut_probabilities(path: Path) -> bool:
    return Path(path).is_file() and raster_tags(path).get(MAP_TAG) == PROBABILITIES_FORMAT


def is_class_raster_tags(tags: dict) -> bool:
    """A raster of lut classes that change, vectorize and assess read: a map (any version) or a whole-run
    mosaic (VRT or COG), which carries the same class names."""
    return is_lut_map_tags(tags) or tags.get(MAP_TAG) == MOSAIC_FORMAT


def is_class_raster(path: Path) -> bool:
    return is_class_raster_tags(raster_tags(path))


def map_classes(tags: dict) -> list[str]:
    """The class names a lut map records, in value order."""
    if "class_0" in tags:
        names, i = [], 0
        while f"class_{i}" in tags:
            names.append(tags[f"class_{i}"])
            i += 1
        return names
    return [c for c in tags.get("class_names", "").split(",") if c]


def is_lut_summary(path: Path) -> bool:
    try:
        summary = json.loads(Path(path).read_text())
        legacy = "format" not in summary and {"classes", "mapped_pixels", "nodata_pixels", "scene"} <= set(summary)
        return summary.get("format") == SUMMARY_FORMAT or legacy
    except (OSError, ValueError, AttributeError):
        return False


def is_lut_preview(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return getattr(img, "text", {}).get("Software") == PREVIEW_SOFTWARE
    except Exception:  # noqa: BLE001 - not an image lut wrote
        return False


def check_output_file(target: Path, overwrite: bool, ours: Callable[[Path], bool], inputs: Iterable = (),
                      what: str = "output") -> None:
    """An output file: new, or (with --overwrite) one that `ours` recognises as lut's."""
    target = Path(target)
    check_not_input(target, inputs, what)
    if target.is_dir():
        raise InputError(f"{what} {target} is a directory; pass a file path")
    if target.exists() or target.is_symlink():
        refuse_existing(target, overwrite, what)
        if target.is_symlink() or not target.is_file() or not ours(target):
            raise OwnershipError(f"{what} {target} exists and was not written by lut; `overwrite=True` replaces only "
                           "lut's own outputs: choose another path")
    if target.name.endswith(("/", "\\")) or target.name in ("", ".", ".."):
        raise InputError(f"{what} {target} is not a file name")
    check_writable_dir(target.parent)
