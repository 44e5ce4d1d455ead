"""lut vectorize: polygons whose areas add up to the map's, sieving, simplifying, CRSs and refusals."""

from __future__ import annotations

import numpy as np
import pyogrio
import pyogrio.raw
import pytest
import shapely
from click.testing import CliRunner
from rasterio.transform import from_origin

from lut.toolkit.cli import lut
from lut.toolkit.core.errors import LutError
from lut.toolkit.gis.vectorize import VectorizeConfig, vectorize

from ..conftest import write_lut_map


def blocky_map(seed=0, size=120):
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 6, (size // 10, size // 10))
    classes = np.kron(coarse, np.ones((10, 10), int)).astype(np.uint8)
    classes[:7, :9] = 255  # a nodata corner
    classes[54:56, 54:57] = (classes[54, 54] + 1) % 6  # a 6-pixel speck inside a block
    classes[35, 35] = (classes[35, 35] + 1) % 6  # and a 1-pixel one
    return classes


def read(path):
    meta, _, geometry, fields = pyogrio.raw.read(path)
    return meta, shapely.from_wkb(geometry), dict(zip(meta["fields"], fields))


def class_km2(classes, pixel_m2=100.0):
    return {c: (classes == c).sum() * pixel_m2 / 1e6 for c in range(6)}


def test_polygon_areas_sum_to_the_maps_class_areas(tmp_path):
    classes = blocky_map()
    m = write_lut_map(tmp_path / "m.tif", classes)
    result = vectorize(VectorizeConfig(m, tmp_path / "m.gpkg"))
    meta, geoms, fields = read(tmp_path / "m.gpkg")
    assert meta["crs"] == "EPSG:32633" and meta["geometry_type"] == "Polygon"
    assert result.polygons == len(geoms) and result.layer == "m"
    truth = class_km2(classes)
    for c, name in enumerate(["forest", "cropland", "urban", "water", "barren", "wetland"]):
        chosen = fields["class"] == name
        assert (fields["class_id"][chosen] == c).all()
        assert fields["area_km2"][chosen].sum() == pytest.approx(truth[c], abs=1e-9)
        assert shapely.area(geoms[chosen]).sum() / 1e6 == pytest.approx(truth[c], abs=1e-9)
    assert pyogrio.read_info(tmp_path / "m.gpkg")["dataset_metadata"]["LUT_FORMAT"] == "lut-vector/1"


def test_min_area_sieves_specks_into_neighbours(tmp_path):
    classes = blocky_map()
    m = write_lut_map(tmp_path / "m.tif", classes)
    plain = vectorize(VectorizeConfig(m, tmp_path / "a.gpkg"))
    sieved = vectorize(VectorizeConfig(m, tmp_path / "b.gpkg", min_area_ha=0.08))  # 8 pixels of 100 m²
    assert sieved.sieve_pixels == 8 and sieved.sieved_pixels == 7  # the 6-pixel and the 1-pixel specks
    assert sieved.polygons < plain.polygons
    _, geoms, fields = read(tmp_path / "b.gpkg")
    assert shapely.area(geoms).min() >= 8 * 100
    total = sum(class_km2(classes).values())
    assert fields["area_km2"].sum() == pytest.approx(total)  # nodata stays nodata: the total is unchanged


@pytest.mark.parametrize("connectivity", [4, 8])
def test_min_pixels_leaves_no_polygon_below_it_on_a_speckled_map(tmp_path, connectivity):
    classes = np.random.default_rng(0).integers(0, 6, (120, 120)).astype(np.uint8)  # salt and pepper
    classes[:10, :10] = 255
    m = write_lut_map(tmp_path / "m.tif", classes)
    result = vectorize(VectorizeConfig(m, tmp_path / "v.gpkg", min_pixels=4, connectivity=connectivity))
    _, geoms, fields = read(tmp_path / "v.gpkg")
    assert result.polygons == len(geoms) > 0
    assert shapely.area(geoms).min() >= 4 * 100  # one GDAL sieve pass left hundreds below it
    assert fields["area_km2"].sum() == pytest.approx((classes != 255).sum() * 100 / 1e6)


def test_simplify_only_on_request_and_degrees_get_equal_area_km2(tmp_path):
    classes = blocky_map()
    m = write_lut_map(tmp_path / "m.tif", classes)
    vectorize(VectorizeConfig(m, tmp_path / "s.gpkg", simplify=15.0))
    _, plain_geoms, _ = read(tmp_path / "s.gpkg")
    assert sum(len(shapely.get_coordinates(g)) for g in plain_geoms) > 0
    # a 0.0001 degree grid near the equator: about 11 m pixels
    g = write_lut_map(tmp_path / "g.tif", classes, transform=from_origin(10.0, 0.01, 0.0001, 0.0001),
                      crs="EPSG:4326")
    vectorize(VectorizeConfig(g, tmp_path / "g.gpkg"))
    _, _, fields = read(tmp_path / "g.gpkg")
    pixel_km2 = (0.0001 * 111.32) ** 2  # km² per pixel at the equator
    assert fields["area_km2"].sum() == pytest.approx((classes != 255).sum() * pixel_km2, rel=0.01)
    with pytest.raises(LutError, match="`min_pixels`"):
        vectorize(VectorizeConfig(g, tmp_path / "h.gpkg", min_area_ha=1))


def test_refusals_and_overwrite(tmp_path):
    m = write_lut_map(tmp_path / "m.tif", blocky_map())
    (tmp_path / "mine.gpkg").write_bytes(b"not lut's")
    with pytest.raises(LutError, match="not written by lut"):
        vectorize(VectorizeConfig(m, tmp_path / "mine.gpkg", overwrite=True))
    assert (tmp_path / "mine.gpkg").read_bytes() == b"not lut's"
    with pytest.raises(LutError, match="is not a land-use map written by lut"):
        vectorize(VectorizeConfig(tmp_path / "mine.gpkg", tmp_path / "x.gpkg"))
    vectorize(VectorizeConfig(m, tmp_path / "v.gpkg"))
    vectorize(VectorizeConfig(m, tmp_path / "v.gpkg", overwrite=True, min_pixels=20))
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_cli_vectorize(tmp_path):
    m = write_lut_map(tmp_path / "m.tif", blocky_map())
    result = CliRunner().invoke(lut, ["vectorize", str(m), "-o", str(tmp_path / "v.gpkg"), "--min-area", "0.08",
                                      "--layer", "landuse"])
    assert result.exit_code == 0, result.output
    assert "polygons" in result.output and pyogrio.list_layers(tmp_path / "v.gpkg")[0][0] == "landuse"
    result = CliRunner().invoke(lut, ["vectorize", str(m), "-o", str(tmp_path / "w.gpkg"), "--min-area", "1",
                                      "--min-pixels", "4"])
    assert result.exit_code == 1 and result.output.startswith("error: give --min-area or --min-pixels")


def test_geopackage_1_3_carries_its_style_and_validates(tmp_path):
    import sqlite3
    import subprocess
    import xml.etree.ElementTree as ET
    from pathlib import Path

    classes = np.repeat(np.arange(6, dtype=np.uint8), 10)[None].repeat(20, 0)
    path = write_lut_map(tmp_path / "m.tif", classes)
    vectorize(VectorizeConfig(path, tmp_path / "m.gpkg"))
    with sqlite3.connect(tmp_path / "m.gpkg") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 10300  # GeoPackage 1.3
        table, column, default, qml, sld = db.execute(
            "SELECT f_table_name, f_geometry_column, useAsDefault, styleQML, styleSLD FROM layer_styles").fetchone()
    assert (table, column, default) == ("m", "geom", 1)
    categories = ET.fromstring(qml.split("\n", 1)[1]).findall(".//category")
    assert [c.get("value") for c in categories] == ["forest", "cropland", "urban", "water", "barren", "wetland"]
    assert sld.count("<se:Rule>") == 6 and '<se:SvgParameter name="fill">#285adc</se:SvgParameter>' in sld  # water
    system = Path("/usr/bin/python3")
    if system.is_file():  # GDAL's own GeoPackage validator, where the system's GDAL Python bindings exist
        check = subprocess.run([str(system), "-m", "osgeo_utils.samples.validate_gpkg", str(tmp_path / "m.gpkg")],
                               capture_output=True, text=True)
        if "No module named" not in check.stderr:
            assert check.returncode == 0, check.stdout + check.stderr
