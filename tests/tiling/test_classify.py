import json
import os

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from lut.tiling.accumulate import softmax
from lut.tiling.classify import ClassifyConfig, classify_scene
from lut.tiling.deployed import load_deployed
from lut.toolkit.cli import lut
from lut.toolkit.core.errors import LutError, LutWarning

from ..conftest import SCENES, synthetic_scene, write_scene


def classify(bundle, scene, out, **kw):
    return classify_scene(ClassifyConfig(scene=scene, output=out, model=bundle, progress=False, **kw))


def assert_georeferenced_like(out, scene):
    with rasterio.open(out) as dst, rasterio.open(scene) as src:
        assert (dst.width, dst.height) == (src.width, src.height)
        assert dst.crs == src.crs and dst.transform == src.transform
        assert dst.dtypes[0] == "uint8" and dst.nodata == 255
        assert dst.profile["tiled"] and dst.compression.name == "deflate"
        colours = dst.colormap(1)
        assert colours[3] == (40, 90, 220, 255)  # water is blue
        assert dst.tags()["class_names"] == "forest,cropland,urban,water,barren,wetland"
        return dst.read(1)


def test_map_of_an_odd_sized_scene_keeps_size_and_georeferencing(exported_bundle, tmp_path):
    scene = write_scene(tmp_path / "s.tif", synthetic_scene(70, 45, class_index=3))
    result = classify(exported_bundle, scene, tmp_path / "m.tif")
    classes = assert_georeferenced_like(tmp_path / "m.tif", scene)
    assert (classes != 255).all()  # nothing cropped, padding masked out of the map
    assert np.mean(classes == 3) > 0.8  # water painted, water mapped
    assert result.precision == "int8" and result.device == "cpu" and result.patches == 6
    summary = json.loads((tmp_path / "m.summary.json").read_text())
    assert summary["classes"]["water"]["pixels"] == int((classes == 3).sum())
    assert summary["classes"]["water"]["km2"] == pytest.approx((classes == 3).sum() * 100 / 1e6)
    assert sum(r["percent"] for r in summary["classes"].values()) == pytest.approx(100)


def test_scene_smaller_than_one_patch(exported_bundle, tmp_path):
    scene = write_scene(tmp_path / "s.tif", synthetic_scene(20, 12, class_index=0))
    classify(exported_bundle, scene, tmp_path / "m.tif", precision="fp32")
    classes = assert_georeferenced_like(tmp_path / "m.tif", scene)
    assert classes.shape == (20, 12) and (classes != 255).all()


def test_nodata_pixels_stay_nodata_and_empty_patches_are_skipped(exported_bundle, tmp_path):
    data = synthetic_scene(96, 96, class_index=4)
    data[:, :40, :] = 0  # top rows: nodata collar covering the first row of windows entirely
    data[:, 50:52, 60:70] = 0  # a hole inside the scene
    scene = write_scene(tmp_path / "s.tif", data, nodata=0)
    result = classify(exported_bundle, scene, tmp_path / "m.tif")
    classes = assert_georeferenced_like(tmp_path / "m.tif", scene)
    nodata = np.all(data == 0, axis=0)
    assert (classes[nodata] == 255).all() and (classes[~nodata] != 255).all()
    assert result.skipped == 3 and result.patches == 6
    assert result.summary["nodata_pixels"] == int(nodata.sum())


def test_overlapping_windows_average_probabilities_per_cell(exported_bundle, tmp_path):
    rng = np.random.default_rng(1)
    data = np.concatenate([synthetic_scene(64, 32, 3), synthetic_scene(64, 32, 0, seed=2)], axis=2)
    data = np.clip(data.astype(int) + rng.integers(-30, 30, data.shape), 1, 255).astype(np.uint8)
    scene = write_scene(tmp_path / "s.tif", data)
    classify(exported_bundle, scene, tmp_path / "m.tif", stride=16, precision="fp32", confidence=True)
    with rasterio.open(tmp_path / "m.tif") as dst, rasterio.open(tmp_path / "m.confidence.tif") as conf:
        classes, confidence = dst.read(1), conf.read(1)
    cells = classes.reshape(4, 16, 4, 16)
    assert (cells == cells[:, :1, :, :1]).all()  # constant within each 16 x 16 cell
    model = load_deployed(exported_bundle, "fp32")
    x = (data.astype(np.float32) / 255.0 - model.mean) / model.std
    windows = [x[:, y:y + 32, x0:x0 + 32] for y in (0, 16) for x0 in (0, 16)]  # the 4 covering cell (1, 1)
    probs = softmax(model.logits(np.stack(windows))).mean(0)
    assert classes[16, 16] == probs.argmax()
    assert confidence[16, 16] == round(probs.max() * 100)


