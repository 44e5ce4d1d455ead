"""Mapping imagery as users get it: masks on the real cloudy Landsat-8 scene, STAC items with their mask
asset, remote files over HTTP range requests, the clipping check and per-class probabilities."""

import json
import warnings as warnings_module
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from lut.tiling.classify import ClassifyConfig, classify_scene
from lut.toolkit.core.errors import LutError, LutWarning
from lut.toolkit.core.masks import dilate, parse_rule

from ..conftest import synthetic_scene, write_scene
from ..range_server import serve
from ..toolkit.test_sources import ES, L8, landsat_band_files, localize, needs_l8, needs_stac

WATER, FOREST = 3, 0


def run(bundle, scene, out, **kw):
    with warnings_module.catch_warnings(record=True) as record:
        warnings_module.simplefilter("always")
        result = classify_scene(ClassifyConfig(scene=scene, output=out, model=bundle, progress=False, **kw))
    with rasterio.open(out) as dst:
        return dst.read(1), result, [str(w.message) for w in record if issubclass(w.category, LutWarning)]


@pytest.fixture(scope="module")
def l8_with_mtl(tmp_path_factory):
    """The real cloudy Landsat-8 bands beside an MTL (L1 rescaling, sun elevation 60), so both runs of a
    comparison share one fixed scaling."""
    root = tmp_path_factory.mktemp("l8")
    return root, landsat_band_files(root, "LC08_T", 60.0, extra=("BQA",))


@needs_l8
def test_real_cloudy_landsat_dn_scene_is_refused_not_mapped_white(exported_bundle, tmp_path):
    bands = ",".join(f"{c}={L8}/l8_{b}.tif" for c, b in (("red", "B4"), ("green", "B3"), ("blue", "B2")))
    out = tmp_path / "m.tif"
    with pytest.raises(LutError, match=r"clips 100% of the valid pixels .*`scale` percentile"):
        run(exported_bundle, bands, out)
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing written for a refused scene
    _, result, _ = run(exported_bundle, bands, out, scale="percentile")
    assert result.summary["radiometry"]["source"].startswith("`scale` percentile")


def test_landsat_like_uint16_dn_scene_clips_and_max_clipped_decides(exported_bundle, tmp_path):
    rng = np.random.default_rng(0)
    dn = rng.integers(6000, 9000, (3, 96, 96)).astype(np.uint16)
    dn[:, :48] = rng.integers(500, 2500, (3, 48, 96))  # half the scene within 0..0.3 reflectance
    scene = write_scene(tmp_path / "dn.tif", dn)
    with pytest.raises(LutError, match=r"clips 50%"):
        run(exported_bundle, scene, tmp_path / "a.tif")
    _, result, _ = run(exported_bundle, scene, tmp_path / "b.tif", max_clipped=0.6)
    radiometry = result.summary["radiometry"]
    assert radiometry["clipped_fraction"] == pytest.approx(0.5, abs=0.02)
    assert radiometry["source"].startswith("pixel type uint16 (the fallback")


@needs_l8
def test_real_cloudy_landsat_mask_makes_clouds_nodata_and_leaves_the_rest(exported_bundle, l8_with_mtl, tmp_path):
    root, bands = l8_with_mtl
    plain, base, _ = run(exported_bundle, bands, tmp_path / "plain.tif")
    assert "LC08_T_MTL.txt" in base.summary["radiometry"]["source"]
    masked, result, _ = run(exported_bundle, bands + f",mask={root}/LC08_T_BQA.TIF", tmp_path / "masked.tif",
                            mask_dilate=2)
    with rasterio.open(root / "LC08_T_BQA.TIF") as q:
        quality = q.read(1)
    high_cloud = parse_rule("bits:14-15>=3").excluded(quality)
    flagged = parse_rule("bqa").excluded(quality)
    assert high_cloud.sum() > 20000 and (masked[high_cloud] == 255).all()
    assert (masked[dilate(flagged, 2)] == 255).all()
    window = result.summary["window"]["window_px"]
    far = ~dilate(flagged, 2 + window)  # pixels whose window never saw a masked pixel
    assert far.sum() > 0.2 * far.size
    assert np.array_equal(masked[far], plain[far]) and (masked[far] != 255).all()
    mask = result.summary["mask"]
    assert mask["rule"] == "bqa" and mask["dilate"] == 2
    assert mask["masked_percent"] == pytest.approx(100 * dilate(flagged, 2).mean(), abs=0.5)
    assert 14 < 100 * flagged.mean() < 16  # the data README's figure


