"""STAC metadata for lut's outputs, written with pystac: an Item per map, change raster and composite (and a
Collection for a many-scene run), with relative asset hrefs, so a data portal or `pystac`/`odc-stac` can
catalogue and load them.

The class raster is described with the `classification` extension (values, names, colours), `projection`
(EPSG, shape, transform), `raster` (nodata, data type) and `file` (size, SHA-256 as a multihash). Companion
files (confidence, probabilities, summary, legend sidecars, preview) are further assets with roles.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from lut.toolkit.core.atomic import target_name
from lut.toolkit.core.formats import MAP_NODATA

EXTENSIONS = {
    "classification": "https://stac-extensions.github.io/classification/v2.0.0/schema.json",
    "projection": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "file": "https://stac-extensions.github.io/file/v2.1.0/schema.json",
}
GEOTIFF = "image/tiff; application=geotiff"
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
MEDIA = {".tif": GEOTIFF, ".json": "application/json", ".png": "image/png", ".qml": "text/xml",
         ".xml": "application/xml", ".gpkg": "application/geopackage+sqlite3", ".vrt": "application/xml",
         ".csv": "text/csv", ".md": "text/markdown"}


def item_path_of(raster: Path) -> Path:
    return Path(raster).with_suffix(".stac.json")


def _footprint(src) -> tuple[dict | None, list[float] | None]:
    from rasterio.warp import transform_bounds

    if src.crs is None:
        return None, None
    west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}, [west, south, east, north]


def _file_fields(path: Path, checksum: bool = False) -> dict:
    """`file:size`, and with `checksum` the SHA-256 multihash (the class raster only: hashing every companion,
    probabilities included, would read each output back once more per scene)."""
    from lut.toolkit.core.store import sha256_file

    return {"file:size": path.stat().st_size, **({"file:checksum": "1220" + sha256_file(path)} if checksum else {})}


def class_item(raster: Path, target: Path, item_id: str, classes: list[str], colours: dict,
               companions: dict[str, tuple[Path, list[str], str]], properties: dict | None = None,
               model_metadata: Path | None = None, final_dir: Path | None = None) -> None:
    """Write the STAC Item for a class raster at `target` (a temporary path). `companions`: asset key ->
    (file as written, roles, title); hrefs are the files' names, relative to the item (`final_dir` is
    where they will all live once renamed)."""
    import pystac
    import rasterio

    with rasterio.open(raster) as src:
        geometry, bbox = _footprint(src)
        epsg = src.crs.to_epsg() if src.crs else None
        proj = {"proj:code": f"EPSG:{epsg}" if epsg else None, "proj:shape": [src.height, src.width],
                "proj:transform": list(src.transform)[:6]}
        if epsg is None and src.crs is not None:
            proj["proj:wkt2"] = src.crs.to_wkt()
        cog = src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        dtype = src.dtypes[0]
    now = dt.datetime.now(dt.timezone.utc)
    item = pystac.Item(item_id, geometry, bbox, now, {"created": now.isoformat(), **(properties or {})},
                       stac_extensions=list(EXTENSIONS.values()))
    values = [{"value": i, "name": name, "description": name,
               "color_hint": "{:02X}{:02X}{:02X}".format(*colours[i][:3])} for i, name in enumerate(classes)]
    item.add_asset("data", pystac.Asset(
        Path(final_name(raster, final_dir)).name, title="land-use classes", media_type=COG if cog else GEOTIFF,
        roles=["data"], extra_fields={**proj, "classification:classes": values, **_file_fields(raster, checksum=True),
                                      "raster:bands": [{"nodata": MAP_NODATA, "data_type": dtype}]}))
    for key, (path, roles, title) in companions.items():
        item.add_asset(key, pystac.Asset(final_name(path, final_dir), title=title,
                                         media_type=MEDIA.get(Path(final_name(path, final_dir)).suffix),
                                         roles=roles, extra_fields=_file_fields(path) if path.is_file() else {}))
    if model_metadata is not None and final_dir is not None:
        import os

        item.add_link(pystac.Link("derived_from", os.path.relpath(model_metadata, final_dir),
                                  "application/json", "the model's MLM metadata"))
    data = item.to_dict(include_self_link=False, transform_hrefs=False)
    Path(target).write_text(json.dumps(data, indent=2))


def final_name(path: Path, final_dir: Path | None) -> str:
    """An asset's href: the name the file has once its temporary name is renamed (`.name.tmp-xxx` -> name)."""
    return target_name(Path(path).name)


def mlm_metadata(model_dir: Path | None) -> Path | None:
    """A STAC Item with the Machine Learning Model extension beside the model, if the bundle has one."""
    if model_dir is None:
        return None
    for path in sorted(Path(model_dir).glob("*.json")):
        try:
            extensions = json.loads(path.read_text()).get("stac_extensions", [])
        except (OSError, ValueError, AttributeError):
            continue
        if any("/mlm/" in str(e) for e in extensions):
            return path
    return None


def run_collection(target: Path, out: Path, items: list[Path], collection_id: str) -> None:
    """A STAC Collection over the Items of a many-scene run's maps (relative links), with their joint extent."""
    import pystac

    boxes, times = [], []
    for path in items:
        data = json.loads(Path(path).read_text())
        if data.get("bbox"):
            boxes.append(data["bbox"])
        times.append(data["properties"].get("datetime"))
    bbox = ([min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
            if boxes else [-180.0, -90.0, 180.0, 90.0])
    stamps = sorted(dt.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times if t)
    interval: list[list[dt.datetime | None]] = [[stamps[0], stamps[-1]]] if stamps else [[None, None]]
    collection = pystac.Collection(collection_id, "Land-use maps of one lut run",
                                   pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent(interval)),
                                   license="other", extra_fields={"lut:kind": "run"})
    import os

    for path in items:
        collection.add_link(pystac.Link("item", os.path.relpath(path, out), "application/geo+json"))
    Path(target).write_text(json.dumps(collection.to_dict(include_self_link=False, transform_hrefs=False), indent=2))
