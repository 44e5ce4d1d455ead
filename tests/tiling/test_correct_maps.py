"""Maps that mean what they say: invalid pixels, every encoding, scene edges and ground resolution."""

import json
import shutil
import warnings as warnings_module

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from lut.tiling.classify import ClassifyConfig, classify_scene
from lut.toolkit.core.bundle import Bundle
from lut.toolkit.core.errors import LutError, LutWarning
from lut.toolkit.core.radiometry import REFLECTANCE_SCALE, Encoding, default_rule

from ..conftest import synthetic_scene, without_gpu, write_scene

WATER, CROPLAND, URBAN = 3, 1, 2


def classify(bundle, scene, out, **kw):
    with warnings_module.catch_warnings(record=True) as record:
        warnings_module.simplefilter("always")
        result = classify_scene(ClassifyConfig(scene=scene, output=out, model=bundle, progress=False, **kw))
    warnings = [str(w.message) for w in record if issubclass(w.category, LutWarning)]
    with rasterio.open(out) as dst:
        return dst.read(1), result, warnings


@pytest.fixture(scope="module")
def reflectance_bundle(exported_bundle, tmp_path_factory):
    """The exported test bundle re-labelled as trained on uint16 reflectance chips (value = dn / 255 * 3000):
    the same weights see the same normalised input through the physical reflectance rule."""
    bundle = tmp_path_factory.mktemp("refl") / "bundle"
    shutil.copytree(exported_bundle, bundle)
    rule = default_rule(Encoding("reflectance", REFLECTANCE_SCALE, 0.0, "uint16"), (1, 2, 3))
    for d in (bundle, bundle / "onnx"):
        info = Bundle.load(d)
        info.band_rule = rule
        info.save(d)
    return bundle


def as_reflectance(dn: np.ndarray) -> np.ndarray:
    """uint8 display values as reflectance 0..0.3, float32."""
    return (dn.astype(np.float32) / 255.0 * 0.3).astype(np.float32)


def test_nan_strip_without_declared_nodata_is_nodata_and_the_rest_is_classified(reflectance_bundle, tmp_path):
    data = as_reflectance(synthetic_scene(96, 96, WATER))
    data[:, 40:54, :] = np.nan  # a strip of NaN, no nodata declared
    scene = write_scene(tmp_path / "s.tif", data)
    classes, result, _ = classify(reflectance_bundle, scene, tmp_path / "m.tif", precision="fp32")
    nan = np.isnan(data).any(axis=0)
    assert (classes[nan] == 255).all()
    assert np.mean(classes[~nan] == WATER) > 0.9  # not class 0: NaN never reached the model
    assert result.rule["quantity"] == "reflectance" and result.rule["scale"] == 1.0


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_window_touching_declared_nan_nodata_classifies_its_valid_pixels(reflectance_bundle, tmp_path, precision):
    data = as_reflectance(synthetic_scene(64, 64, WATER))
    data[:, 0:6, 0:20] = np.nan  # corner of the first window
    scene = write_scene(tmp_path / "s.tif", data, nodata=float("nan"))
    classes, _, _ = classify(reflectance_bundle, scene, tmp_path / "m.tif", precision=precision)
    first = classes[:32, :32]
    valid = ~np.isnan(data[0, :32, :32])
    assert (first[~valid] == 255).all() and (first[valid] == WATER).all()


def test_all_nan_scene_is_all_nodata_with_a_warning(reflectance_bundle, tmp_path):
    scene = write_scene(tmp_path / "s.tif", np.full((3, 40, 50), np.nan, np.float32))
    classes, result, warnings = classify(reflectance_bundle, scene, tmp_path / "m.tif")
    assert (classes == 255).all() and result.patches == 0
    assert any("no valid pixels" in w for w in warnings)


def test_inf_pixels_and_internal_masks_are_invalid(exported_bundle, tmp_path):
    data = synthetic_scene(64, 64, WATER)
    scene = tmp_path / "s.tif"
    profile = {"driver": "GTiff", "width": 64, "height": 64, "count": 3, "dtype": "uint8", "crs": "EPSG:32633",
               "transform": from_origin(300000.0, 4000000.0, 10.0, 10.0)}
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(scene, "w", **profile) as dst:
        dst.write(data)
        mask = np.full((64, 64), 255, np.uint8)
        mask[10:20, :] = 0
        dst.write_mask(mask)
    classes, _, _ = classify(exported_bundle, scene, tmp_path / "m.tif", precision="fp32")
    assert (classes[10:20] == 255).all() and (classes[20:] == WATER).mean() > 0.9