def write_item_scene(tmp_path, cloud: slice | None, name="item"):
    """Earth Search's real item pointed at a local synthetic water scene (reflectance x 10000) with an SCL
    whose `cloud` rows (20 m pixels) say high-probability cloud (9)."""
    dn = synthetic_scene(128, 128, WATER).astype(np.uint16) * 3000 // 255
    scl = np.full((64, 64), 6, np.uint8)  # 6 = water
    if cloud is not None:
        scl[cloud] = 9
    root = tmp_path / name
    item, hrefs = localize(ES, root, {"B04": (dn[0], 128, 10.0), "B03": (dn[1], 128, 10.0), "B02": (dn[2], 128, 10.0),
                                      "SCL": (0, 64, 20.0)})
    with rasterio.open(root / "SCL.tif", "r+") as dst:
        dst.write(scl[None].astype(dst.dtypes[0]))
    return item, hrefs


@needs_stac
def test_stac_item_uses_its_scl_asset_unless_no_mask(exported_bundle, tmp_path):
    item, hrefs = write_item_scene(tmp_path, slice(0, 16))  # rows 0-31 of the 10 m grid are cloud
    href_map = tuple(f"{old}={new}" for old, new in hrefs.rules)
    classes, result, warnings = run(exported_bundle, str(item), tmp_path / "m.tif", href_map=href_map,
                                    probabilities=True)
    assert any(w.startswith(f"{item} (S2A_28QCH_20200714_0_L2A) holds reflectance") for w in warnings), warnings
    assert not any("VRTDataset" in w for w in warnings + result.summary["warnings"])  # named, not the VRT text
    assert (classes[:32] == 255).all() and (classes[32:] == WATER).mean() > 0.9
    assert result.summary["mask"]["masked_percent"] == pytest.approx(25.0)
    assert "processing baseline 02.14" in result.summary["radiometry"]["source"]
    assert result.summary["channels"] == ["red", "green", "blue"]
    with rasterio.open(tmp_path / result.summary["probabilities"]) as p:  # K uint8 bands, percent, 255 = nodata
        probs = p.read()
        assert p.count == 6 and p.descriptions[3].startswith("probability of water")
    assert (probs[:, :32] == 255).all()
    assert np.array_equal(probs[:, 32:].argmax(0), classes[32:])
    assert (abs(probs[:, 32:].sum(0).astype(int) - 100) <= 3).all()
    unmasked, _, _ = run(exported_bundle, str(item), tmp_path / "n.tif", href_map=href_map, use_mask=False)
    assert (unmasked != 255).all()


@needs_stac
def test_all_masked_scene_is_all_nodata_with_a_warning(exported_bundle, tmp_path):
    item, hrefs = write_item_scene(tmp_path, slice(0, 64))
    href_map = tuple(f"{old}={new}" for old, new in hrefs.rules)
    classes, result, warnings = run(exported_bundle, str(item), tmp_path / "m.tif", href_map=href_map)
    assert (classes == 255).all() and result.summary["mask"]["masked_percent"] == 100.0
    assert any("every valid pixel is masked" in w for w in warnings)


def test_mask_that_does_not_overlap_is_refused_before_writing(exported_bundle, tmp_path):
    scene = write_scene(tmp_path / "s.tif", synthetic_scene(64, 64, WATER))
    far = write_scene(tmp_path / "SCL.tif", np.full((1, 32, 32), 9, np.uint8),
                      transform=from_origin(900000.0, 4000000.0, 20.0, 20.0))
    with pytest.raises(LutError, match="does not overlap scene"):
        run(exported_bundle, scene, tmp_path / "m.tif", mask=far)
    assert not (tmp_path / "m.tif").exists()
    with pytest.raises(LutError, match="cannot tell the layout of mask"):
        run(exported_bundle, scene, tmp_path / "m.tif", mask=scene)


