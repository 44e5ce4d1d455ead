"""`lut composite DATE... -o year.tif`: one map from several dates of the same place, as Impact Observatory
and Dynamic World make their annual maps.

Each input is the per-class probabilities of one date (`classify --probabilities`: the
NAME.probabilities.tif itself, or its map, whose summary names it). Each pixel gets the mean of the class
probabilities over the dates where it is valid (not nodata, not masked as cloud); the composite's class is
the largest mean (NAME.tif), its confidence that mean (NAME.confidence.tif), and NAME.observations.tif
counts the valid dates. A pixel no date saw is nodata.
Inputs on other grids are read on the first input's grid by nearest neighbour, as `lut change` does. The
composite is a lut map with its confidence, so `lut change` compares two composites directly.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lut.toolkit.core.atomic import atomic_files
from lut.toolkit.core.space import check_free_space, raster_bytes
from lut.toolkit.core.errors import InputError
from lut.toolkit.core.formats import COMPOSITE_FORMAT, CONFIDENCE_NODATA, MAP_NODATA, MAP_TAG, SUMMARY_FORMAT
from lut.toolkit.core.ownership import (check_output_file, confidence_path_of, is_lut_confidence, is_lut_map,
                                        is_lut_probabilities, is_lut_stac_item, is_lut_summary, raster_tags)
from lut.toolkit.core.paths import recorded
from lut.toolkit.core.raster import gdal_env, on_grid, overview_factors, written_as_cog
from lut.toolkit.gis.legend import class_colours, is_lut_legend, sidecars, write_legend
from lut.toolkit.gis.stac_items import class_item, item_path_of

from .classify import summary_path_of
from .summary import area_summary
from .writer import ClassMapWriter, map_legend, open_band_raster

STRIP_ROWS = 256


@dataclass
class CompositeConfig:
    inputs: list[Path]  # probabilities files, or maps classified with `probabilities`
    output: Path
    overwrite: bool = False
    strip_rows: int = STRIP_ROWS
    cog: bool = False  # the composite, its confidence and observation count as Cloud Optimized GeoTIFFs

    def check(self) -> None:
        if len(self.inputs) < 2:
            raise InputError("a composite needs at least two dates: give two or more inputs")
        if self.strip_rows < 1:
            raise InputError(f"`strip_rows` must be at least 1, got {self.strip_rows}")


@dataclass
class CompositeResult:
    output: Path
    summary_path: Path
    summary: dict
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def probabilities_of(path: Path) -> Path:
    """The probabilities file an input names: itself, or the one its map's summary records."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"composite input {path} does not exist")
    if is_lut_probabilities(path):
        return path
    if is_lut_map(path):
        summary = summary_path_of(path)
        named = json.loads(summary.read_text()).get("probabilities") if summary.is_file() else None
        if named and is_lut_probabilities(path.parent / named):  # relative to the map (absolute before 2026-12)
            return path.parent / named
        raise InputError(f"{path} has no per-class probabilities: classify its scene again with `probabilities`")
    raise InputError(f"composite input {path} is not a lut map or probabilities file: classify each date with "
                     "`probabilities` and give those files")


def _grid(path: Path) -> dict:
    import rasterio

    with rasterio.open(path) as src:
        return {"crs": src.crs, "transform": src.transform, "width": src.width, "height": src.height,
                "count": src.count, "classes": src.tags().get("class_names", "").split(",")}


