"""Scenes as users have them: band files, STAC items from three providers, hrefs, masks and radiometry."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from lut.toolkit.core.errors import InputError
from lut.toolkit.core.masks import dilate, parse_rule, rule_for_name
from lut.toolkit.core.provider_radiometry import landsat_mtl, parse_mtl, s2_baseline
from lut.toolkit.core.resolve import scene_source
from lut.toolkit.core.sources import HrefMap, gdal_path, parse_band_spec

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
STAC = DATA / "stac"
ES = STAC / "S2A_28QCH_20200714_0_L2A.json"
PC = STAC / "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531_raster_ext.json"
USGS = STAC / "LC08_L2SP_028030_20200114_20200824_02_T1_SR.json"
L8 = DATA / "scenes" / "landsat8_cloudy"
needs_stac = pytest.mark.skipif(not STAC.is_dir(), reason="../shared/data/stac is absent")
needs_l8 = pytest.mark.skipif(not L8.is_dir(), reason="../shared/data/scenes/landsat8_cloudy is absent")


def write_band(path: Path, value, size: int, pixel: float, origin=(300000.0, 2300040.0), dtype="uint16", nodata=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(value, dtype=dtype)
    data = np.broadcast_to(data, (size, size)) if data.ndim == 0 else data
    profile = dict(driver="GTiff", width=size, height=size, count=1, dtype=dtype, crs="EPSG:32628",
                   transform=from_origin(*origin, pixel, pixel))
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data[None])
    return path


def localize(item_path: Path, root: Path, assets: dict[str, tuple], edit=None) -> tuple[Path, HrefMap]:
    """Local files for some assets of a real item (asset -> (value, size, pixel)), and the href map that
    points the item at them: the provider's folder becomes `root`."""
    data = json.loads(item_path.read_text())
    if edit:
        edit(data)
    hrefs = [data["assets"][key]["href"] for key in assets]
    prefix = hrefs[0][: hrefs[0].rindex("/") + 1]
    while not all(h.startswith(prefix) for h in hrefs):
        prefix = prefix[: prefix[:-1].rindex("/") + 1]
    transform = data["properties"].get("proj:transform") or data["assets"][next(iter(assets))].get("proj:transform")
    origin = (transform[2], transform[5]) if transform else (300000.0, 2300040.0)
    for key, (value, size, pixel) in assets.items():
        write_band(root / data["assets"][key]["href"][len(prefix):], value, size, pixel, origin)
    item = root / "item.json"
    item.write_text(json.dumps(data))
    return item, HrefMap.parse([f"{prefix}={root}/"])


def test_mask_rules_named_values_bits_and_fields():
    scl = parse_rule("scl")
    assert scl.excluded(np.arange(12)).nonzero()[0].tolist() == [0, 1, 3, 8, 9, 10]  # snow (11) stays valid
    bqa = parse_rule("bqa")  # real pre-collection values from l8_BQA.tif
    low, medium_cloud, high_cloud, high_cirrus_low_cloud = 20480, 45056, 61440, 28672
    assert bqa.excluded(np.array([low, medium_cloud, high_cloud, high_cirrus_low_cloud, 1])).tolist() == [
        False, True, True, False, True]
    qa = parse_rule("qa_pixel")  # Collection 2: bit 3 cloud, bit 4 shadow, bit 5 snow (valid)
    assert qa.excluded(np.array([1 << 3, 1 << 4, 1 << 5, 0, 21824])).tolist() == [True, True, False, False, False]
    field = parse_rule("bits:14-15>=3")
    assert field.excluded(np.array([3 << 14, 2 << 14])).tolist() == [True, False]
    assert parse_rule("values:5, 7").excluded(np.array([5, 6, 7])).tolist() == [True, False, True]
    for bad in ("clouds", "values:", "bits:40", "bits:15-14>=1", "values:a"):
        with pytest.raises(InputError, match="is not a rule"):
            parse_rule(bad)
    assert [rule_for_name(n) for n in ("T06_SCL_20m.tif", "x_QA_PIXEL.TIF", "l8_BQA.tif", "B04.tif")] == [
        "scl", "qa_pixel", "bqa", None]


