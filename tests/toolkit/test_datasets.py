import numpy as np
import pytest
import torch
from PIL import Image

from lut.toolkit.datasets import PatchDataset, dihedral, limit_train_labels, open_source, stratified_split
from lut.toolkit.errors import LutError
from lut.toolkit.imagefolder import ImageFolderSource


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


def test_image_folder_reads_photos_and_uint16_chips(tmp_path):
    import rasterio

    root = write_folder(tmp_path / "d", classes=("crop", "water"))
    chip = np.zeros((4, 16, 16), np.uint16)
    chip[2] = 3000  # band 3 at the stretch maximum
    with rasterio.open(tmp_path / "d" / "water" / "chip.tif", "w", driver="GTiff", width=16, height=16, count=4,
                       dtype="uint16") as dst:
        dst.write(chip)
    src = ImageFolderSource(root, image_size=24, bands=(3, 2, 1))
    assert list(src.classes) == ["crop", "water"] and len(src) == 11
    assert src.rule.high == (3000.0,) * 3 and src.rule.bands == (3, 2, 1)
    x = src.load(len(src) - 1)
    assert x.shape == (3, 24, 24) and np.allclose(x[0], 1.0) and np.allclose(x[1:], 0.0)


@pytest.mark.parametrize("case", ["missing", "empty", "single", "unreadable"])
def test_image_folder_errors(tmp_path, case):
    root = tmp_path / "d"
    if case == "empty":
        root.mkdir()
    elif case == "single":
        write_folder(root, classes=("only",))
    elif case == "unreadable":
        write_folder(root)
        (root / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(LutError) as err:
        ImageFolderSource(root, 32)
    assert str(root) in str(err.value)