def composite_strip(stacks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class, confidence (percent) and valid-date count of one strip from each date's (K, h, w) uint8
    probabilities (255 = not valid that date)."""
    total = np.zeros(stacks[0].shape, np.float32)
    seen = np.zeros(stacks[0].shape[1:], np.uint8)
    for probs in stacks:
        valid = probs[0] != CONFIDENCE_NODATA
        total[:, valid] += probs[:, valid]
        seen += valid
    mean = total / np.maximum(seen, 1)
    classes = np.where(seen > 0, mean.argmax(0), MAP_NODATA).astype(np.uint8)
    confidence = np.where(seen > 0, np.round(mean.max(0)), CONFIDENCE_NODATA).astype(np.uint8)
    return classes, confidence, seen


def composite(cfg: CompositeConfig) -> CompositeResult:
    """Average the per-class probabilities of several dates into one map with its summary and legend.

    Raises:
        InputError: fewer than two inputs, inputs without probabilities, other class lists, no CRS to align.
        OwnershipError: an output exists that lut may not replace.
    """
    start = time.perf_counter()
    cfg.check()
    files = [probabilities_of(p) for p in cfg.inputs]
    grids = [_grid(p) for p in files]
    grid = grids[0]
    for path, g in zip(files[1:], grids[1:]):
        if g["classes"] != grid["classes"]:
            raise InputError(f"{path} has other classes than {files[0]}: composite dates mapped by one model")
        if g["crs"] is None and g["transform"] != grid["transform"]:
            raise InputError(f"{path} lies on another grid and has no CRS to align it by")
    output = Path(cfg.output)
    aux, qml = sidecars(output)
    summary_path, seen_path = summary_path_of(output), observations_path_of(output)
    conf_path = confidence_path_of(output)
    owned = {output: is_lut_map, conf_path: is_lut_confidence, seen_path: is_lut_observations,
             summary_path: is_lut_summary, aux: is_lut_legend, qml: is_lut_legend,
             item_path_of(output): is_lut_stac_item}
    for path, ours in owned.items():
        check_output_file(path, cfg.overwrite, ours, [*cfg.inputs, *files], "output")
    classes = grid["classes"]
    check_free_space(output, raster_bytes(grid["width"], grid["height"], 3) * (2 if cfg.cog else 1),
                     f"{grid['width']:,} x {grid['height']:,} px x 3 rasters")
    with gdal_env(), atomic_files(list(owned), cfg.overwrite) as (t_map, t_conf, t_seen, t_summary, t_aux, t_qml,
                                                                  t_item):
        with written_as_cog([t_map, t_conf, t_seen], cfg.cog) as staged:
            counts, area_m2, histogram = _write(files, grid, classes, tuple(staged), cfg.strip_rows)
        summary = area_summary(counts, classes, grid["transform"], grid["crs"], histogram[0], area_m2)
        summary.update(format=SUMMARY_FORMAT, kind="composite", map=output.name, confidence=conf_path.name,
                       observations_raster=seen_path.name, inputs=[recorded(p, output.parent) for p in files],
                       observations={str(k): int(v) for k, v in enumerate(histogram) if v},
                       aligned="nearest neighbour onto the first input's grid"
                       if any(g != grid for g in grids[1:]) else "same grid")
        write_legend(map_legend(classes, counts, area_m2), t_aux, t_qml)
        t_summary.write_text(json.dumps(summary, indent=2))
        class_item(t_map, t_item, output.stem, classes, class_colours(classes), {
            "confidence": (t_conf, ["data"], "mean probability of the class, %"),
            "observations": (t_seen, ["data"], "valid dates averaged"),
            "summary": (t_summary, ["metadata"], "areas and observations"), "aux": (t_aux, ["metadata"], "categories"),
            "qml": (t_qml, ["metadata"], "QGIS style")}, {"lut:kind": "composite", "lut:dates": len(files)},
            final_dir=output.parent)
    return CompositeResult(output, summary_path, summary, time.perf_counter() - start)


def observations_path_of(output: Path) -> Path:
    return Path(output).with_suffix(".observations.tif")


def is_lut_observations(path: Path) -> bool:
    return Path(path).is_file() and raster_tags(path).get(MAP_TAG) == COMPOSITE_FORMAT


def _write(files: list[Path], grid: dict, classes: list[str], targets: tuple[Path, Path, Path], strip_rows: int):
    """The composite map, its confidence and its observation count, strip by strip."""
    from rasterio.windows import Window

    target, conf_target, seen_target = targets
    histogram = np.zeros(len(files) + 1, np.int64)  # pixels seen by 0, 1, ... dates
    with contextlib.ExitStack() as stack:
        writer = ClassMapWriter(target, grid, classes, conf_target)
        stack.callback(writer.close)
        seen_dst, seen_stack = open_band_raster(seen_target, grid, 1, None)
        stack.callback(seen_stack.close)
        seen_dst.update_tags(**{MAP_TAG: COMPOSITE_FORMAT})
        seen_dst.set_band_description(1, f"valid observations (dates) averaged into {Path(target).name}")
        sources = [stack.enter_context(on_grid(p, grid["crs"], grid["transform"], grid["width"], grid["height"],
                                                        CONFIDENCE_NODATA)) for p in files]
        for y0 in range(0, grid["height"], strip_rows):
            window = Window(0, y0, grid["width"], min(strip_rows, grid["height"] - y0))
            cls, conf, seen = composite_strip([src.read(window=window) for src in sources])
            writer.write_rows(y0, cls, conf)
            seen_dst.write(seen, 1, window=window)
            histogram += np.bincount(seen.ravel(), minlength=len(files) + 1)
        factors = overview_factors(grid["width"], grid["height"])
        if factors:
            from rasterio.enums import Resampling

            seen_dst.build_overviews(factors, Resampling.nearest)
    return writer.counts.copy(), writer.area_m2, histogram