def test_min_valid_writes_thin_windows_as_nodata(exported_bundle, tmp_path):
    data = synthetic_scene(64, 64, WATER)
    data[:, :, 4:32] = 0  # window (0, 0) keeps 4 of 32 columns: 12.5% valid
    data[:, :, 36:64] = 0
    scene = write_scene(tmp_path / "s.tif", data, nodata=0)
    classes, result, _ = classify(exported_bundle, scene, tmp_path / "m.tif", precision="fp32")
    assert (classes == 255).all() and result.low_valid == 4
    classes, result, _ = classify(exported_bundle, scene, tmp_path / "m2.tif", precision="fp32", min_valid=0.1)
    assert result.low_valid == 0 and (classes[:, :4] == WATER).all()


def test_uint16_bundle_maps_float_reflectance_like_the_uint16_scene(reflectance_bundle, tmp_path):
    dn = np.concatenate([synthetic_scene(64, 64, WATER), synthetic_scene(64, 64, URBAN, seed=3)], axis=2)
    u16 = np.round(dn.astype(np.float64) / 255 * 3000).astype(np.uint16)
    a, ra, _ = classify(reflectance_bundle, write_scene(tmp_path / "u16.tif", u16), tmp_path / "a.tif")
    b, rb, _ = classify(reflectance_bundle, write_scene(tmp_path / "f01.tif", u16.astype(np.float32) / 10000),
                        tmp_path / "b.tif")
    c, rc, _ = classify(reflectance_bundle, write_scene(tmp_path / "f1e4.tif", u16.astype(np.float32)),
                        tmp_path / "c.tif")
    assert ra.rule["scale"] == pytest.approx(1e-4) and rb.rule["scale"] == 1.0
    assert rc.rule["scale"] == pytest.approx(1e-4)
    assert np.array_equal(a, b) and np.array_equal(a, c)  # tolerance: 0 pixels
    assert (a[:, :64] == WATER).mean() > 0.9


def test_boa_add_offset_from_metadata_is_applied(reflectance_bundle, tmp_path):
    dn = synthetic_scene(64, 64, WATER)
    u16 = np.round(dn.astype(np.float64) / 255 * 3000).astype(np.uint16)
    plain, _, _ = classify(reflectance_bundle, write_scene(tmp_path / "p.tif", u16), tmp_path / "p_map.tif")
    shifted = write_scene(tmp_path / "l2a.tif", u16 + 1000)
    with rasterio.open(shifted, "r+") as dst:
        dst.update_tags(BOA_ADD_OFFSET_B02="-1000")
    after, result, _ = classify(reflectance_bundle, shifted, tmp_path / "l2a_map.tif")
    assert result.rule["offset"] == pytest.approx(-0.1) and np.array_equal(plain, after)
    forced, _, _ = classify(reflectance_bundle, write_scene(tmp_path / "n.tif", u16 + 1000), tmp_path / "n_map.tif",
                            reflectance_offset=-1000)
    assert np.array_equal(plain, forced)


@pytest.mark.parametrize("cls", [CROPLAND, URBAN, WATER])
def test_edge_strip_classifies_like_the_interior(exported_bundle, tmp_path, cls):
    scene = write_scene(tmp_path / "s.tif", synthetic_scene(104, 104, cls, seed=cls))  # 3 windows + an 8 px strip
    classes, result, _ = classify(exported_bundle, scene, tmp_path / "m.tif", precision="fp32")
    interior, edge = classes[:96, :96], np.concatenate([classes[:, 96:].ravel(), classes[96:, :].ravel()])
    assert (interior == cls).mean() > 0.85 and (edge == cls).mean() > 0.85
    assert result.patches == 16  # 4 x 4 windows, the last of each row and column aligned inward


def test_tiny_scene_is_reflect_padded_and_a_sliver_is_refused(exported_bundle, tmp_path):
    classes, _, _ = classify(exported_bundle, write_scene(tmp_path / "s.tif", synthetic_scene(20, 12, WATER)),
                             tmp_path / "m.tif", precision="fp32")
    assert classes.shape == (20, 12) and (classes == WATER).mean() > 0.9
    with pytest.raises(LutError, match="too small"):
        classify(exported_bundle, write_scene(tmp_path / "t.tif", synthetic_scene(6, 40, WATER)), tmp_path / "t_m.tif")


