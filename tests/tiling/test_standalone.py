"""Outputs that stand on their own: every raster read back without lut's sidecars (and without GDAL's
metadata) by Pillow and libtiff's tags (tifffile), as copied by gdal_translate and reprojected by gdalwarp;
COGs through a maintained validator; and no path of the machine that made them inside any output."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from lut.tiling.classify import ClassifyConfig, classify_scene
from lut.tiling.composite import CompositeConfig, composite
from lut.toolkit.gis.change import ChangeConfig, change_colours, compute_change
from lut.toolkit.gis.legend import class_colours

from ..conftest import CLASSES6, synthetic_scene, write_scene

GDAL_TOOLS = shutil.which("gdal_translate") is not None and shutil.which("gdalwarp") is not None
SYSTEM_PYTHON = Path("/usr/bin/python3")


@pytest.fixture(scope="module")
def outputs(exported_bundle, tmp_path_factory):
    """A map (plain and --cog, with confidence and probabilities), a change raster and a composite."""
    root = tmp_path_factory.mktemp("standalone")
    data = synthetic_scene(300, 300, 0)
    data[:, 150:] = synthetic_scene(150, 300, 3)
    scene = write_scene(root / "scene.tif", data)
    for name, cog in (("map", False), ("cog", True)):
        classify_scene(ClassifyConfig(scene=scene, output=root / f"{name}.tif", model=exported_bundle, cog=cog,
                                      confidence=True, probabilities=True, progress=False,
                                      legend=root / f"{name}.legend.png"))
    compute_change(ChangeConfig(root / "map.tif", root / "cog.tif", root / "change.tif", cog=True))
    composite(CompositeConfig([root / "map.tif", root / "cog.tif"], root / "year.tif", cog=True))
    return root


def sidecar_free(path: Path, tmp: Path) -> Path:
    """The raster alone in a folder of its own: no .aux.xml, .qml or summary beside it."""
    alone = tmp / "alone" / path.name
    alone.parent.mkdir(exist_ok=True)
    shutil.copy(path, alone)
    return alone


@pytest.mark.parametrize("name", ["map.tif", "cog.tif", "year.tif"])
def test_class_maps_are_one_paletted_band_for_readers_without_gdal(outputs, tmp_path, name):
    import tifffile

    alone = sidecar_free(outputs / name, tmp_path)
    with tifffile.TiffFile(alone) as tif:
        page = tif.pages[0]
        assert page.photometric == tifffile.PHOTOMETRIC.PALETTE and page.samplesperpixel == 1
        assert "ExtraSamples" not in page.tags  # never an alpha or other extra sample
        colormap = page.colormap  # (3, 256) uint16
    colours = class_colours(CLASSES6)
    for value in range(6):
        assert tuple(int(c) >> 8 for c in colormap[:, value]) == colours[value][:3]
    image = Image.open(alone)
    assert image.mode == "P"
    with rasterio.open(outputs / name) as src:
        assert np.array_equal(np.asarray(image), src.read(1))


def test_confidence_and_probabilities_are_companions_of_plain_bands(outputs, tmp_path):
    import tifffile

    for name in ("map.confidence.tif", "cog.confidence.tif", "map.probabilities.tif", "year.confidence.tif"):
        with tifffile.TiffFile(sidecar_free(outputs / name, tmp_path)) as tif:
            page = tif.pages[0]
            assert page.photometric == tifffile.PHOTOMETRIC.MINISBLACK
            extra = page.tags.get("ExtraSamples")
            assert extra is None or 2 not in np.atleast_1d(extra.value)  # no unassociated alpha


def test_the_change_raster_has_its_palette_in_the_tiff(outputs, tmp_path):
    import tifffile

    with tifffile.TiffFile(sidecar_free(outputs / "change.tif", tmp_path)) as tif:
        page = tif.pages[0]
        assert page.photometric == tifffile.PHOTOMETRIC.PALETTE
        colours = change_colours(CLASSES6)
        assert tuple(int(c) >> 8 for c in page.colormap[:, 3 * 6 + 3]) == colours[3 * 6 + 3][:3]


@pytest.mark.skipif(not GDAL_TOOLS, reason="gdal_translate/gdalwarp (apt gdal-bin) are not installed")
def test_gdal_translate_copies_and_gdalwarp_reprojections_keep_the_classes(outputs, tmp_path):
    import tifffile

    for name in ("cog.tif", "change.tif"):
        copy, warped = tmp_path / f"copy-{name}", tmp_path / f"warped-{name}"
        subprocess.run(["gdal_translate", "-q", str(outputs / name), str(copy)], check=True)
        subprocess.run(["gdalwarp", "-q", "-t_srs", "EPSG:4326", "-r", "near", str(outputs / name), str(warped)],
                       check=True)
        for path in (copy, warped):
            for sidecar in path.parent.glob(path.name + ".aux.xml"):
                sidecar.unlink()
            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                assert page.photometric == tifffile.PHOTOMETRIC.PALETTE and page.samplesperpixel == 1, path
            assert Image.open(path).mode == "P"
    with rasterio.open(tmp_path / "warped-cog.tif") as warped, rasterio.open(outputs / "cog.tif") as src:
        assert set(np.unique(warped.read(1))) <= set(np.unique(src.read(1))) | {255}


@pytest.mark.parametrize("name", ["cog.tif", "cog.confidence.tif", "change.tif", "year.tif", "year.confidence.tif",
                                  "year.observations.tif"])
def test_cogs_pass_the_validators(outputs, name):
    from rio_cogeo.cogeo import cog_validate

    valid, errors, _ = cog_validate(str(outputs / name), strict=True)
    assert valid and not errors, errors
    if SYSTEM_PYTHON.is_file():  # GDAL's own validator, where the system's GDAL Python bindings exist
        check = subprocess.run([str(SYSTEM_PYTHON), "-m", "osgeo_utils.samples.validate_cloud_optimized_geotiff",
                                str(outputs / name)], capture_output=True, text=True)
        if "No module named" not in check.stderr:
            assert check.returncode == 0, check.stdout + check.stderr


def test_plain_maps_have_internal_overviews(outputs):
    with rasterio.open(outputs / "map.tif") as src, rasterio.open(outputs / "map.confidence.tif") as conf:
        assert src.overviews(1) and conf.overviews(1)


def test_no_machine_path_in_any_output(outputs):
    home = str(outputs.resolve())
    for path in outputs.rglob("*"):
        if path.is_file() and path.name != "scene.tif":
            assert home.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("name,kind", [("cog", "map"), ("change", "change"), ("year", "composite")])
def test_every_raster_has_a_stac_item_with_relative_assets(outputs, name, kind):
    import hashlib

    import pystac

    item = pystac.Item.from_file(str(outputs / f"{name}.stac.json"))
    assert item.properties["lut:kind"] == kind and item.bbox[0] < item.bbox[2]
    data = item.assets["data"]
    assert data.href == f"{name}.tif" and data.roles == ["data"]
    assert data.extra_fields["proj:code"] == "EPSG:32633" and data.extra_fields["proj:shape"] == [300, 300]
    classes = data.extra_fields["classification:classes"]
    assert classes[3]["name"] == ("water" if kind != "change" else "forest→water")
    digest = hashlib.sha256((outputs / f"{name}.tif").read_bytes()).hexdigest()
    assert data.extra_fields["file:checksum"] == "1220" + digest
    for asset in item.assets.values():
        assert not Path(asset.href).is_absolute() and (outputs / asset.href).is_file(), asset.href
    if kind == "map":
        assert {"confidence", "probabilities", "summary", "aux", "qml", "legend"} <= set(item.assets)
        legend = Image.open(outputs / item.assets["legend"].href)
        assert legend.width > 200 and legend.height > 6 * 20  # a swatch and a name per class


def test_a_map_item_links_the_models_mlm_metadata(exported_bundle, tmp_path):
    import json

    import pystac

    bundle = tmp_path / "bundle"
    shutil.copytree(exported_bundle, bundle)  # every export writes onnx/mlm.json
    assert "/mlm/" in json.loads((bundle / "onnx" / "mlm.json").read_text())["stac_extensions"][0]
    scene = write_scene(tmp_path / "s.tif", synthetic_scene(64, 64, 3))
    (tmp_path / "maps").mkdir()
    classify_scene(ClassifyConfig(scene=scene, output=tmp_path / "maps" / "m.tif", model=bundle, progress=False))
    item = pystac.Item.from_file(str(tmp_path / "maps" / "m.stac.json"))
    link = next(link for link in item.links if link.rel == "derived_from")
    assert link.href == "../bundle/onnx/mlm.json"


def test_warnings_in_a_summary_name_the_scene_relatively(exported_bundle, tmp_path):
    import json

    four = np.concatenate([synthetic_scene(64, 64, 3), synthetic_scene(64, 64, 3)[:1]])
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    scene = write_scene(tmp_path / "in" / "four.tif", four)
    result = classify_scene(ClassifyConfig(scene=scene.resolve(), output=tmp_path / "out" / "m.tif",
                                           model=exported_bundle, progress=False))
    summary = (tmp_path / "out" / "m.summary.json").read_text()
    assert any("has 4 bands" in w for w in result.warnings) and str(tmp_path) not in summary
    assert any(w.startswith("../in/four.tif has 4 bands") for w in json.loads(summary)["warnings"])
