"""A sample's files: the GeoPackage and CSV of points, the design record and the QGIS style; written
together, read back (GeoPackage or CSV) for estimation."""

from __future__ import annotations

import csv
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from lut.toolkit.core.errors import InputError
from lut.toolkit.core.formats import DESIGN_FORMAT
from lut.toolkit.core.ownership import check_output_file

from .strata import MapLegend

FIELDS = ["id", "stratum", "stratum_id", "map_class", "x", "y", "lon", "lat", "inclusion_probability", "reference"]
LAYER = "sample"
DESIGN_KEY = "lut_design"


def design_path_of(sample: Path) -> Path:
    return Path(sample).with_suffix(".design.json")


def sibling_paths(gpkg: Path) -> list[Path]:
    """GeoPackage, CSV, design record and QGIS style, in that order."""
    gpkg = Path(gpkg)
    return [gpkg, gpkg.with_suffix(".csv"), design_path_of(gpkg), gpkg.with_suffix(".qml")]


def _ours(path: Path) -> bool:
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text()).get("format") == DESIGN_FORMAT
        if path.suffix in (".qml", ".csv"):
            text = path.read_text(errors="replace")
            return DESIGN_FORMAT in text[:200] if path.suffix == ".qml" else text.split("\n", 1)[0] == ",".join(FIELDS)
        import pyogrio

        return DESIGN_KEY in (pyogrio.read_info(path, layer=LAYER).get("layer_metadata") or {})
    except Exception:  # noqa: BLE001 - anything unreadable is not lut's
        return False


def check_outputs(gpkg: Path, overwrite: bool, inputs: list[Path]) -> list[Path]:
    paths = sibling_paths(gpkg)
    for path in paths:
        check_output_file(path, overwrite, _ours, inputs, "output")
    return paths


@dataclass
class SampleTable:
    columns: dict[str, np.ndarray]

    @classmethod
    def of(cls, legend: MapLegend, values, rows, cols, sizes, counts) -> SampleTable:
        from rasterio.transform import xy
        from rasterio.warp import transform as reproject

        xs, ys = xy(legend.transform, rows, cols, offset="center")
        xs, ys = np.asarray(xs, float), np.asarray(ys, float)
        lon, lat = (reproject(legend.crs, "EPSG:4326", xs, ys) if legend.crs is not None and len(xs)
                    else (np.full(len(xs), np.nan), np.full(len(xs), np.nan)))
        names = np.array(legend.names, dtype=object)
        return cls({"id": np.arange(1, len(values) + 1), "stratum": names[values], "stratum_id": values,
                    "map_class": names[values], "x": xs, "y": ys, "lon": np.asarray(lon), "lat": np.asarray(lat),
                    "inclusion_probability": sizes[values] / counts[values],
                    "reference": np.array([""] * len(values), dtype=object)})


def write_sample(temps: list[Path], table: SampleTable, legend: MapLegend, record: dict) -> None:
    import pyogrio
    import shapely

    gpkg, csv_path, design, qml = temps
    cols = table.columns
    gpkg.unlink(missing_ok=True)  # OGR creates the GeoPackage itself
    geometry = shapely.to_wkb(shapely.points(cols["x"], cols["y"]))
    data = [np.asarray(cols[f]) for f in FIELDS]
    with warnings.catch_warnings():  # a map without CRS is allowed; the design says so
        warnings.filterwarnings("ignore", message=".*'crs' was not provided.*")
        pyogrio.raw.write(gpkg, geometry, [d if d.dtype != object else d.astype(str) for d in data], fields=FIELDS,
                          layer=LAYER, driver="GPKG", geometry_type="Point",
                          crs=legend.crs.to_wkt() if legend.crs else None,
                          layer_metadata={DESIGN_KEY: json.dumps(record)}, dataset_options={"VERSION": "1.3"})
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FIELDS)
        for i in range(len(cols["id"])):
            writer.writerow([cols[k][i] for k in FIELDS])
    design.write_text(json.dumps(record, indent=2))
    qml.write_text(points_style(legend, record))


