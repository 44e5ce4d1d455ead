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
from lut.toolkit.core.areas import row_areas_m2, weighted_counts
from lut.toolkit.gis.legend import class_colours, is_lut_legend, qml_style
from lut.toolkit.gis.stac_items import item_path_of, run_collection
from lut.toolkit.core.ownership import is_lut_preview, map_classes
from lut.toolkit.core.raster import is_metric, overview_factors

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
    lines.append("    <ColorTable>")  # the classes only: a legend lists names, not 256 numbers
    for value in range(len(classes)):
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
    lines.append("  </VRTRasterBand>")
    factors = overview_factors(width, height)
    if factors:  # virtual overviews from the maps' own (nearest): pyramids for GIS clients (GDAL >= 3.2)
        lines.append(f'  <OverviewList resampling="nearest">{" ".join(map(str, factors))}</OverviewList>')
    lines.append("</VRTDataset>")
    return "\n".join(lines) + "\n"


def mosaic_counts(vrt: Path, classes: int) -> tuple[np.ndarray, int, object, object, np.ndarray | None]:
    """Per-class pixels (and m², `lut.toolkit.core.areas`) of the mosaic, read block by block."""
    import rasterio
    from rasterio.windows import Window

    counts = np.zeros(classes, np.int64)
    nodata = 0
    with rasterio.open(vrt) as src:
        rows = row_areas_m2(src.transform, src.crs, src.height)
        area_m2 = None if rows is None else np.zeros(classes)
        for y in range(0, src.height, BLOCK):
            for x in range(0, src.width, BLOCK):
                block = src.read(1, window=Window(x, y, min(BLOCK, src.width - x), min(BLOCK, src.height - y)))
                valid = block < classes
                counts += np.bincount(block[valid], minlength=classes)[:classes]
                nodata += int(block.size - valid.sum())
                if area_m2 is not None:
                    area_m2 += weighted_counts(block, rows, y, classes)
        return counts, nodata, src.transform, src.crs, area_m2


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


MOSAIC_KINDS = ("vrt", "cog")


def _is_lut_mosaic_tif(path: Path) -> bool:
    from lut.toolkit.core.ownership import raster_tags

    return raster_tags(path).get("LUT_FORMAT") == MOSAIC_FORMAT


def write_run_outputs(out: Path, maps: list[Path], scenes: dict, kind: str = "vrt") -> dict:
    """mosaic[.<crs>].vrt (or, `kind` cog, one Cloud Optimized GeoTIFF .tif), its QGIS style and .png per
    CRS, and summary.json with per-class areas per CRS; replaced together."""
    import rasterio

    maps = [m for m in maps if m.is_file()]
    groups = group_by_crs(maps) if maps else {}
    classes: list[str] = []
    if maps:
        with rasterio.open(maps[0]) as first:
            classes = map_classes(first.tags())
    names = {key: ("mosaic" if len(groups) == 1 else "mosaic." + key.replace(":", "_").replace("/", "_"))
             for key in groups}
    first = ".tif" if kind == "cog" else ".vrt"
    targets = ([out / f"{names[k]}{ext}" for k in groups for ext in (first, ".png", ".qml")]
               + [out / "collection.json", out / "summary.json"])
    for target in targets:  # only lut's own whole-run outputs are ever replaced
        owned = {".vrt": is_lut_mosaic, ".tif": _is_lut_mosaic_tif, ".png": is_lut_preview, ".qml": is_lut_legend,
                 ".json": is_run_summary if target.name == "summary.json" else _is_run_collection}[target.suffix]
        if target.exists() and not owned(target):
            raise FormatError(f"{target} exists and was not written by lut; move it away to let the run write its "
                           "whole-run outputs")
    summary = {"format": RUN_SUMMARY_FORMAT, "scenes": scenes, "mosaics": []}
    with atomic_files(targets, overwrite=True) as temps:
        for i, (key, grids) in enumerate(groups.items()):
            main, png_tmp, qml_tmp = temps[3 * i:3 * i + 3]
            vrt_tmp = main if kind == "vrt" else out / f".{names[key]}.tmp-mosaic.vrt"
            try:
                vrt_tmp.write_text(vrt_xml(grids, out / f"{names[key]}.vrt", classes))
                counts, nodata, transform, crs, area_m2 = mosaic_counts(vrt_tmp, len(classes))
                if kind == "cog":
                    _vrt_to_cog(vrt_tmp, main)
                write_preview(vrt_tmp, png_tmp, classes, class_colours(classes))
            finally:
                if kind == "cog":
                    vrt_tmp.unlink(missing_ok=True)
            qml_tmp.write_text(qml_style(map_legend(classes, counts, area_m2)))
            areas = area_summary(counts, classes, transform, crs, nodata, area_m2)
            summary["mosaics"].append({"crs": key, kind: targets[3 * i].name, "preview": targets[3 * i + 1].name,
                                       "style": targets[3 * i + 2].name, "maps": len(grids), "metric": is_metric(crs),
                                       **areas})
        items = [item_path_of(m) for m in maps if item_path_of(m).is_file()]
        run_collection(temps[-2], out, items, out.resolve().name or "lut-run")
        summary["collection"] = "collection.json"
        temps[-1].write_text(json.dumps(summary, indent=2))
    return summary


def _is_run_collection(path: Path) -> bool:
    try:
        data = json.loads(Path(path).read_text())
        return data.get("type") == "Collection" and data.get("lut:kind") == "run"
    except (OSError, ValueError, AttributeError):
        return False


def _vrt_to_cog(vrt: Path, target: Path) -> None:
    """The mosaic as one Cloud Optimized GeoTIFF: classes kept by nearest overviews, the lut marker kept."""
    import rasterio
    import rasterio.shutil

    from lut.toolkit.core.raster import gdal_env

    with gdal_env(pam=False):
        rasterio.shutil.copy(vrt, target, driver="COG", compress="DEFLATE", blocksize=512, resampling="NEAREST",
                             overview_resampling="NEAREST")
