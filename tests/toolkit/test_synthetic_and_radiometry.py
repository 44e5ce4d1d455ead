import numpy as np
import pytest

from lut.toolkit.core.errors import LutError
from lut.toolkit.core.radiometry import BandRule, parse_bands, percentile_rule, rule_for_dtype
from lut.toolkit.data.synthetic import CLASSES, SyntheticSource, render


def test_synthetic_is_deterministic_balanced_and_generated_per_item():
    a, b = SyntheticSource(120, 32, seed=3), SyntheticSource(120, 32, seed=3)
    assert np.array_equal(a.labels, b.labels)
    assert np.bincount(a.labels).tolist() == [20] * 6
    x = a.load(17)
    assert x.shape == (3, 32, 32) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert np.array_equal(x, b.load(17))
    assert not np.array_equal(x, SyntheticSource(120, 32, seed=4).load(17))
    assert a.describe() == {"kind": "synthetic", "images": 120, "seed": 3}


def test_synthetic_items_need_no_precomputed_images():
    big = SyntheticSource(8000, 224, seed=0)
    assert big.load(7999).shape == (3, 224, 224)
    assert not any(isinstance(v, np.ndarray) and v.nbytes > 1_000_000 for v in vars(big).values())


def test_class_signatures_differ_in_colour():
    rng = np.random.default_rng(0)
    means = {c: np.mean([render(i, rng, 48, 48).reshape(-1, 3).mean(0) for _ in range(10)], axis=0)
             for i, c in enumerate(CLASSES)}
    assert means["water"][2] > means["water"][0] + 30  # blue water
    assert means["forest"][1] > means["forest"][0]  # green canopy
    assert means["barren"][0] > means["barren"][2]  # brown soil
    urban = render(2, rng, 64, 64, noise=0).astype(float)
    water = render(3, rng, 64, 64, noise=0).astype(float)
    assert np.abs(np.diff(urban, axis=1)).mean() > 2 * np.abs(np.diff(water, axis=1)).mean()  # urban edges


def test_band_rules():
    raw = np.array([[[0, 3000, 6000]]] * 3, dtype=np.uint16)
    rule = rule_for_dtype(np.uint16, (3, 2, 1))
    assert np.allclose(rule.apply(raw)[0, 0], [0.0, 1.0, 1.0])
    assert BandRule.from_dict(rule.to_dict()) == rule
    u8 = rule_for_dtype(np.uint8, (1, 2, 3))
    assert u8.quantity == "dn" and u8.high == (1.0,) * 3 and u8.scale == pytest.approx(1 / 255)
    samples = np.tile(np.arange(101, dtype=float), (3, 1))
    p = percentile_rule(samples, (1, 2, 3))
    assert p.low[0] == pytest.approx(2) and p.high[0] == pytest.approx(98)


@pytest.mark.parametrize("dtype, p99, quantity, scale", [
    ("uint8", None, "dn", 1 / 255),
    ("uint16", None, "reflectance", 1e-4),
    ("int16", None, "reflectance", 1e-4),
    ("float32", 0.4, "reflectance", 1.0),      # reflectance as a fraction
    ("float64", 1.2, "reflectance", 1.0),
    ("float32", 4000.0, "reflectance", 1e-4),  # reflectance x 10000 stored as float
    ("float32", 120.0, "unknown", 1.0),        # 0..255-like floats: ambiguous, percentile
    ("float32", 65000.0, "unknown", 1.0),
    ("int32", None, "unknown", 1.0),
    ("uint32", None, "unknown", 1.0),
])
def test_encoding_decision_table_row_by_row(dtype, p99, quantity, scale):
    from lut.toolkit.core.radiometry import encoding_for

    enc = encoding_for(dtype, p99)
    assert enc.quantity == quantity and enc.scale == pytest.approx(scale)


def test_offsets_and_gdal_scale_define_the_encoding():
    from lut.toolkit.core.radiometry import boa_offset, encoding_for

    assert boa_offset({"BOA_ADD_OFFSET_B04": "-1000", "OTHER": "1"}) == -1000.0 and boa_offset({}) is None
    enc = encoding_for("uint16", None, offset_dn=-1000)
    assert enc.offset == pytest.approx(-0.1) and 2000 * enc.scale + enc.offset == pytest.approx(0.1)
    gdal = encoding_for("uint16", None, gdal_scale=2e-5, gdal_offset=-0.1)
    assert gdal.quantity == "reflectance" and gdal.scale == 2e-5 and gdal.offset == -0.1


def test_invalid_pixels_are_filled_with_the_valid_mean_before_normalising():
    from lut.toolkit.core.radiometry import Encoding, default_rule

    raw = np.full((3, 4, 4), 0.15, np.float32)
    raw[0, 0, 0] = np.nan
    raw[1, 1, 1] = np.inf
    raw[:, 3, 3] = 0.0
    valid = np.ones((4, 4), bool)
    valid[3, 3] = False  # a declared-nodata pixel
    out = default_rule(Encoding("reflectance"), (1, 2, 3)).apply(raw, valid=valid)
    assert np.isfinite(out).all() and np.allclose(out, 0.5)  # every invalid pixel got the valid mean (0.15 / 0.3)


def test_legacy_rules_migrate_to_physical_units():
    legacy_u16 = BandRule.from_dict({"bands": [3, 2, 1], "low": [0, 0, 0], "high": [3000, 3000, 3000],
                                     "description": "uint16 reflectance: value / 10000, stretched 0..0.3"})
    assert legacy_u16.quantity == "reflectance" and legacy_u16.high == (0.3,) * 3
    legacy_u8 = BandRule.from_dict({"bands": [1, 2, 3], "low": [0] * 3, "high": [255] * 3,
                                    "description": "uint8: value / 255"})
    raw = np.array([[[0, 255]]] * 3, np.uint8)
    assert np.allclose(legacy_u8.apply(raw), [[[0.0, 1.0]]] * 3)


def test_blank_and_mostly_invalid_pretraining_windows_are_not_used():
    from lut.toolkit.data.unlabelled import usable_window

    data = np.random.default_rng(0).integers(0, 255, (3, 8, 8)).astype(np.uint8)
    assert usable_window(data, np.ones((8, 8), bool))
    assert not usable_window(np.full((3, 8, 8), 7, np.uint8), np.ones((8, 8), bool))  # blank
    half = np.zeros((8, 8), bool)
    half[:3] = True
    assert not usable_window(data, half)


def test_parse_bands_errors():
    assert parse_bands("3,2,1") == (3, 2, 1)
    assert parse_bands(None) is None
    for bad in ("a,b,c", "0,1,2", "1,2"):
        with pytest.raises(LutError):
            parse_bands(bad)


def test_demo_backbone_is_reproducible(tmp_path):
    import torch
    from transformers import ViTModel

    from lut.toolkit.cli.demo import write_demo_backbone

    a = ViTModel.from_pretrained(write_demo_backbone(tmp_path / "a", 32, seed=0))
    b = ViTModel.from_pretrained(write_demo_backbone(tmp_path / "b", 32, seed=0))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
