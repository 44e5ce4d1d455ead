import numpy as np
import pytest

from lut.toolkit.errors import LutError
from lut.toolkit.radiometry import BandRule, parse_bands, percentile_rule, rule_for_dtype
from lut.toolkit.synthetic import CLASSES, SyntheticSource, render


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


def test_parse_bands_errors():
    assert parse_bands("3,2,1") == (3, 2, 1)
    assert parse_bands(None) is None
    for bad in ("a,b,c", "0,1,2", "1,2"):
        with pytest.raises(LutError):
            parse_bands(bad)


def test_demo_backbone_is_reproducible(tmp_path):
    import torch
    from transformers import ViTModel

    from lut.toolkit.demo import write_demo_backbone

    a = ViTModel.from_pretrained(write_demo_backbone(tmp_path / "a", 32, seed=0))
    b = ViTModel.from_pretrained(write_demo_backbone(tmp_path / "b", 32, seed=0))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
