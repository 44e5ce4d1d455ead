import numpy as np
import pytest
import torch
from PIL import Image

from lut.toolkit.data.augment import dihedral
from lut.toolkit.data.datasets import PatchDataset, limit_train_labels, open_source, stratified_split
from lut.toolkit.core.errors import LutError
from lut.toolkit.data.imagefolder import ImageFolderSource


def write_folder(root, classes=("a", "b", "c"), n=5, size=20):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_split_is_stratified_60_20_20_and_seeded():
    labels = np.repeat(np.arange(4), 50)
    s = stratified_split(labels, seed=1)
    assert (len(s.train), len(s.val), len(s.test)) == (120, 40, 40)
    assert set(s.train) | set(s.val) | set(s.test) == set(range(200))
    assert not set(s.train) & set(s.test)
    assert np.bincount(labels[s.test]).tolist() == [10] * 4
    assert np.array_equal(s.train, stratified_split(labels, seed=1).train)
    assert not np.array_equal(s.train, stratified_split(labels, seed=2).train)


def test_train_label_subset_keeps_val_and_test():
    labels = np.repeat(np.arange(4), 50)
    s = stratified_split(labels, seed=0)
    sub = limit_train_labels(s, labels, 40, seed=0)
    assert len(sub.train) == 40 and np.bincount(labels[sub.train]).tolist() == [10] * 4
    assert set(sub.train) <= set(s.train)
    assert np.array_equal(sub.val, s.val) and np.array_equal(sub.test, s.test)
    with pytest.raises(LutError):
        limit_train_labels(s, labels, 3, seed=0)


def test_dihedral_group_has_eight_distinct_elements():
    x = torch.arange(9.0).reshape(1, 3, 3)
    assert len({tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}) == 8


def test_patch_dataset_normalises_and_augments_train_only():
    src = open_source("synthetic", 32, synthetic_images=24, seed=0)
    plain = PatchDataset(src, np.arange(24), [0.5] * 3, [0.5] * 3)
    aug = PatchDataset(src, np.arange(24), [0.5] * 3, [0.5] * 3, augment=True)
    x, y = plain[0]
    assert x.shape == (3, 32, 32) and -1 <= x.min() and x.max() <= 1 and y == src.labels[0]
    assert torch.equal(x, plain[0][0])
    differs = sum(not torch.equal(aug[i][0], plain[i][0]) for i in range(24))
    assert differs >= 12  # 7 of 8 dihedral draws change the image
    aug.set_epoch(1)
    a1 = [aug[i][0] for i in range(4)]
    aug.set_epoch(1)
    assert all(torch.equal(a, aug[i][0]) for i, a in enumerate(a1))


def _chip(path, data, **profile):
    import rasterio

    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=str(data.dtype), **profile) as dst:
        dst.write(data)


def chip_folder(root, classes, draw):
    """DIR/<class>/{0,1,2}.tif, each chip from draw()."""
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(3):
            _chip(root / c / f"{i}.tif", draw())
    return root


def test_uint16_and_float_reflectance_chips_share_one_physical_rule(tmp_path):
    rng = np.random.default_rng(0)
    root = chip_folder(tmp_path / "d", ("crop", "water"),
                       lambda: rng.integers(0, 3000, (4, 16, 16)).astype(np.uint16))
    chip = np.zeros((4, 16, 16), np.uint16)
    chip[2] = 3000  # band 3 at the stretch maximum (reflectance 0.3)
    _chip(root / "water" / "u16.tif", chip)
    _chip(root / "water" / "f32.tif", chip.astype(np.float32) / 10000)  # the same reflectance, as a fraction
    src = ImageFolderSource(root, image_size=24, bands=(3, 2, 1))
    assert list(src.classes) == ["crop", "water"] and len(src) == 8
    assert src.rule.quantity == "reflectance" and src.rule.high == (0.3,) * 3 and src.rule.bands == (3, 2, 1)
    u16 = src.load(src.files.index(root / "water" / "u16.tif"))
    f32 = src.load(src.files.index(root / "water" / "f32.tif"))
    assert u16.shape == (3, 24, 24) and np.allclose(u16[0], 1.0) and np.allclose(u16[1:], 0.0)
    assert np.allclose(u16, f32, atol=1e-6)


def test_photos_mixed_with_reflectance_chips_are_refused(tmp_path):
    root = write_folder(tmp_path / "d", classes=("crop", "water"))
    _chip(root / "water" / "chip.tif", np.zeros((3, 16, 16), np.uint16))
    with pytest.raises(LutError, match="mix physical quantities") as err:
        ImageFolderSource(root, 24)
    assert "chip.tif" in str(err.value) and ".png" in str(err.value)


def test_chip_with_nan_pixels_is_filled_and_an_all_invalid_chip_is_refused(tmp_path):
    rng = np.random.default_rng(1)
    root = chip_folder(tmp_path / "d", ("a", "b"), lambda: rng.uniform(0.01, 0.2, (3, 16, 16)).astype(np.float32))
    nan_corner = rng.uniform(0.01, 0.2, (3, 16, 16)).astype(np.float32)
    nan_corner[:, :6, :6] = np.nan
    _chip(root / "a" / "nan.tif", nan_corner)
    src = ImageFolderSource(root, 16)
    x = src.load(src.files.index(root / "a" / "nan.tif"))
    assert np.isfinite(x).all()
    valid = nan_corner[:, ~np.isnan(nan_corner[0])]
    assert np.allclose(x[:, 0, 0], np.clip(valid.mean(1) / 0.3, 0, 1), atol=1e-3)  # filled with the valid mean
    _chip(root / "b" / "blank.tif", np.full((3, 16, 16), np.nan, np.float32))
    with pytest.raises(LutError, match="blank.tif holds no valid pixels"):
        ImageFolderSource(root, 16)


@pytest.mark.parametrize("case", ["missing", "empty", "single", "unreadable", "truncated", "empty_class", "few",
                                  "file", "bands_on_photos"])
def test_image_folder_errors(tmp_path, case):
    root = tmp_path / "d"
    kwargs = {}
    if case == "empty":
        root.mkdir()
    elif case == "truncated":
        write_folder(root, size=64)
        data = (root / "b" / "3.png").read_bytes()
        (root / "b" / "3.png").write_bytes(data[: len(data) // 2])
    elif case == "empty_class":
        write_folder(root)
        (root / "zz_empty").mkdir()
    elif case == "few":
        write_folder(root)
        write_folder(root / "..", classes=("d/tiny",), n=2)
    elif case == "file":
        root.write_text("not a folder")
    elif case == "bands_on_photos":
        write_folder(root)
        kwargs = {"bands": (3, 2, 1)}
    elif case == "single":
        write_folder(root, classes=("only",))
    elif case == "unreadable":
        write_folder(root)
        (root / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(LutError) as err:
        ImageFolderSource(root, 32, **kwargs)
    message = str(err.value)
    assert str(root) in message
    expected = {"truncated": "3.png", "empty_class": "zz_empty", "few": "tiny (2)", "file": "is a file",
                "missing": "does not exist", "bands_on_photos": "drop `bands`"}
    assert expected.get(case, "") in message


def test_four_band_chips_say_which_bands_are_read(tmp_path):
    from lut.toolkit.core.errors import LutWarning

    rng = np.random.default_rng(0)
    root = chip_folder(tmp_path / "d", ("crop", "water"), lambda: rng.integers(0, 3000, (4, 16, 16)).astype(np.uint16))
    with pytest.warns(LutWarning, match=r"chips in .* have 4 bands; reading bands 1,2,3 as red, green, blue"):
        ImageFolderSource(root, image_size=24)
