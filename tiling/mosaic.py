"""Whole-run outputs of a many-scene run: a mosaic per CRS that a GIS opens in one step (a GDAL VRT over
the maps, with the colour table and class names), its per-class areas and a preview.

Areas are counted on the mosaic, not summed over scenes, so the overlap of neighbouring tiles counts
once (the later map in path order wins where both have a class; nodata never hides a class). Scenes in
different CRSs get one mosaic each; summary.json lists them all.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from lut.toolkit.core.atomic import atomic_files
from lut.toolkit.core.errors import FormatError
from lut.toolkit.gis.legend import class_colours
from lut.toolkit.core.ownership import is_lut_preview, map_classes
from lut.toolkit.core.raster import is_metric

from .summary import area_summary, write_preview
from .writer import NODATA, map_legend
from lut.toolkit.core.formats import MOSAIC_FORMAT, RUN_SUMMARY_FORMAT

BLOCK = 2048


@dataclass
class MapGrid:
    path: Path
    crs: object
    transform: object
    width: int
    height: int


def _grid(path: Path) -> MapGrid:
    import rasterio

    with rasterio.open(path) as src:
        return MapGrid(Path(path), src.crs, src.transform, src.width, src.height)


def group_by_crs(maps: list[Path]) -> dict[str, list[MapGrid]]:
    groups: dict[str, list[MapGrid]] = defaultdict(list)
    for path in maps:
        grid = _grid(path)
        key = grid.crs.to_string() if grid.crs else "none"
        groups[key].append(grid)
    return dict(groups)


def vrt_xml(grids: list[MapGrid], vrt: Path, classes: list[str]) -> str:
    """A VRT at the finest resolution of `grids` over their union, nearest-neighbour sources."""
    res = min(min(abs(g.transform.a), abs(g.transform.e)) for g in grids)
    left = min(g.transform.c for g in grids)
    top = max(g.transform.f for g in grids)
    right = max(g.transform.c + g.width * g.transform.a for g in grids)
    bottom = min(g.transform.f + g.height * g.transform.e for g in grids)
    width, height = int(round((right - left) / res)), int(round((top - bottom) / res))
    legend = map_legend(classes, np.zeros(len(classes), np.int64), None)
    colours = class_colours(classes)
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">']
    if grids[0].crs is not None:
        lines.append(f"  <SRS>{escape(grids[0].crs.to_wkt())}</SRS>")
    lines += [f"  <GeoTransform>{left!r}, {res!r}, 0.0, {top!r}, 0.0, {-res!r}</GeoTransform>",
              "  <Metadata>", f'    <MDI key="LUT_FORMAT">{MOSAIC_FORMAT}</MDI>',
              f'    <MDI key="class_names">{escape(",".join(classes))}</MDI>', "  </Metadata>",
              '  <VRTRasterBand dataType="Byte" band="1">', f"    <NoDataValue>{NODATA}</NoDataValue>",
              "    <ColorInterp>Palette</ColorInterp>", "    <Description>land-use class</Description>"]
    lines += legend.category_xml()
    lines.append("    <ColorTable>")
    for value in range(256):
        r, g, b, a = colours.get(value, (0, 0, 0, 0))
        lines.append(f'      <Entry c1="{r}" c2="{g}" c3="{b}" c4="{a}"/>')
    lines.append("    </ColorTable>")
    for grid in grids:
        t = grid.transform
        x0, y0 = (t.c - left) / res, (top - t.f) / res
        xs, ys = grid.width * abs(t.a) / res, grid.height * abs(t.e) / res
        source = os.path.relpath(grid.path, Path(vrt).parent)
        lines += ['    <ComplexSource resampling="nearest">',
                  f'      <SourceFilename relativeToVRT="1">{escape(source)}</SourceFilename>',
                  "      <SourceBand>1</SourceBand>",
                  f'      <SrcRect xOff="0" yOff="0" xSize="{grid.width}" ySize="{grid.height}"/>',
                  f'      <DstRect xOff="{x0!r}" yOff="{y0!r}" xSize="{xs!r}" ySize="{ys!r}"/>',
                  f"      <NODATA>{NODATA}</NODATA>", "    </ComplexSource>"]
    lines += ["  </VRTRasterBand>", "</VRTDataset>"]
    return "\n".join(lines) + "\n"


def mosaic_counts(vrt: Path, classes: int) -> tuple[np.ndarray, int, object, object]:
    """Per-class pixel counts of the mosaic, read block by block."""
    import rasterio
    from rasterio.windows import Window

    counts = np.zeros(classes, np.int64)
    nodata = 0
    with rasterio.open(vrt) as src:
        for y in range(0, src.height, BLOCK):
            for x in range(0, src.width, BLOCK):
                block = src.read(1, window=Window(x, y, min(BLOCK, src.width - x), min(BLOCK, src.height - y)))
                valid = block < classes
                counts += np.bincount(block[valid], minlength=classes)[:classes]
                nodata += int(block.size - valid.sum())
        return counts, nodata, src.transform, src.crs


def is_lut_mosaic(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return MOSAIC_FORMAT in f.read(4096)
    except OSError:
        return False


def is_run_summary(path: Path) -> bool:
    try:
        return json.loads(Path(path).read_text()).get("format") == RUN_SUMMARY_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def write_run_outputs(out: Path, maps: list[Path], scenes: dict) -> dict:
    """mosaic[.<crs>].vrt and .png per CRS, and summary.json with per-class areas per CRS; replaced together."""
    import rasterio

    maps = [m for m in maps if m.is_file()]
    groups = group_by_crs(maps) if maps else {}
    classes: list[str] = []
    if maps:
        with rasterio.open(maps[0]) as first:
            classes = map_classes(first.tags())
    names = {key: ("mosaic" if len(groups) == 1 else "mosaic." + key.replace(":", "_").replace("/", "_"))
             for key in groups}
    targets = [out / f"{names[k]}{ext}" for k in groups for ext in (".vrt", ".png")] + [out / "summary.json"]
    for target in targets:  # only lut's own whole-run outputs are ever replaced
        owned = {".vrt": is_lut_mosaic, ".png": is_lut_preview, ".json": is_run_summary}[target.suffix]
        if target.exists() and not owned(target):
            raise FormatError(f"{target} exists and was not written by lut; move it away to let the run write its "
                           "whole-run outputs")
    summary = {"format": RUN_SUMMARY_FORMAT, "scenes": scenes, "mosaics": []}
    with atomic_files(targets, overwrite=True) as temps:
        for i, (key, grids) in enumerate(groups.items()):
            vrt_tmp, png_tmp = temps[2 * i], temps[2 * i + 1]
            vrt_tmp.write_text(vrt_xml(grids, targets[2 * i], classes))
            counts, nodata, transform, crs = mosaic_counts(vrt_tmp, len(classes))
            areas = area_summary(counts, classes, transform, crs, nodata)
            write_preview(vrt_tmp, png_tmp, classes, class_colours(classes))
            summary["mosaics"].append({"crs": key, "vrt": targets[2 * i].name, "preview": targets[2 * i + 1].name,
                                       "maps": len(grids), "metric": is_metric(crs), **areas})
        temps[-1].write_text(json.dumps(summary, indent=2))
    return summary
