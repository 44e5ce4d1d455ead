"""`lut vectorize`: a land-use map as polygons in a GeoPackage, one feature per connected region.

Each polygon carries its class id, class name and area in km². `--min-area` first removes specks smaller
than the minimum mapping unit with GDAL's sieve filter (`rasterio.features.sieve`): they join their largest
neighbour, so the class areas change only by the sieved pixels. Polygons are traced exactly along pixel
edges (their areas sum to the map's class areas) and simplified only on request, because simplifying
each polygon on its own opens slivers between neighbours.

Memory: the class band is read whole (1 byte per pixel, plus 1 for the validity mask and 1 more when
sieving: about 200 MB for a 8192 x 8192 map), and GDAL holds the traced polygons until they are written,
in batches, by pyogrio. Maps larger than that should be vectorized per scene, which is what `lut classify
--vector` does.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lut.toolkit.core.atomic import atomic_file
from lut.toolkit.core.errors import FormatError, InputError
from lut.toolkit.core.ownership import check_output_file, is_class_raster, map_classes
from lut.toolkit.core.raster import is_metric, pixel_area
from lut.toolkit.core.formats import MAP_NODATA as NODATA, MAP_TAG as VECTOR_KEY, VECTOR_FORMAT

from .vector_style import write_styles

#: features converted and written per batch: bounds Python's share of the memory
BATCH = 20_000
#: an equal-area CRS for maps in degrees (NSIDC EASE-Grid 2.0 Global)
EQUAL_AREA = "EPSG:6933"


@dataclass
class VectorizeConfig:
    map: Path
    output: Path
    min_area_ha: float | None = None
    min_pixels: int | None = None
    simplify: float | None = None  # tolerance in the map's CRS units
    connectivity: int = 4
    layer: str | None = None
    overwrite: bool = False

    def check(self) -> None:
        if self.min_area_ha is not None and self.min_pixels is not None:
            raise InputError("give `min_area` or `min_pixels`, not both")
        if self.min_area_ha is not None and self.min_area_ha <= 0:
            raise InputError(f"`min_area` must be positive hectares, got {self.min_area_ha}")
        if self.simplify is not None and self.simplify <= 0:
            raise InputError(f"`simplify` must be a positive tolerance, got {self.simplify}")
        if self.connectivity not in (4, 8):
            raise InputError(f"`connectivity` must be 4 or 8, got {self.connectivity}")


@dataclass
class VectorizeResult:
    output: Path
    layer: str
    polygons: int
    classes: dict[str, dict] = field(default_factory=dict)  # name -> {"polygons", "km2"}
    sieve_pixels: int = 0
    sieved_pixels: int = 0
    seconds: float = 0.0


def is_lut_vector(path: Path) -> bool:
    try:
        import pyogrio

        return (pyogrio.read_info(path).get("dataset_metadata") or {}).get(VECTOR_KEY) == VECTOR_FORMAT
    except Exception:  # noqa: BLE001 - anything OGR cannot open is not lut's
        return False


def vectorize(cfg: VectorizeConfig) -> VectorizeResult:
    """Write the polygons of the land-use map `cfg.map` to the GeoPackage `cfg.output` (replaced only when
    complete), one feature per connected region with its class name and km².

    Args:
        cfg: the map, the output, the minimum mapping unit and simplification.

    Returns:
        Polygon counts and areas per class, and the sieve that was applied.

    Raises:
        InputError: not a lut map, or a minimum area the map's CRS cannot express.
        OwnershipError: an output exists that lut may not replace.
    """
    cfg.check()
    if not Path(cfg.map).is_file():
        raise InputError(f"map {cfg.map} does not exist")
    if not is_class_raster(cfg.map):
        raise FormatError(f"{cfg.map} is not a land-use map written by lut; vectorize reads the maps of lut classify")
    check_output_file(Path(cfg.output), cfg.overwrite, is_lut_vector, [cfg.map], "vector output")
    with atomic_file(cfg.output, cfg.overwrite) as tmp:
        tmp.unlink()  # OGR creates the GeoPackage itself
        return write_polygons(cfg.map, tmp, cfg, final=Path(cfg.output))


def sieve_size(cfg: VectorizeConfig, pixel_area_m2: float, metric: bool, name: str) -> int:
    if cfg.min_pixels is not None:
        return int(cfg.min_pixels)
    if cfg.min_area_ha is None:
        return 0
    if not metric:
        raise InputError(f"{name} is not in a metric CRS, so a minimum area in hectares has no pixel count: give "
                       "it in pixels with lut vectorize `min_pixels`")
    return max(1, math.ceil(cfg.min_area_ha * 1e4 / pixel_area_m2))


#: GeoPackage 1.3, not GDAL's default 1.4, which GDAL 3.6 and QGIS 3.22 support only partially
GPKG_VERSION = "1.3"


def write_polygons(map_path: Path, target: Path, cfg: VectorizeConfig, final: Path | None = None) -> VectorizeResult:
    """Trace `map_path` into a new GeoPackage at `target` (a temporary path the caller renames)."""
    import rasterio

    start = time.perf_counter()
    with rasterio.open(map_path) as src:
        classes = map_classes(src.tags())
        t = src.transform
        metric = is_metric(src.crs)
        size = sieve_size(cfg, pixel_area(t), metric, str(map_path))
        data = src.read(1)
        crs = src.crs
    valid = data != NODATA
    sieved = 0
    if size > 1:
        kept = sieve_until_stable(data, valid, size, cfg.connectivity)
        sieved = int((kept != data).sum())
        data = kept
    layer = cfg.layer or Path(final or map_path).stem
    result = VectorizeResult(Path(final or target), layer, 0, {n: {"polygons": 0, "km2": 0.0} for n in classes},
                             size, sieved)
    first = True
    for geoms, values in _batches(data, valid, t, cfg.connectivity):
        _write_batch(target, layer, geoms, values, classes, crs, metric, cfg.simplify, result, append=not first)
        first = False
    if first:  # an all-nodata map: an empty layer, still a valid GeoPackage
        _write_batch(target, layer, [], np.zeros(0, np.int32), classes, crs, metric, None, result, append=False)
    import pyogrio

    write_styles(target, layer, pyogrio.read_info(target, layer=layer)["geometry_name"], classes)
    result.seconds = time.perf_counter() - start
    return result


#: GDAL's sieve merges each small region into its largest neighbour in one pass; on speckled maps that
#: neighbour is often small too, so passes repeat until nothing changes (3-4 on random classes)
MAX_SIEVE_PASSES = 32


def sieve_until_stable(data: np.ndarray, valid: np.ndarray, size: int, connectivity: int) -> np.ndarray:
    """`data` with every region smaller than `size` pixels merged into a neighbour, as the polygons will be
    traced (same connectivity). A region surrounded by nodata alone has no neighbour and stays."""
    from rasterio.features import sieve

    for _ in range(MAX_SIEVE_PASSES):
        kept = sieve(data, size, mask=valid, connectivity=connectivity)
        kept[~valid] = NODATA
        if np.array_equal(kept, data):
            break
        data = kept
    return data


def _batches(data: np.ndarray, valid: np.ndarray, transform, connectivity: int) -> Iterator[tuple[list, np.ndarray]]:
    from rasterio.features import shapes

    geoms, values = [], []
    for geom, value in shapes(data, mask=valid, connectivity=connectivity, transform=transform):
        geoms.append(geom)
        values.append(int(value))
        if len(geoms) == BATCH:
            yield geoms, np.asarray(values, np.int32)
            geoms, values = [], []
    if geoms:
        yield geoms, np.asarray(values, np.int32)


def _areas_km2(polygons: np.ndarray, geojson: list, crs, metric: bool) -> np.ndarray:
    import shapely

    if metric:
        return shapely.area(polygons) / 1e6
    if crs is None:
        return np.full(len(polygons), np.nan)
    from rasterio.warp import transform_geom

    projected = [shapely.geometry.shape(g) for g in transform_geom(crs, EQUAL_AREA, geojson)]
    return shapely.area(np.asarray(projected, dtype=object)) / 1e6


def _write_batch(target: Path, layer: str, geojson: list, values: np.ndarray, classes: list[str], crs, metric: bool,
                 simplify: float | None, result: VectorizeResult, append: bool) -> None:
    import shapely

    polygons = np.asarray([shapely.geometry.shape(g) for g in geojson], dtype=object)
    areas = _areas_km2(polygons, geojson, crs, metric) if len(polygons) else np.zeros(0)
    if simplify is not None and len(polygons):
        polygons = shapely.simplify(polygons, simplify, preserve_topology=True)
    names = np.asarray([classes[v] if v < len(classes) else str(v) for v in values.tolist()], dtype=object)
    with warnings.catch_warnings():  # a map without CRS is allowed (its summary already says so)
        warnings.filterwarnings("ignore", message=".*'crs' was not provided.*")
        _write_layer(target, polygons, values, names, areas, layer, crs, append)
    result.polygons += len(polygons)
    for v, area in zip(values.tolist(), areas.tolist()):
        entry = result.classes.setdefault(classes[v] if v < len(classes) else str(v), {"polygons": 0, "km2": 0.0})
        entry["polygons"] += 1
        entry["km2"] += 0.0 if math.isnan(area) else area


def _write_layer(target, polygons, values, names, areas, layer, crs, append) -> None:
    import pyogrio.raw
    import shapely

    pyogrio.raw.write(
        target, shapely.to_wkb(polygons) if len(polygons) else np.zeros(0, object),
        field_data=[values.astype(np.int32), names, areas.astype(np.float64)],
        fields=["class_id", "class", "area_km2"], layer=layer, driver="GPKG", geometry_type="Polygon",
        crs=crs.to_wkt() if crs is not None else None, append=append,
        dataset_metadata=None if append else {VECTOR_KEY: VECTOR_FORMAT},
        dataset_options=None if append else {"VERSION": GPKG_VERSION})
