"""lut change: exact matrices from known transitions, grid alignment, confidence filtering, refusals."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin

from lut.toolkit.gis.change import ChangeConfig, change_codes, compute_change
from lut.toolkit.cli import lut
from lut.toolkit.core.errors import LutError, LutWarning
from lut.toolkit.gis.transitions import Transitions

from ..conftest import write_lut_map
from ..gdal_native import read_band_legend

FOREST, CROPLAND, URBAN, WATER, BARREN, WETLAND = range(6)


def pair(tmp_path, confidence=False):
    """BEFORE: forest left half, cropland right half, a nodata strip on top. AFTER: 20x30 px forest->urban,
    10x40 px cropland->water, a nodata block elsewhere."""
    before = np.full((60, 80), FOREST, np.uint8)
    before[:, 40:] = CROPLAND
    before[:5] = 255
    after = before.copy()
    after[10:30, 0:30] = URBAN
    after[40:50, 40:80] = WATER
    after[50:60, 0:10] = 255  # 100 px of forest nodata only AFTER
    conf_b = np.full(before.shape, 90, np.uint8) if confidence else None
    conf_a = np.full(before.shape, 90, np.uint8) if confidence else None
    if confidence:
        conf_a[10:20, 0:30] = 40  # half of the forest->urban change (300 px) is uncertain
        conf_a[5:10, 40:80] = 10  # uncertain but unchanged: must not count as removed
    return (write_lut_map(tmp_path / "before.tif", before, conf_b),
            write_lut_map(tmp_path / "after.tif", after, conf_a))


def expected_matrix():
    m = np.zeros((6, 6), np.int64)
    m[FOREST, URBAN] = 20 * 30
    m[FOREST, FOREST] = 55 * 40 - 600 - 100
    m[CROPLAND, WATER] = 10 * 40
    m[CROPLAND, CROPLAND] = 55 * 40 - 400
    return m


def test_known_transitions_give_exact_cells_and_the_common_valid_area(tmp_path):
    b, a = pair(tmp_path)
    result = compute_change(ChangeConfig(b, a, tmp_path / "change.tif", strip_rows=16))
    t = result.transitions
    assert np.array_equal(t.pixels, expected_matrix())
    assert t.total == 55 * 80 - 100  # valid in both maps
    assert result.aligned == "same grid"
    report = json.loads((tmp_path / "change.json").read_text())
    assert report["valid_km2"] == pytest.approx((55 * 80 - 100) * 100 / 1e6)
    assert report["matrix"]["km2"][FOREST][URBAN] == pytest.approx(0.06)
    rows = {r["class"]: r for r in report["per_class"]}
    assert rows["urban"]["gains_pixels"] == 600 and rows["forest"]["losses_pixels"] == 600
    assert rows["forest"]["net_km2"] == pytest.approx(-0.06) and rows["water"]["net_pixels"] == 400
    with rasterio.open(tmp_path / "change.tif") as src:
        codes = src.read(1)
        assert src.nodata == 255 and src.crs.to_epsg() == 32633
        assert codes[15, 5] == FOREST * 6 + URBAN and codes[45, 60] == CROPLAND * 6 + WATER
        assert codes[0, 0] == 255 and codes[55, 5] == 255  # nodata in either map
        assert codes[30, 5] == FOREST * 6 + FOREST
        assert src.overviews(1) == []  # too small for overviews
        assert src.colormap(1)[FOREST * 6 + URBAN][:3] == (200, 40, 40)  # the colour of what it became


def test_tables_csv_markdown_and_legend_read_back(tmp_path):
    b, a = pair(tmp_path)
    compute_change(ChangeConfig(b, a, tmp_path / "change.tif", preview=tmp_path / "change.png"))
    rows = list(csv.DictReader((tmp_path / "change.matrix.csv").open()))
    assert len(rows) == 36
    cell = next(r for r in rows if r["before"] == "forest" and r["after"] == "urban")
    assert int(cell["pixels"]) == 600 and float(cell["km2"]) == pytest.approx(0.06)
    assert sum(int(r["pixels"]) for r in rows) == 55 * 80 - 100
    classes = {r["class"]: r for r in csv.DictReader((tmp_path / "change.classes.csv").open())}
    assert int(classes["cropland"]["losses_pixels"]) == 400 and float(classes["water"]["gains_km2"]) == 0.04
    md = (tmp_path / "change.md").read_text()
    assert "| **forest** |" in md and "+0.060" in md
    legend = read_band_legend(tmp_path / "change.tif")
    assert legend["categories"][FOREST * 6 + URBAN] == "forest→urban"
    assert legend["categories"][WATER * 6 + WATER] == "water (unchanged)"
    assert legend["rat"]["Pixels"][FOREST * 6 + URBAN] == "600"
    assert "forest→urban" in (tmp_path / "change.qml").read_text()
    assert (tmp_path / "change.png").stat().st_size > 10_000
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_min_confidence_removes_exactly_the_low_confidence_changes(tmp_path):
    b, a = pair(tmp_path, confidence=True)
    plain = compute_change(ChangeConfig(b, a, tmp_path / "plain.tif")).transitions
    result = compute_change(ChangeConfig(b, a, tmp_path / "c.tif", min_confidence=50))
    t = result.transitions
    assert int(t.removed.sum()) == 300 and t.removed[FOREST, URBAN] == 300
    assert t.pixels[FOREST, URBAN] == plain.pixels[FOREST, URBAN] - 300
    assert t.pixels[FOREST, FOREST] == plain.pixels[FOREST, FOREST] + 300
    assert t.total == plain.total  # still the whole common valid area
    report = json.loads((tmp_path / "c.json").read_text())
    assert report["low_confidence_changes"]["km2"] == pytest.approx(0.03)
    with rasterio.open(tmp_path / "c.tif") as src:
        codes = src.read(1)
    assert codes[12, 5] == FOREST * 6 + FOREST and codes[25, 5] == FOREST * 6 + URBAN


def test_after_on_another_grid_is_warped_with_nearest(tmp_path):
    before = np.full((40, 40), FOREST, np.uint8)
    before[:, 20:] = CROPLAND
    # AFTER at 20 m, shifted half its extent east: it covers BEFORE's right half only
    after = np.full((20, 20), URBAN, np.uint8)
    after[:, 10:] = WATER
    b = write_lut_map(tmp_path / "b.tif", before, transform=from_origin(300000, 4000000, 10, 10))
    a = write_lut_map(tmp_path / "a.tif", after, transform=from_origin(300200, 4000000, 20, 20))
    with pytest.warns(LutWarning, match="nearest-neighbour"):
        result = compute_change(ChangeConfig(b, a, tmp_path / "c.tif"))
    assert "nearest" in result.aligned
    t = result.transitions
    assert t.total == 40 * 20  # the overlap: BEFORE's right half
    assert t.pixels[CROPLAND, URBAN] == 40 * 20  # AFTER's west half (urban) lies over BEFORE's cropland
    with rasterio.open(tmp_path / "c.tif") as src:
        assert src.width == 40 and src.transform == rasterio.open(b).transform
        assert src.tags()["aligned"] == result.aligned


@pytest.mark.parametrize("problem", ["classes", "overlap", "not_lut", "no_confidence", "change_raster"])
def test_refusals_are_one_clear_line(tmp_path, problem):
    b, a = pair(tmp_path)
    kwargs = {}
    if problem == "classes":
        a = write_lut_map(tmp_path / "x.tif", np.zeros((60, 80), np.uint8), names=["a", "b"])
        message = "different class lists"
    elif problem == "overlap":
        a = write_lut_map(tmp_path / "x.tif", np.zeros((60, 80), np.uint8),
                          transform=from_origin(900000, 4000000, 10, 10))
        message = "do not overlap"
    elif problem == "not_lut":
        with rasterio.open(tmp_path / "x.tif", "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8") as d:
            d.write(np.zeros((1, 4, 4), np.uint8))
        a, message = tmp_path / "x.tif", "not a land-use map written by lut"
    elif problem == "no_confidence":
        kwargs, message = {"min_confidence": 50}, "has no confidence .before.confidence.tif."
    else:
        compute_change(ChangeConfig(b, a, tmp_path / "c0.tif"))
        a, message = tmp_path / "c0.tif", "a lut change raster"
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(LutError, match=message):
        compute_change(ChangeConfig(b, a, tmp_path / "c.tif", **kwargs))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_overwrite_replaces_only_lut_sidecars(tmp_path):
    b, a = pair(tmp_path)
    compute_change(ChangeConfig(b, a, tmp_path / "c.tif"))
    compute_change(ChangeConfig(b, a, tmp_path / "c.tif", overwrite=True))
    (tmp_path / "c.md").write_text("my notes\n")
    with pytest.raises(LutError, match="not written by lut"):
        compute_change(ChangeConfig(b, a, tmp_path / "c.tif", overwrite=True))
    assert (tmp_path / "c.md").read_text() == "my notes\n"


def test_codes_are_uint16_beyond_fifteen_classes():
    n = 16
    before = np.array([[0, 15, 255]], np.uint8)
    after = np.array([[15, 15, 3]], np.uint8)
    codes, counts, removed = change_codes(before, after, n)
    assert codes.dtype == np.uint16 and codes.tolist() == [[15, 255, 65535]]
    assert counts.sum() == 2 and not removed.any()


def test_transitions_gains_losses_net_are_consistent():
    m = np.array([[5, 2, 0], [1, 7, 3], [0, 0, 4]])
    t = Transitions(["a", "b", "c"], m, 400.0)
    rows = {r["class"]: r for r in t.per_class()}
    assert rows["b"]["gains_pixels"] == 2 and rows["b"]["losses_pixels"] == 4 and rows["b"]["net_pixels"] == -2
    assert sum(r["net_pixels"] for r in rows.values()) == 0
    assert rows["c"]["after_km2"] == pytest.approx(7 * 400 / 1e6)
    assert t.changed_pixels() == 6 and t.percent().sum() == pytest.approx(100)
    assert Transitions(["a", "b", "c"], m, None).to_json()["matrix"]["km2"] is None


def test_cli_change_of_maps_and_of_scenes(exported_bundle, tmp_path):
    from ..conftest import synthetic_scene, write_scene

    b, a = pair(tmp_path)
    runner = CliRunner()
    result = runner.invoke(lut, ["change", str(b), str(a), "-o", str(tmp_path / "c.tif")])
    assert result.exit_code == 0, result.output
    assert "| **forest** |" in result.output and (tmp_path / "c.classes.csv").exists()
    result = runner.invoke(lut, ["change", str(b), str(a), "-o", str(tmp_path / "d.tif"), "--precision", "fp32"])
    assert result.exit_code == 2 and result.output.startswith("error: --bands, --precision")
    s1 = write_scene(tmp_path / "s1.tif", synthetic_scene(64, 96, class_index=FOREST))
    s2 = write_scene(tmp_path / "s2.tif", synthetic_scene(64, 96, class_index=WATER))
    out = tmp_path / "scenes" / "change.tif"
    out.parent.mkdir()
    result = runner.invoke(lut, ["change", str(s1), str(s2), "-o", str(out), "--model", str(exported_bundle),
                                 "--min-confidence", "10"])
    assert result.exit_code == 0, result.output
    report = json.loads((out.parent / "change.json").read_text())
    assert report["valid_pixels"] == 64 * 96
    assert report["matrix"]["pixels"][FOREST][WATER] > 0.8 * 64 * 96  # the model sees forest, then water
    for name in ("change.before.tif", "change.after.tif", "change.before.summary.json", "change.after.tif.aux.xml"):
        assert (out.parent / name).exists(), name
    with rasterio.open(out.parent / "change.before.confidence.tif") as src:
        assert src.tags()["LUT_FORMAT"] == "lut-confidence/1"  # the confidence that --min-confidence reads
    result = runner.invoke(lut, ["change", str(s1), str(s2), "-o", str(tmp_path / "e.tif")])
    assert result.exit_code == 1 and "add --model BUNDLE" in result.output


def test_many_classes_change_codes_round_trip(tmp_path):
    names = [f"c{i}" for i in range(20)]
    before = (np.arange(20 * 10).reshape(20, 10) % 20).astype(np.uint8)
    after = ((before.astype(int) + 1) % 20).astype(np.uint8)
    b = write_lut_map(tmp_path / "b.tif", before, names=names)
    a = write_lut_map(tmp_path / "a.tif", after, names=names)
    t = compute_change(ChangeConfig(b, a, tmp_path / "c.tif")).transitions
    assert t.changed_pixels() == 200 and t.pixels[19, 0] == 10
    with rasterio.open(tmp_path / "c.tif") as src:
        assert src.dtypes[0] == "uint16" and src.nodata == 65535
    assert read_band_legend(tmp_path / "c.tif")["categories"][19 * 20 + 0] == "c19→c0"


def as_legacy_map(path, target):
    """A lut-map/1 copy of a lut map: its confidence as band 2 of the class file, as lut wrote until 2026-12."""
    from lut.toolkit.core.ownership import confidence_path_of

    with rasterio.open(path) as src, rasterio.open(confidence_path_of(path)) as conf:
        profile = {**src.profile, "count": 2}
        data = np.stack([src.read(1), conf.read(1)])
        colormap, tags = src.colormap(1), {**src.tags(), "LUT_FORMAT": "lut-map/1"}
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(data)
        dst.write_colormap(1, colormap)
        dst.update_tags(**tags)
    return target


def test_maps_of_the_previous_format_still_change_and_vectorize(tmp_path):
    from lut.toolkit.gis.vectorize import VectorizeConfig, vectorize

    b, a = pair(tmp_path, confidence=True)
    new = compute_change(ChangeConfig(b, a, tmp_path / "new.tif", min_confidence=50)).transitions
    old_b, old_a = as_legacy_map(b, tmp_path / "old_b.tif"), as_legacy_map(a, tmp_path / "old_a.tif")
    old = compute_change(ChangeConfig(old_b, old_a, tmp_path / "old.tif", min_confidence=50)).transitions
    assert np.array_equal(old.pixels, new.pixels) and np.array_equal(old.removed, new.removed)
    assert vectorize(VectorizeConfig(old_b, tmp_path / "old.gpkg")).polygons == \
        vectorize(VectorizeConfig(b, tmp_path / "new.gpkg")).polygons


def test_change_of_scenes_whose_after_fails_leaves_no_before_map(exported_bundle, tmp_path):
    from lut.tiling.change_scenes import change_scenes
    from lut.tiling.classify import ClassifyConfig

    from ..conftest import synthetic_scene, write_scene

    before = write_scene(tmp_path / "b.tif", synthetic_scene(64, 64, 0))
    after = tmp_path / "a.tif"
    after.write_bytes(b"not a raster")
    template = ClassifyConfig(scene="-", output=tmp_path / "c.tif", model=exported_bundle, progress=False)
    with pytest.raises(LutError, match="a.tif"):
        change_scenes(ChangeConfig(str(before), str(after), tmp_path / "c.tif"), template)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "b.tif"]  # no c.before.* left behind
    write_scene(after, synthetic_scene(64, 64, 3))
    result = change_scenes(ChangeConfig(str(before), str(after), tmp_path / "c.tif"), template)  # no --overwrite
    assert result.change.transitions.total == 64 * 64
