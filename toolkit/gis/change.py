"""`lut change`: two land-use maps -> a from-to change raster and its transition matrix.

The maps are read in strips of rows, so memory stays flat whatever their size. When AFTER's grid differs
from BEFORE's (CRS, resolution or extent), AFTER is warped onto BEFORE's grid with nearest-neighbour
resampling on the fly (a GDAL WarpedVRT), and the outputs say so. A pixel counts only where both maps are
valid, so the matrix sums exactly to the valid area common to both maps. With `--min-confidence P`, a
change where either map's confidence is below P is counted as unchanged (the BEFORE class) and reported.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lut.toolkit.core.space import check_free_space, raster_bytes
from lut.toolkit.core.atomic import atomic_files
from lut.toolkit.core.errors import InputError, warn
from .legend import Category, Legend, class_colours, is_lut_legend, sidecars, write_legend
from lut.toolkit.core.ownership import (MAP_TAG, check_output_file, confidence_path_of, is_lut_confidence,
                                        is_class_raster_tags, is_lut_preview, is_lut_stac_item, map_classes,
                                        raster_tags)
from lut.toolkit.core.paths import recorded
from lut.toolkit.core.areas import row_areas_m2, weighted_counts
from lut.toolkit.core.raster import gdal_env, is_metric, on_grid, overview_factors, pixel_area, written_as_cog
from .stac_items import class_item, item_path_of
from .transitions import MARKDOWN_MARK, MATRIX_HEADER, Transitions, transition_name
from lut.toolkit.core.formats import CHANGE_FORMAT, MAP_NODATA

#: rows read, coded and written at a time: 512 x 8192 pixels is a few MB per array
STRIP_ROWS = 512
NEAREST_NOTE = "AFTER was warped onto BEFORE's grid with nearest-neighbour resampling"


@dataclass
class ChangeConfig:
    before: Path | str  # maps; scenes as classify takes them (str) for `change_scenes`
    after: Path | str
    output: Path
    min_confidence: float | None = None  # percent
    preview: Path | None = None
    overwrite: bool = False
    strip_rows: int = STRIP_ROWS
    cog: bool = False  # write the change raster as a Cloud Optimized GeoTIFF

    def check(self) -> None:
        if self.min_confidence is not None and not 0 <= self.min_confidence <= 100:
            raise InputError(f"`min_confidence` is a percentage from 0 to 100, got {self.min_confidence}")


@dataclass
class ChangeOutputs:
    """The change raster and the sidecars that change with it."""

    raster: Path
    json: Path
    matrix_csv: Path
    classes_csv: Path
    markdown: Path
    aux: Path
    qml: Path
    stac: Path
    preview: Path | None = None

    @classmethod
    def of(cls, output: Path, preview: Path | None = None) -> ChangeOutputs:
        output = Path(output)
        stem = output.with_suffix("")
        aux, qml = sidecars(output)
        return cls(output, Path(f"{stem}.json"), Path(f"{stem}.matrix.csv"), Path(f"{stem}.classes.csv"),
                   Path(f"{stem}.md"), aux, qml, item_path_of(output), None if preview is None else Path(preview))

    def named(self) -> dict[str, Path]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass
class ChangeResult:
    outputs: ChangeOutputs
    transitions: Transitions
    aligned: str
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class MapInfo:
    path: Path
    classes: list[str]
    crs: object
    transform: object
    width: int
    height: int
    bands: int
    bounds: tuple

    @property
    def confidence(self) -> tuple[Path, int] | None:
        """(file, band) of the map's confidence: MAP.confidence.tif (lut-map/2), else band 2 of a lut-map/1."""
        companion = confidence_path_of(self.path)
        if is_lut_confidence(companion):
            return companion, 1
        return (self.path, 2) if self.bands >= 2 else None