def test_dilate_grows_by_n_pixels_square_and_stops_at_edges():
    mask = np.zeros((9, 9), bool)
    mask[4, 4] = True
    assert dilate(mask, 1).sum() == 9 and dilate(mask, 2).sum() == 25
    assert dilate(mask, 2)[2:7, 2:7].all() and not dilate(mask, 2)[1, 4]
    corner = np.zeros((5, 5), bool)
    corner[0, 0] = True
    assert dilate(corner, 1).nonzero()[0].tolist() == [0, 0, 1, 1]
    assert dilate(mask, 0) is mask


def test_href_map_and_gdal_paths():
    hrefs = HrefMap.parse(["https://a/=/local/", "https://a/b/=/other/"])
    assert hrefs.apply("https://a/b/c.tif") == "/other/c.tif"  # the longest prefix wins
    assert hrefs.apply("https://a/c.tif") == "/local/c.tif"
    assert hrefs.apply("s3://x/y.tif") == "s3://x/y.tif"
    with pytest.raises(InputError, match="OLD=NEW"):
        HrefMap.parse(["no-equals"])
    assert gdal_path("https://h/x.tif") == "/vsicurl/https://h/x.tif"
    assert gdal_path("s3://bucket/key.tif") == "/vsis3/bucket/key.tif"
    assert gdal_path("/data/x.tif") == "/data/x.tif"
    assert parse_band_spec("red=a.tif, green=b.tif") == {"red": "a.tif", "green": "b.tif"}
    with pytest.raises(InputError, match="channel=FILE"):
        parse_band_spec("red=a.tif,b.tif")


@needs_stac
def test_earth_search_item_by_band_names_with_scl_and_baseline(tmp_path):
    item, hrefs = localize(ES, tmp_path, {"B04": (1000, 40, 10.0), "B03": (2000, 40, 10.0), "B02": (3000, 40, 10.0),
                                          "SCL": (4, 20, 20.0)})
    source = scene_source(str(item), None, hrefs)
    assert source.channels == ("red", "green", "blue")
    with source.open() as src:
        assert (src.width, src.height, src.res) == (40, 40, (10.0, 10.0))
        assert src.read()[:, 0, 0].tolist() == [1000, 2000, 3000]  # B04, B03, B02 in that order
        assert src.scales == (1e-4,) * 3 and src.offsets == (0.0,) * 3
    assert source.radiometry_source == "Sentinel-2 processing baseline 02.14: no offset before 04.00"
    assert source.mask_path.endswith("SCL.tif") and source.mask_rule == "scl"
    assert item in source.files and tmp_path / "SCL.tif" in source.files  # inputs lut never overwrites


@needs_stac
def test_planetary_computer_item_by_common_name_and_the_04_offset(tmp_path):
    def baseline_04(data):
        data["properties"]["s2:processing_baseline"] = "04.00"

    assets = {"B04": (1000, 40, 10.0), "B03": (1000, 40, 10.0), "B02": (1000, 40, 10.0), "B11": (7, 20, 20.0)}
    item, hrefs = localize(PC, tmp_path, assets)
    source = scene_source(str(item), None, hrefs)
    assert "02.12: no offset" in source.radiometry_source
    with source.open() as src:
        assert src.nodatavals == (0.0,) * 3  # raster:bands nodata
    item, hrefs = localize(PC, tmp_path / "b04", assets, edit=baseline_04)
    source = scene_source(str(item), None, hrefs)
    with source.open() as src:
        assert src.offsets == (-0.1,) * 3 and src.scales == (1e-4,) * 3
    assert "04.00: BOA_ADD_OFFSET -1000" in source.radiometry_source
    # a 20 m band stacks on the 10 m grid of the finest band, each 20 m pixel covering 2x2
    source = scene_source(str(item), ("red", "swir16"), hrefs)
    with source.open() as src:
        assert (src.width, src.count) == (40, 2) and (src.read(2) == 7).all()