def test_remote_scene_over_http_ranges_gives_the_local_map_byte_for_byte(exported_bundle, tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    data = synthetic_scene(192, 192, FOREST)
    data[:, :, 96:] = synthetic_scene(192, 96, WATER)
    with rasterio.open(folder / "scene.tif", "w", driver="COG", width=192, height=192, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(300000.0, 4000000.0, 10.0, 10.0), blocksize=64) as dst:
        dst.write(data)
    run(exported_bundle, folder / "scene.tif", tmp_path / "local.tif")
    with serve(folder) as (url, counter):
        _, result, _ = run(exported_bundle, f"{url}/scene.tif", tmp_path / "remote.tif")
        assert counter.requests > 0 and counter.bytes > 0
    assert (tmp_path / "remote.tif").read_bytes() == (tmp_path / "local.tif").read_bytes()
    assert result.summary["scene"] == f"{url}/scene.tif"


def test_unreachable_href_fails_that_scene_and_the_run_goes_on(exported_bundle, tmp_path):
    from lut.tiling.many import ManyConfig, classify_many

    (tmp_path / "in").mkdir()
    good = write_scene(tmp_path / "in" / "good.tif", synthetic_scene(64, 64, WATER))
    with serve(tmp_path / "in") as (url, _):
        dead = f"{url}/missing.tif"
        with pytest.raises(LutError, match="cannot be fetched"):
            run(exported_bundle, dead, tmp_path / "m.tif")
        template = ClassifyConfig(scene=good, output=tmp_path / "o", model=exported_bundle, progress=False)
        result = classify_many(ManyConfig([str(good), dead], tmp_path / "o", template, progress="none"))
    assert (result.ok, result.failed, result.exit_code) == (1, 1, 4)
    failed = next(r for r in result.rows if r["status"] == "failed")
    assert "cannot be fetched" in failed["error"] and not list((tmp_path / "o").rglob("missing*"))


@needs_stac
def test_item_collection_maps_each_item_in_a_many_scene_run(exported_bundle, tmp_path):
    items = []
    for name in ("a", "b"):
        item, hrefs = write_item_scene(tmp_path, None, name)
        data = json.loads(item.read_text())
        data["id"] = f"scene-{name}"
        for asset in data["assets"].values():
            asset["href"] = hrefs.apply(asset["href"])
        items.append(data)
    collection = tmp_path / "items.json"
    collection.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    from lut.tiling.many import ManyConfig, classify_many

    template = ClassifyConfig(scene=collection, output=tmp_path / "o", model=exported_bundle, progress=False)
    result = classify_many(ManyConfig([str(collection)], tmp_path / "o", template, progress="none"))
    assert result.ok == 2
    assert sorted(p.name for p in (tmp_path / "o").glob("*.landuse.tif")) == [
        "scene-a.landuse.tif", "scene-b.landuse.tif"]
    assert Path(result.rows[0]["scene"]).name.startswith("items.json#scene-")


def test_composite_of_two_cloudy_dates_has_no_hole_where_either_is_clear(exported_bundle, tmp_path):
    from lut.tiling.composite import CompositeConfig, composite

    data = synthetic_scene(128, 128, FOREST)
    data[:, :, 64:] = synthetic_scene(128, 64, WATER)
    scene = write_scene(tmp_path / "scene.tif", data)
    maps = []
    for name, rows in (("d1", slice(0, 32)), ("d2", slice(32, 64))):  # SCL at 20 m: 10 m rows 0-63, 64-127
        scl = np.full((1, 64, 64), 4, np.uint8)
        scl[0, rows] = 9
        mask = write_scene(tmp_path / f"{name}_SCL.tif", scl, transform=from_origin(300000.0, 4000000.0, 20.0, 20.0))
        classes, result, _ = run(exported_bundle, scene, tmp_path / f"{name}.tif", mask=mask, probabilities=True)
        maps.append(classes)
    d1, d2 = maps
    assert (d1[:64] == 255).all() and (d2[64:] == 255).all() and (d1[64:] != 255).all()
    out = tmp_path / "year.tif"
    result = composite(CompositeConfig([tmp_path / "d1.tif", tmp_path / result.summary["probabilities"]], out))
    with rasterio.open(out) as src, rasterio.open(tmp_path / "year.observations.tif") as obs:
        classes, seen = src.read(1), obs.read(1)
        assert src.tags()["LUT_FORMAT"] == "lut-map/2" and src.colormap(1)[0][:3] != (0, 0, 0)
    assert (classes != 255).all() and (seen == 1).all()  # no hole: each pixel clear on exactly one date
    assert np.array_equal(classes[:64], d2[:64]) and np.array_equal(classes[64:], d1[64:])
    assert result.summary["observations"] == {"1": 128 * 128}
    with pytest.raises(LutError, match="no per-class probabilities"):
        plain = tmp_path / "plain.tif"
        run(exported_bundle, scene, plain)
        composite(CompositeConfig([plain, tmp_path / "d1.tif"], tmp_path / "x.tif"))


@needs_stac
def test_change_of_two_stac_dates_leaves_clouds_out_of_the_change(exported_bundle, tmp_path):
    from lut.tiling.change_scenes import change_scenes
    from lut.toolkit.gis.change import ChangeConfig

    first, hrefs1 = write_item_scene(tmp_path, slice(0, 16), "d1")  # cloud over 10 m rows 0-31
    second, hrefs2 = write_item_scene(tmp_path, slice(48, 64), "d2")  # and rows 96-127
    href_map = tuple(f"{old}={new}" for old, new in hrefs1.rules)  # both items read d1's bands...
    data = json.loads(second.read_text())
    data["assets"]["SCL"]["href"] = str(tmp_path / "d2" / "SCL.tif")  # ...each with its own clouds
    second.write_text(json.dumps(data))
    template = ClassifyConfig(scene="-", output=tmp_path / "c.tif", model=exported_bundle, progress=False,
                              href_map=href_map)
    result = change_scenes(ChangeConfig(str(first), str(second), tmp_path / "c.tif"), template).change
    with rasterio.open(tmp_path / "c.tif") as src:
        codes = src.read(1)
    assert (codes[:32] == 255).all() and (codes[96:] == 255).all() and (codes[32:96] != 255).all()
    assert result.transitions.changed_pixels() == 0 and result.transitions.total == 64 * 128


@needs_stac
def test_remote_stac_api_item_with_relative_hrefs_and_a_flaky_server(exported_bundle, tmp_path, monkeypatch):
    """An item served at a STAC API path (no .json suffix), its assets relative to it, and a server that
    answers 503 twice to the first requests for each file: pystac's and GDAL's retries carry the run."""
    monkeypatch.setenv("GDAL_HTTP_RETRY_DELAY", "0.1")
    item, hrefs = write_item_scene(tmp_path, slice(0, 16), "api")
    data = json.loads(item.read_text())
    for asset in data["assets"].values():
        asset["href"] = "../../../" + Path(hrefs.apply(asset["href"])).name  # next to /collections/
    data["links"] = []
    api = tmp_path / "api" / "collections" / "s2" / "items"
    api.mkdir(parents=True)
    (api / "S2A_28QCH").write_text(json.dumps(data))
    local, _, _ = run(exported_bundle, str(item), tmp_path / "local.tif", href_map=tuple(
        f"{old}={new}" for old, new in hrefs.rules))
    with serve(tmp_path / "api", fail_first=2) as (url, counter):
        remote, result, _ = run(exported_bundle, f"{url}/collections/s2/items/S2A_28QCH", tmp_path / "remote.tif")
        assert counter.requests >= 2 * 5  # two refusals for the item, its three bands and its SCL
    assert np.array_equal(remote, local) and (remote[:32] == 255).all()
    assert result.summary["mask"]["path"].startswith("/vsicurl/http://127.0.0.1")


def test_composite_reads_a_date_on_another_grid_by_nearest_neighbour(tmp_path):
    from lut.tiling.composite import CompositeConfig, composite
    from lut.tiling.writer import ProbabilityWriter

    classes = ["forest", "cropland", "urban", "water", "barren", "wetland"]

    def probabilities(name, size, pixel, winner, invalid_rows=0):
        profile = {"width": size, "height": size, "crs": "EPSG:32633",
                   "transform": from_origin(300000.0, 4000000.0, pixel, pixel)}
        probs = np.zeros((6, size, size), np.uint8)
        probs[winner] = 70
        probs[(winner + 1) % 6] = 30
        probs[:, :invalid_rows] = 255
        writer = ProbabilityWriter(tmp_path / name, profile, classes)
        writer.write_rows(0, probs)
        writer.close()
        return tmp_path / name

    fine = probabilities("d1.probabilities.tif", 64, 10.0, WATER, invalid_rows=32)  # top half cloudy
    coarse = probabilities("d2.probabilities.tif", 32, 20.0, FOREST)  # the same place at 20 m
    result = composite(CompositeConfig([fine, coarse], tmp_path / "year.tif"))
    with rasterio.open(tmp_path / "year.tif") as src, rasterio.open(tmp_path / "year.observations.tif") as obs, \
            rasterio.open(tmp_path / "year.confidence.tif") as confidence:
        cls, conf, seen = src.read(1), confidence.read(1), obs.read(1)
        assert (src.width, src.res) == (64, (10.0, 10.0))
    assert (seen[:32] == 1).all() and (seen[32:] == 2).all()
    assert (cls[:32] == FOREST).all() and (conf[:32] == 70).all()  # only the 20 m date saw it
    # both dates: water (70 + 0) / 2 and forest (0 + 70) / 2 tie at 35; the lower class index wins
    assert (cls[32:] == FOREST).all() and (conf[32:] == 35).all()
    assert result.summary["aligned"].startswith("nearest")