def _first_line(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline().rstrip("\n")
    except OSError:
        return ""


def is_change_raster(path: Path) -> bool:
    return raster_tags(path).get(MAP_TAG) == CHANGE_FORMAT


def is_change_json(path: Path) -> bool:
    try:
        return json.loads(Path(path).read_text()).get("format") == CHANGE_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


_OWNED: dict[str, Callable[[Path], bool]] = {
    "raster": is_change_raster, "json": is_change_json,
    "matrix_csv": lambda p: _first_line(p) == ",".join(MATRIX_HEADER),
    "classes_csv": lambda p: _first_line(p).startswith("class,before_pixels,"),
    "markdown": lambda p: _first_line(p) == MARKDOWN_MARK,
    "aux": is_lut_legend, "qml": is_lut_legend, "preview": is_lut_preview, "stac": is_lut_stac_item,
}


def read_map_info(path: Path, role: str) -> MapInfo:
    """The grid and classes of a lut map, from one open of the file; anything else is refused."""
    import rasterio
    from rasterio.errors import RasterioIOError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{role} map {path} does not exist")
    tags, info = {}, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a raster without georeferencing is refused below, not warned about
        with contextlib.suppress(RasterioIOError), rasterio.open(path) as src:
            tags = src.tags()
            info = MapInfo(path, map_classes(tags), src.crs, src.transform, src.width, src.height, src.count,
                           tuple(src.bounds))
    if info is None or not is_class_raster_tags(tags):
        kind = "a lut change raster" if tags.get(MAP_TAG) == CHANGE_FORMAT else "not a land-use map written by lut"
        raise InputError(f"{role} {path} is {kind}; lut change compares two maps of lut classify (to classify two "
                       "scenes first, add `model` BUNDLE)")
    return info


def check_pair(before: MapInfo, after: MapInfo, cfg: ChangeConfig) -> bool:
    """Refuse what cannot be compared; True when both maps share one grid (no warping needed)."""
    if before.classes != after.classes:
        raise InputError(f"{cfg.before} and {cfg.after} have different class lists ({','.join(before.classes)} vs "
                       f"{','.join(after.classes)}); classify both scenes with the same model")
    if len(before.classes) > 255:
        raise InputError(f"{cfg.before} has {len(before.classes)} classes; lut change codes at most 255")
    if cfg.min_confidence is not None:
        for info in (before, after):
            if info.confidence is None:
                raise InputError(f"{info.path} has no confidence ({confidence_path_of(info.path).name}), which "
                                 "`min_confidence` needs: classify it with `confidence`, or leave out `min_confidence`")
    same = (before.crs == after.crs and before.transform.almost_equals(after.transform)
            and (before.width, before.height) == (after.width, after.height))
    if same:
        return True
    if before.crs is None or after.crs is None:
        raise InputError(f"{cfg.before} and {cfg.after} lie on different grids and "
                       f"{before.path if before.crs is None else after.path} has no CRS to align them by")
    if not _overlap(before, after):
        raise InputError(f"{cfg.before} and {cfg.after} do not overlap: there is no common area to compare")
    return False


def _overlap(before: MapInfo, after: MapInfo) -> bool:
    from rasterio.warp import transform_bounds

    left, bottom, right, top = before.bounds
    a_left, a_bottom, a_right, a_top = (transform_bounds(after.crs, before.crs, *after.bounds)
                                        if after.crs != before.crs else after.bounds)
    return min(right, a_right) > max(left, a_left) and min(top, a_top) > max(bottom, a_bottom)


def aligned(after: MapInfo, before: MapInfo, path: Path | None = None):
    """AFTER (or its file `path`) as read on BEFORE's grid (`core.raster.on_grid`)."""
    return on_grid(path or after.path, before.crs, before.transform, before.width, before.height, MAP_NODATA)


def code_dtype(n: int) -> tuple[type, int]:
    """uint8 codes (nodata 255) while n*n fits below 255, else uint16 (nodata 65535)."""
    return (np.uint8, 255) if n * n <= 255 else (np.uint16, 65535)


def change_codes(before: np.ndarray, after: np.ndarray, n: int, conf_before: np.ndarray | None = None,
                 conf_after: np.ndarray | None = None, min_confidence: float | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel code before*n + after (nodata where either map is), the counts of each code, and the
    counts of the low-confidence changes that were coded as unchanged."""
    dtype, nodata = code_dtype(n)
    valid = (before < n) & (after < n)
    to = after
    removed = np.zeros(n * n, np.int64)
    if min_confidence is not None:
        low = valid & (before != after) & ((conf_before < min_confidence) | (conf_after < min_confidence))
        if low.any():
            removed = np.bincount(before[low].astype(np.int64) * n + after[low], minlength=n * n)
            to = np.where(low, before, after)
    codes = np.full(before.shape, nodata, dtype)
    coded = before[valid].astype(dtype) * n + to[valid].astype(dtype)
    codes[valid] = coded
    return codes, np.bincount(coded, minlength=n * n).astype(np.int64), removed


def change_colours(classes: list[str]) -> dict[int, tuple[int, int, int, int]]:
    """Unchanged pixels in a pale tint of their class, changes in the colour of the class they became;
    nodata transparent."""
    colours = class_colours(classes)
    n = len(classes)
    table = {}
    for i in range(n):
        for j in range(n):
            rgb = colours[j][:3]
            table[i * n + j] = (*(rgb if i != j else tuple(int(v + 0.7 * (255 - v)) for v in rgb)), 255)
    table[code_dtype(n)[1]] = (0, 0, 0, 0)
    return table


def change_legend(classes: list[str], counts: np.ndarray, area_m2: np.ndarray | None) -> Legend:
    """Categories of every transition with pixels and km² (`area_m2` per code, None: no km²)."""
    colours = change_colours(classes)
    n = len(classes)
    categories = [Category(i * n + j, transition_name(a, b), colours[i * n + j], int(counts[i * n + j]),
                           None if area_m2 is None else float(area_m2[i * n + j]) / 1e6)
                  for i, a in enumerate(classes) for j, b in enumerate(classes)]
    return Legend(categories, code_dtype(n)[1])


def check_outputs(cfg: ChangeConfig, outputs: ChangeOutputs) -> None:
    seen: dict[Path, str] = {}
    for name, path in outputs.named().items():
        check_output_file(path, cfg.overwrite, _OWNED[name], [cfg.before, cfg.after], f"change {name}")
        if path.resolve() in seen:
            raise InputError(f"{path} would be both the change {seen[path.resolve()]} and its {name}")
        seen[path.resolve()] = name


def compute_change(cfg: ChangeConfig) -> ChangeResult:
    """Compare two land-use maps: write the change raster, its transition matrix (JSON, CSV, markdown), legend
    sidecars and an optional preview, all or nothing.

    Args:
        cfg: the BEFORE and AFTER maps, the output raster and the options.

    Returns:
        The transitions (pixels, km², gains, losses) and the paths written.

    Raises:
        InputError: maps that cannot be compared (other classes, no overlap, not lut maps).
        OwnershipError: an output exists that lut may not replace.
    """
    start = time.perf_counter()
    cfg.check()
    before, after = read_map_info(cfg.before, "BEFORE"), read_map_info(cfg.after, "AFTER")
    same = check_pair(before, after, cfg)
    outputs = ChangeOutputs.of(cfg.output, cfg.preview)
    check_outputs(cfg, outputs)
    check_free_space(cfg.output, raster_bytes(before.width, before.height, 1) * (2 if cfg.cog else 1),
                     f"{before.width:,} x {before.height:,} px")
    notes = [] if same else [NEAREST_NOTE]
    for message in notes:
        warn(message)
    named = outputs.named()
    with atomic_files(list(named.values()), cfg.overwrite) as temp_list:
        temps = dict(zip(named, temp_list))
        with written_as_cog([temps["raster"]], cfg.cog) as (staged,):
            tally = _write_raster(staged, before, after, same, cfg)
        n = len(before.classes)
        area = pixel_area(before.transform) if is_metric(before.crs) else None
        transitions = Transitions(before.classes, tally.counts.reshape(n, n), area, tally.removed.reshape(n, n),
                                  *((tally.area_m2.reshape(n, n), tally.removed_m2.reshape(n, n))
                                    if tally.area_m2 is not None else ()))
        result = ChangeResult(outputs, transitions, notes[0] if notes else "same grid", notes)
        _write_tables(temps, result, cfg)
        write_legend(change_legend(before.classes, tally.counts, tally.area_m2), temps["aux"], temps["qml"])
        if cfg.preview is not None:
            from .change_preview import write_change_preview

            write_change_preview(temps["preview"], before.path, after.path, temps["raster"], transitions)
        companions = {"report": (temps["json"], ["metadata"], "from-to matrix and per-class flows"),
                      "matrix_csv": (temps["matrix_csv"], ["metadata"], "from-to matrix (CSV)"),
                      "aux": (temps["aux"], ["metadata"], "GDAL categories"),
                      "qml": (temps["qml"], ["metadata"], "QGIS style")}
        if "preview" in temps:
            companions["preview"] = (temps["preview"], ["overview"], "before, after, change")
        names = [transition_name(a, b) for a in before.classes for b in before.classes]
        class_item(temps["raster"], temps["stac"], outputs.raster.stem, names, change_colours(before.classes),
                   companions, {"lut:kind": "change", "lut:before": before.path.name, "lut:after": after.path.name},
                   final_dir=outputs.raster.parent)
    result.seconds = time.perf_counter() - start
    return result


@dataclass
class Tally:
    """Pixels (and m², where the CRS states areas) per transition code, kept and removed by the threshold."""

    counts: np.ndarray
    removed: np.ndarray
    area_m2: np.ndarray | None
    removed_m2: np.ndarray | None

    def add(self, codes, counts, removed, before, after, rows: np.ndarray | None, y0: int) -> None:
        n2 = len(self.counts)
        self.counts += counts
        self.removed += removed
        if self.area_m2 is not None and self.removed_m2 is not None:
            self.area_m2 += weighted_counts(codes, rows, y0, n2)
            n = int(round(n2 ** 0.5))
            low = (codes < n2) & (before != after) & (codes == before.astype(np.int64) * (n + 1))
            self.removed_m2 += weighted_counts(np.where(low, before.astype(np.int64) * n + after, n2), rows, y0, n2)


def _write_raster(target: Path, before: MapInfo, after: MapInfo, same: bool, cfg: ChangeConfig) -> Tally:
    import rasterio
    from rasterio.windows import Window

    n = len(before.classes)
    dtype, nodata = code_dtype(n)
    rows = row_areas_m2(before.transform, before.crs, before.height)
    tally = Tally(np.zeros(n * n, np.int64), np.zeros(n * n, np.int64), *((np.zeros(n * n), np.zeros(n * n))
                                                                          if rows is not None else (None, None)))
    conf = cfg.min_confidence is not None
    profile = {"driver": "GTiff", "width": before.width, "height": before.height, "count": 1,
               "dtype": np.dtype(dtype).name, "nodata": nodata, "crs": before.crs, "transform": before.transform,
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
    with contextlib.ExitStack() as stack:
        stack.enter_context(gdal_env(pam=False))
        b_src = stack.enter_context(rasterio.open(before.path))
        a_src = stack.enter_context(aligned(after, before))
        confs = [(stack.enter_context(rasterio.open(before.confidence[0])), before.confidence[1]),
                 (stack.enter_context(aligned(after, before, after.confidence[0])), after.confidence[1])
                 ] if conf and before.confidence and after.confidence else []
        dst = stack.enter_context(rasterio.open(target, "w", **profile))
        if dtype == np.uint8:  # in the TIFF's own tags, before any pixel: PHOTOMETRIC=PALETTE for every reader
            dst.write_colormap(1, change_colours(before.classes))
        for y0 in range(0, before.height, cfg.strip_rows):
            window = Window(0, y0, before.width, min(cfg.strip_rows, before.height - y0))
            b, a = b_src.read(1, window=window), a_src.read(1, window=window)
            low = [src.read(band, window=window) for src, band in confs] or [None, None]
            codes, c, r = change_codes(b, a, n, *low, cfg.min_confidence)
            dst.write(codes, 1, window=window)
            tally.add(codes, c, r, b, a, rows, y0)
        dst.set_band_description(1, f"land-use change: value = before x {n} + after ({nodata} = nodata)")
        dst.update_tags(**{MAP_TAG: CHANGE_FORMAT}, class_names=",".join(before.classes),
                        before=before.path.name, after=after.path.name,
                        aligned="same grid" if same else NEAREST_NOTE)
        factors = overview_factors(before.width, before.height)
        if factors:
            from rasterio.enums import Resampling

            dst.build_overviews(factors, Resampling.nearest)  # classes stay classes, never averaged
    return tally


def _write_tables(temps: dict[str, Path], result: ChangeResult, cfg: ChangeConfig) -> None:
    t = result.transitions
    title = f"Land-use change: {Path(cfg.before).name} → {Path(cfg.after).name}"
    here = result.outputs.raster.parent
    report = {"format": CHANGE_FORMAT, "before": recorded(cfg.before, here),
              "after": recorded(cfg.after, here), "raster": result.outputs.raster.name,
              "aligned": result.aligned, "min_confidence": cfg.min_confidence,
              "codes": {"value": f"before x {len(t.classes)} + after",
                        "nodata": code_dtype(len(t.classes))[1]},
              **t.to_json(), "warnings": result.warnings}
    temps["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    temps["matrix_csv"].write_text(t.matrix_csv(), encoding="utf-8")
    temps["classes_csv"].write_text(t.classes_csv(), encoding="utf-8")
    temps["markdown"].write_text(t.markdown(title), encoding="utf-8")