@needs_stac
def test_usgs_landsat_item_gets_the_collection_2_scale_and_qa_pixel(tmp_path):
    item, hrefs = localize(USGS, tmp_path, {"red": (9000, 30, 30.0), "green": (9000, 30, 30.0),
                                            "blue": (9000, 30, 30.0), "qa_pixel": (21824, 30, 30.0)})
    source = scene_source(str(item), None, hrefs)
    with source.open() as src:
        assert src.scales == (2.75e-05,) * 3 and src.offsets == (-0.2,) * 3
    assert "Collection 2 Level-2" in source.radiometry_source
    assert source.mask_rule == "qa_pixel"


@needs_stac
def test_item_without_the_bands_and_raster_bands_scale(tmp_path):
    def raster_scale(data):
        data["stac_extensions"].append("https://stac-extensions.github.io/raster/v1.1.0/schema.json")
        for key in ("B04", "B03", "B02"):
            data["assets"][key]["raster:bands"] = [{"scale": 0.0001, "offset": -0.1, "nodata": 0}]

    item, hrefs = localize(PC, tmp_path, {"B04": (1, 8, 10.0), "B03": (1, 8, 10.0), "B02": (1, 8, 10.0)},
                           edit=raster_scale)
    assert scene_source(str(item), None, hrefs).radiometry_source == "STAC raster:bands scale/offset"
    with pytest.raises(InputError, match="no asset for channel.*rededge9.*pass `channels`"):
        scene_source(str(item), ("red", "rededge9"), hrefs)


def landsat_band_files(folder: Path, prefix: str, sun_elevation: float, extra=()) -> str:
    """Copies of the real cloudy Landsat-8 bands named like USGS files, beside an MTL with the L1 rescaling
    (2e-5, -0.1) of bands 2-4 and a sun elevation; returns their red,green,blue band-files argument."""
    for name in ("B2", "B3", "B4", *extra):
        shutil.copy(L8 / f"l8_{name}.tif", folder / f"{prefix}_{name}.TIF")
    (folder / f"{prefix}_MTL.txt").write_text(
        "GROUP = L1_METADATA_FILE\n GROUP = IMAGE_ATTRIBUTES\n  SUN_ELEVATION = " + f"{sun_elevation}\n"
        " END_GROUP = IMAGE_ATTRIBUTES\n GROUP = RADIOMETRIC_RESCALING\n" + "".join(
            f"  REFLECTANCE_MULT_BAND_{b} = 2.0000E-05\n  REFLECTANCE_ADD_BAND_{b} = -0.100000\n" for b in (2, 3, 4))
        + " END_GROUP = RADIOMETRIC_RESCALING\nEND_GROUP = L1_METADATA_FILE\nEND\n")
    return ",".join(f"{c}={folder}/{prefix}_{b}.TIF" for c, b in (("red", "B4"), ("green", "B3"), ("blue", "B2")))


@needs_l8
def test_band_files_with_an_mtl_beside_them(tmp_path):
    spec = landsat_band_files(tmp_path, "LC08_X", 30.0)
    source = scene_source(spec)
    with source.open() as src:
        assert math.isclose(src.scales[0], 2e-5 / 0.5) and math.isclose(src.offsets[0], -0.1 / 0.5)
        with rasterio.open(L8 / "l8_B4.tif") as b4:
            assert (src.read(1) == b4.read(1)).all()
    assert "LC08_X_MTL.txt" in source.radiometry_source and "sin(sun elevation 30)" in source.radiometry_source
    assert landsat_mtl(tmp_path / "LC08_X_B7.TIF") is None  # no band 7 in this MTL
    with pytest.raises(InputError, match="lack channel.*blue"):
        scene_source(spec.rsplit(",", 1)[0])


def test_mtl_parsing_and_s2_baselines():
    groups = parse_mtl('GROUP = A\n  GROUP = B\n    K = "v"\n  END_GROUP = B\n  L = 1\nEND_GROUP = A\n')
    assert groups == {"B": {"K": "v"}, "A": {"L": "1"}}
    assert parse_mtl('{"X": {"Y": {"K": 2}}}') == {"Y": {"K": "2"}}
    assert s2_baseline({"s2:processing_baseline": "05.09"}) == 5.09
    assert s2_baseline({"sentinel:product_id": "S2A_MSIL2A_20220714T1_N0400_R1_T2"}) == 4.0
    assert s2_baseline({}) is None
