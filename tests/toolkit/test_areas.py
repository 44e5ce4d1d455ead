"""Areas defined once: projected pixels in metres, and per-row ellipsoidal cells for maps in degrees, checked
against pyproj's geodesic polygons and carried into every table (summary, change matrix, sample design,
vectors)."""

import json

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import from_origin

from lut.toolkit.core.areas import row_areas_m2
from lut.toolkit.gis.change import ChangeConfig, compute_change

from ..conftest import write_lut_map

DEGREES = from_origin(150.0, -30.0, 0.001, 0.001)  # 0.001° pixels south of 30°S (eastern Australia)


def geod_cell_m2(west: float, north: float, size: float) -> float:
    from pyproj import Geod

    area, _ = Geod(ellps="WGS84").polygon_area_perimeter(
        [west, west + size, west + size, west], [north, north, north - size, north - size])
    return abs(area)


@pytest.mark.parametrize("north", [0.5, 45.0, 70.0, -60.0, 89.0])
def test_ellipsoidal_row_areas_agree_with_geodesic_polygons(north):
    pytest.importorskip("pyproj")
    """Geodesic edges bulge poleward of the parallels that bound a cell, by an amount that grows with the
    cell's width squared: at 0.05° cells they agree to 1e-6 even at 89°."""
    rows = row_areas_m2(from_origin(10.0, north, 0.05, 0.05), CRS.from_epsg(4326), 2)
    for i in range(2):
        assert rows[i] == pytest.approx(geod_cell_m2(10.0, north - 0.05 * i, 0.05), rel=1e-6)
    assert row_areas_m2(from_origin(0, 0, 10, 10), CRS.from_epsg(32633), 3).tolist() == [100.0] * 3
    assert row_areas_m2(from_origin(0, 0, 10, 10), None, 3) is None


def test_maps_in_degrees_get_km2_in_change_and_design_tables(tmp_path):
    pytest.importorskip("pyproj")
    before = np.zeros((200, 100), np.uint8)
    after = before.copy()
    after[:100] = 2  # the northern half becomes urban
    b = write_lut_map(tmp_path / "b.tif", before, crs="EPSG:4326", transform=DEGREES)
    a = write_lut_map(tmp_path / "a.tif", after, crs="EPSG:4326", transform=DEGREES)
    result = compute_change(ChangeConfig(b, a, tmp_path / "c.tif"))
    north_half = sum(geod_cell_m2(150.0, -30.0 - 0.001 * r, 0.001) for r in range(100)) * 100 / 1e6
    km2 = result.transitions.km2_matrix()
    assert km2[0, 2] == pytest.approx(north_half, rel=1e-6)
    assert km2[0, 0] < km2[0, 2]  # southern cells are smaller, though the pixels are as many
    report = json.loads((tmp_path / "c.json").read_text())
    assert report["valid_km2"] == pytest.approx(km2.sum())
    from lut.toolkit.assess.design import DesignConfig, design

    record = design(DesignConfig(a, tmp_path / "s.gpkg", n=20, min_per_stratum=5))
    urban = next(s for s in record["strata"] if s["name"] == "urban")
    assert urban["km2"] == pytest.approx(north_half, rel=1e-6)
    assert record["area_method"].startswith("WGS84 ellipsoid")


def test_classify_summary_and_vectors_in_degrees_agree(exported_bundle, tmp_path):
    pytest.importorskip("pyproj")
    from lut.tiling.classify import ClassifyConfig, classify_scene
    from lut.toolkit.gis.vectorize import VectorizeConfig, vectorize

    from ..conftest import synthetic_scene, write_scene

    scene = write_scene(tmp_path / "s.tif", synthetic_scene(96, 96, 3), crs="EPSG:4326",
                        transform=from_origin(150.0, -30.0, 0.0001, 0.0001))
    result = classify_scene(ClassifyConfig(scene=scene, output=tmp_path / "m.tif", model=exported_bundle, gsd=10.0,
                                           progress=False))
    summary = result.summary
    total = sum(geod_cell_m2(150.0, -30.0 - 0.0001 * r, 0.0001) for r in range(96)) * 96 / 1e6
    assert sum(c["km2"] for c in summary["classes"].values()) == pytest.approx(total, rel=1e-6)
    assert summary["area_method"].startswith("WGS84 ellipsoid") and summary["pixel_area_m2"] is None
    vectors = vectorize(VectorizeConfig(tmp_path / "m.tif", tmp_path / "m.gpkg"))
    assert sum(row["km2"] for row in vectors.classes.values()) == pytest.approx(total, rel=1e-6)