def test_scene_at_twice_the_resolution_gives_the_same_map(exported_bundle, tmp_path):
    dn = np.concatenate([synthetic_scene(64, 96, WATER), synthetic_scene(64, 96, URBAN, seed=5)], axis=1)
    coarse = write_scene(tmp_path / "c.tif", dn)  # 10 m, the bundle's chips' resolution
    fine = write_scene(tmp_path / "f.tif", np.repeat(np.repeat(dn, 2, axis=1), 2, axis=2),
                       transform=from_origin(300000.0, 4000000.0, 5.0, 5.0))
    a, ra, _ = classify(exported_bundle, coarse, tmp_path / "a.tif", precision="fp32")
    b, rb, _ = classify(exported_bundle, fine, tmp_path / "b.tif", precision="fp32")
    assert ra.summary["window"]["window_px"] == 32 and rb.summary["window"]["window_px"] == 64
    assert rb.summary["window"]["resampled"] and not ra.summary["window"]["resampled"]
    agreement = (b[::2, ::2] == a).mean()
    assert agreement >= 0.98  # the stated tolerance: 2% of pixels
    n, rn, _ = classify(exported_bundle, fine, tmp_path / "n.tif", precision="fp32", resample=False)
    assert rn.summary["window"]["window_px"] == 32


def test_unknown_ground_resolution_warns_once(exported_bundle, tmp_path):
    scene = write_scene(tmp_path / "s.tif", synthetic_scene(64, 64, WATER), crs=None)
    _, result, warnings = classify(exported_bundle, scene, tmp_path / "m.tif")
    assert sum("ground resolution is unknown" in w for w in warnings) == 1
    _, result, warnings = classify(exported_bundle, scene, tmp_path / "m2.tif", gsd=10.0)
    assert not any("ground resolution" in w for w in warnings) and result.summary["window"]["scene_gsd_m"] == 10.0


def test_multiband_scene_says_which_bands_and_one_band_gets_a_hint(exported_bundle, tmp_path):
    four = np.concatenate([synthetic_scene(64, 64, WATER), np.zeros((1, 64, 64), np.uint8)])
    _, result, warnings = classify(exported_bundle, write_scene(tmp_path / "s.tif", four), tmp_path / "m.tif")
    assert any("reading bands 1,2,3 as red, green, blue" in w for w in warnings)
    with pytest.raises(LutError, match="`bands` 1,1,1"):
        classify(exported_bundle, write_scene(tmp_path / "g.tif", four[:1]), tmp_path / "g_m.tif")


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_map_does_not_depend_on_batch_size(exported_bundle, tmp_path, precision):
    rng = np.random.default_rng(2)
    dn = np.concatenate([synthetic_scene(96, 96, c, seed=c) for c in (WATER, URBAN, CROPLAND)], axis=2)
    dn = np.clip(dn.astype(int) + rng.integers(-40, 40, dn.shape), 1, 255).astype(np.uint8)
    scene = write_scene(tmp_path / "s.tif", dn)
    maps = [classify(exported_bundle, scene, tmp_path / f"m{b}.tif", precision=precision, batch_size=b)[0]
            for b in (1, 7, 32)]
    changed = max((maps[0] != m).mean() for m in maps[1:])
    # fp32: identical. INT8 (dynamic): activations are quantized with one scale per batch, so a patch's class
    # may change with its batch neighbours; the documented tolerance is 2% of pixels.
    assert changed == 0.0 if precision == "fp32" else changed <= 0.02


def test_truncated_geotiff_is_named_as_damaged(exported_bundle, tmp_path):
    scene = write_scene(tmp_path / "s.tif", synthetic_scene(300, 300, WATER))
    data = scene.read_bytes()
    scene.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(LutError) as err:
        classify(exported_bundle, scene, tmp_path / "m.tif")
    assert "s.tif" in str(err.value) and ("damaged" in str(err.value) or "cannot read" in str(err.value))
    assert not (tmp_path / "m.tif").exists() and not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_auto_precision_never_picks_a_variant_that_failed_its_gate(exported_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(exported_bundle, bundle)
    info = json.loads((bundle / "onnx" / "lut.json").read_text())
    assert info["gates"]["int8"]["passed"] is True
    _, result, _ = classify(bundle, write_scene(tmp_path / "s.tif", synthetic_scene(32, 32)), tmp_path / "a.tif")
    assert result.precision == "int8" and "agreement" in result.why
    info["gates"]["int8"].update(passed=False, value=0.93)
    (bundle / "onnx" / "lut.json").write_text(json.dumps(info))
    _, result, _ = classify(bundle, tmp_path / "s.tif", tmp_path / "b.tif")
    assert result.precision == "fp32" and "0.930 < 0.99" in result.why
    assert result.summary["precision_reason"] == result.why


@without_gpu
@pytest.mark.parametrize("precision", ["auto", "fp32", "int8", "fp16"])
def test_device_cuda_without_a_gpu_is_refused_for_every_precision(exported_bundle, tmp_path, precision):
    scene = write_scene(tmp_path / "s.tif", synthetic_scene(32, 32))
    with pytest.raises(LutError, match="cuda|CUDA"):
        classify(exported_bundle, scene, tmp_path / "m.tif", precision=precision, device="cuda")
    assert not (tmp_path / "m.tif").exists()