def test_cog_confidence_and_preview(exported_bundle, tmp_path):
    scene = write_scene(tmp_path / "s.tif", synthetic_scene(300, 280, class_index=1))
    classify(exported_bundle, scene, tmp_path / "m.tif", cog=True, confidence=True, preview=tmp_path / "m.png")
    with rasterio.open(tmp_path / "m.tif") as dst, rasterio.open(tmp_path / "m.confidence.tif") as conf:
        assert dst.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert conf.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert dst.count == 1 and conf.read(1).max() <= 100
        assert dst.colormap(1)[1][:3] == (230, 200, 60)
        assert dst.tags()["class_1"] == "cropland" and dst.crs.to_epsg() == 32633
    assert (tmp_path / "m.png").stat().st_size > 1000
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_cli_classify_chains_from_latest(exported_bundle, in_tmp):
    (in_tmp / "models").mkdir()
    (in_tmp / "models" / "LATEST").write_text(str(exported_bundle))
    scene = write_scene(in_tmp / "s.tif", synthetic_scene(64, 64))
    runner = CliRunner()
    result = runner.invoke(lut, ["classify", str(scene), "-o", "m.tif", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "water" in result.output and "patches/s" in result.output and (in_tmp / "m.tif").is_file()
    again = runner.invoke(lut, ["classify", str(scene), "-o", "m.tif", "--quiet"])
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert runner.invoke(lut, ["classify", str(scene), "-o", "m.tif", "--quiet", "--overwrite"]).exit_code == 0
    assert oct(os.stat(in_tmp / "m.tif").st_mode & 0o777) != "0o600"


def test_scene_without_crs_warns_and_writes(exported_bundle, tmp_path):
    scene = write_scene(tmp_path / "s.tif", synthetic_scene(40, 40), crs=None)
    with pytest.warns(LutWarning) as record:
        result = classify_scene(ClassifyConfig(scene=scene, output=tmp_path / "m.tif", model=exported_bundle,
                                               progress=False))
    seen = [str(w.message) for w in record]
    relative = [m.replace(str(scene), "s.tif") for m in seen]  # the summary names the scene relative to the map
    assert result.summary["warnings"] == [m for m in relative if m in result.summary["warnings"]] and seen
    assert len(result.summary["warnings"]) == len(result.warnings) == 2
    assert any("no CRS" in m for m in seen) and any("ground resolution is unknown" in m for m in seen)
    assert result.output.is_file()
    assert result.summary["classes"]["water"]["km2"] is None


def test_all_nodata_scene_writes_an_all_nodata_map(exported_bundle, tmp_path):
    scene = write_scene(tmp_path / "s.tif", np.zeros((3, 50, 70), np.uint8), nodata=0)
    result = CliRunner().invoke(lut, ["classify", str(scene), "-o", str(tmp_path / "m.tif"), "--model",
                                      str(exported_bundle), "--quiet"])
    assert result.exit_code == 0 and "no valid pixels" in result.output
    with rasterio.open(tmp_path / "m.tif") as dst:
        assert (dst.read(1) == 255).all()


@pytest.mark.parametrize("case", ["missing", "not_raster", "few_bands", "class_mismatch", "no_dir", "precision",
                                  "interrupt"])
def test_bad_input_is_one_line_and_leaves_no_output(exported_bundle, tmp_path, monkeypatch, case):
    import shutil

    scene = write_scene(tmp_path / "s.tif", synthetic_scene(64, 64))
    model = exported_bundle
    out = tmp_path / "m.tif"
    args = []
    if case == "missing":
        scene = tmp_path / "absent.tif"
    elif case == "not_raster":
        scene = tmp_path / "text.tif"
        scene.write_text("hello")
    elif case == "few_bands":
        args = ["--bands", "4,3,2"]
    elif case == "class_mismatch":
        model = tmp_path / "bad_model"
        shutil.copytree(exported_bundle / "onnx", model)
        info = json.loads((model / "lut.json").read_text())
        info["classes"] = info["classes"][:5]
        (model / "lut.json").write_text(json.dumps(info))
    elif case == "no_dir":
        out = tmp_path / "absent_dir" / "m.tif"
    elif case == "precision":
        args = ["--precision", "fp16"]
    elif case == "interrupt":
        from lut.tiling import deployed

        def interrupted(self, *args):
            raise KeyboardInterrupt

        monkeypatch.setattr(deployed.DeployedModel, "logits", interrupted)
        monkeypatch.setattr(deployed.DeployedModel, "logits_uint8", interrupted)
    result = CliRunner().invoke(lut, ["classify", str(scene), "-o", str(out), "--model", str(model), "--quiet",
                                      "--batch-size", "1", *args])
    assert result.exit_code == (130 if case == "interrupt" else 1), result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert not out.exists()
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]


needs_scenes = pytest.mark.skipif(not SCENES.is_dir(), reason="../shared/data/scenes is absent")


@needs_scenes
def test_landsat_scene_collar_is_nodata(exported_bundle, tmp_path):
    scene = SCENES / "RGB.byte.tif"
    with pytest.raises(LutError, match="much coarser"):  # 300 m pixels, 10 m training chips
        classify(exported_bundle, scene, tmp_path / "coarse.tif")
    result = classify(exported_bundle, scene, tmp_path / "m.tif", resample=False, min_valid=0.0)
    classes = assert_georeferenced_like(tmp_path / "m.tif", scene)
    with rasterio.open(scene) as src:
        valid = src.dataset_mask() > 0
        assert src.crs.to_epsg() == 32618
    assert (classes[~valid] == 255).all() and (classes[valid] != 255).all()
    assert result.skipped > 0 and result.summary["classes"]["water"]["km2"] is not None
    # by default, windows on the collar's edge with under 25% valid pixels are nodata too
    default = classify(exported_bundle, scene, tmp_path / "d.tif", resample=False)
    with rasterio.open(tmp_path / "d.tif") as dst:
        mapped = dst.read(1) != 255
    assert default.low_valid > 0 and not mapped[~valid].any() and 0.97 < mapped[valid].mean() < 1.0


@needs_scenes
def test_sentinel2_uint16_scene_with_bands(exported_bundle, tmp_path):
    scene = SCENES / "s2_l1c_assateague_b2-b3-b4-b8.tif"
    result = classify(exported_bundle, scene, tmp_path / "m.tif", bands=(3, 2, 1))
    classes = assert_georeferenced_like(tmp_path / "m.tif", scene)
    assert (classes != 255).all() and list(result.rule["bands"]) == [3, 2, 1]
    assert result.rule["quantity"] == "reflectance" and result.rule["scale"] == pytest.approx(1e-4)
    assert len(np.unique(classes)) >= 2
    assert result.summary["pixel_area_m2"] == pytest.approx(100.0)


@needs_scenes
def test_naip_four_band_scene(exported_bundle, tmp_path):
    scene = SCENES / "naip_2020_rgbn_5m.tif"
    classify(exported_bundle, scene, tmp_path / "m.tif", scale="uint8")
    classes = assert_georeferenced_like(tmp_path / "m.tif", scene)
    with rasterio.open(scene) as src:
        assert src.count == 4 and src.crs.to_epsg() == 26914
        nodata = ~np.any(src.read() != 0, axis=0) if src.nodata == 0 else np.zeros(classes.shape, bool)
    assert (classes[nodata] == 255).all() and (classes[~nodata] != 255).all()