def points_style(legend: MapLegend, record: dict) -> str:
    """A QGIS style drawing the points by `stratum`, in the colours of the map's classes or transitions."""
    from lut.toolkit.gis.change import change_colours
    from lut.toolkit.gis.legend import class_colours

    if legend.kind == "transitions":
        classes = [n.split("→")[0] for n in legend.names[:: int(len(legend.names) ** 0.5)]]
        colours = change_colours(classes)
    else:
        colours = class_colours(legend.names)
    categories, symbols = [], []
    for i, stratum in enumerate(record["strata"]):
        r, g, b, _ = colours.get(stratum["id"], (128, 128, 128, 255))
        label = f"{stratum['name']} (n={stratum['n']})"
        categories.append(f'<category symbol="{i}" value={quoteattr(stratum["name"])} label={quoteattr(label)} '
                          'render="true"/>')
        symbols.append(f'<symbol type="marker" name="{i}" alpha="1" clip_to_extent="1" force_rhr="0">'
                       '<layer class="SimpleMarker" enabled="1" pass="0" locked="0"><Option type="Map">'
                       f'<Option name="color" type="QString" value="{r},{g},{b},255"/>'
                       '<Option name="name" type="QString" value="circle"/>'
                       '<Option name="size" type="QString" value="2.6"/>'
                       '<Option name="outline_color" type="QString" value="35,35,35,255"/>'
                       f'</Option><prop k="color" v="{r},{g},{b},255"/><prop k="name" v="circle"/>'
                       '<prop k="size" v="2.6"/></layer></symbol>')
    return (f"<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n<!-- {DESIGN_FORMAT} -->\n"
            '<qgis version="3.28" styleCategories="Symbology">'
            '<renderer-v2 type="categorizedSymbol" attr="stratum" symbollevels="0" enableorderby="0" '
            f'forceraster="0"><categories>{"".join(categories)}</categories><symbols>{"".join(symbols)}'
            "</symbols></renderer-v2></qgis>\n")


def embedded_design(gpkg: Path) -> dict | None:
    """The design a lut GeoPackage carries in its layer metadata, if any."""
    try:
        import pyogrio

        text = (pyogrio.read_info(gpkg).get("layer_metadata") or {}).get(DESIGN_KEY)
        return None if text is None else json.loads(text)
    except Exception:  # noqa: BLE001 - not a GeoPackage lut wrote
        return None


def fill_references(csv_path: Path, labels: list[str]) -> None:
    """Write reference labels into a sample CSV, in its row order (for labels from a reference raster)."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != len(labels):
        raise InputError(f"{csv_path} has {len(rows)} points but {len(labels)} labels were given")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        for row, label in zip(rows, labels):
            writer.writerow({**row, "reference": label})


@dataclass
class ReadSample:
    """Labelled-sample rows as read: strings, plus the file's CRS (GeoPackage only)."""

    rows: list[dict]
    crs: str | None


def read_sample(path: Path) -> ReadSample:
    """A sample from a GeoPackage (first layer) or CSV; InputError for a file that does not parse."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"sample {path} does not exist")
    if path.suffix.lower() == ".csv":
        try:
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"sample {path} does not parse as CSV: export it again from your labelling tool") from exc
        if not rows or rows[0] is None or None in rows[0]:
            raise InputError(f"sample {path} does not parse as CSV with a header row: export it again")
        return ReadSample(rows, None)
    try:
        import pyogrio

        meta, _, geometry, data = pyogrio.raw.read(path)
    except Exception as exc:  # noqa: BLE001 - OGR raises many types for a file it cannot read
        raise InputError(f"sample {path} does not parse as a GeoPackage or other OGR vector file: save it "
                         "again as .gpkg or .csv") from exc
    names = list(meta["fields"])
    rows = [{k: (None if v is None else str(v)) for k, v in zip(names, values)} for values in zip(*data)]
    return ReadSample(rows, meta.get("crs"))
