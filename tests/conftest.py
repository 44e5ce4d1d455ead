"""Shared fixtures: tiny local checkpoints (never a download) and the real-data paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# lut's hash cache (and any other user cache) in a folder of this test session, never the user's
os.environ["XDG_CACHE_HOME"] = __import__("tempfile").mkdtemp(prefix="lut-test-cache-")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
RSSCN7 = SHARED_DATA / "rsscn7"
SCENES = SHARED_DATA / "scenes"


def gpu_present() -> bool:
    """Whether ONNX Runtime can use a CUDA GPU here (CI never has one; a lent GPU machine does)."""
    from lut.export.runtime import gpu_usable

    return gpu_usable()


#: tests of what a machine without a usable GPU answers; on a GPU machine that answer is not given
without_gpu = pytest.mark.skipif(gpu_present(), reason="asserts the refusal of a machine without a usable GPU")


def tiny_vit_config(image_size: int = 32, patch_size: int = 8, layers: int = 2, hidden: int = 32, **extra):
    from transformers import ViTConfig

    return ViTConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=2 * hidden,
                     image_size=image_size, patch_size=patch_size, **extra)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide ViTModel checkpoint for 32 px images, saved like lut pretrain would."""
    import torch
    from transformers import ViTModel

    from lut.toolkit.vit.backbones import default_processor

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_backbone")
    ViTModel(tiny_vit_config()).save_pretrained(path)
    default_processor(32).save_pretrained(path)
    return path


@pytest.fixture()
def tiny(tiny_backbone):
    """A tiny classifier (6 classes) with 36 augmented training and 12 validation synthetic patches."""
    import numpy as np
    import torch

    from lut.toolkit.vit.backbones import load_classifier
    from lut.toolkit.data.datasets import PatchDataset, open_source

    torch.manual_seed(0)
    model, _, _ = load_classifier(str(tiny_backbone), list("abcdef"))
    src = open_source("synthetic", 32, synthetic_images=48, seed=0)
    train = PatchDataset(src, np.arange(0, 36), [0.5] * 3, [0.5] * 3, augment=True)
    val = PatchDataset(src, np.arange(36, 48), [0.5] * 3, [0.5] * 3)
    return model, train, val


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run in an empty directory so models/ and LATEST land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory, tiny_backbone) -> Path:
    """A small bundle trained on synthetic data, shared by the export and tiling tests."""
    from lut.toolkit.train.finetune import FinetuneConfig, finetune
    from lut.toolkit.train.strategies import StrategyConfig
    from lut.toolkit.train.config import TrainConfig

    root = tmp_path_factory.mktemp("bundle")
    cfg = FinetuneConfig(
        data="synthetic", synthetic_images=360, backbone=str(tiny_backbone),
        strategy=StrategyConfig("differential_lr", head_lr=3e-3, backbone_lr=1e-3),
        train=TrainConfig(epochs=6, batch_size=32, progress=False),
        output=root / "bundle", store=root / "models",
    )
    target, _ = finetune(cfg)
    return target


@pytest.fixture(scope="session")
def exported_bundle(trained_bundle, tmp_path_factory) -> Path:
    """The trained bundle exported with fp32 and INT8, for the tiling tests."""
    import shutil

    from lut.export.exporter import ExportConfig, export_model

    bundle = tmp_path_factory.mktemp("exported") / "bundle"
    shutil.copytree(trained_bundle, bundle, ignore=shutil.ignore_patterns("onnx"))
    export_model(ExportConfig(model_dir=bundle, quantize=True, samples=16, min_seconds=0.05))
    return bundle


def write_scene(path: Path, data, crs="EPSG:32633", nodata=None, transform=None) -> Path:
    """A GeoTIFF from a (bands, H, W) array; 10 m pixels by default."""
    import rasterio
    from rasterio.transform import from_origin

    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
               "dtype": str(data.dtype), "transform": transform or from_origin(300000.0, 4000000.0, 10.0, 10.0)}
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def synthetic_scene(h: int, w: int, class_index: int = 3, seed: int = 0):
    """(3, h, w) uint8 painted with one class's texture at the model's patch scale (32 px)."""
    import numpy as np

    from lut.toolkit.data.synthetic import render

    rng = np.random.default_rng(seed)
    out = np.zeros((h, w, 3), np.uint8)
    for y in range(0, h, 32):
        for x in range(0, w, 32):
            tile = render(class_index, rng, 32, 32)
            out[y:y + 32, x:x + 32] = tile[: min(32, h - y), : min(32, w - x)]
    return np.maximum(out, 1).transpose(2, 0, 1)


CLASSES6 = ["forest", "cropland", "urban", "water", "barren", "wetland"]


def write_lut_map(path: Path, classes, confidence=None, transform=None, crs="EPSG:32633", names=None) -> Path:
    """A land-use map as lut classify writes it (tags, colour table, legend sidecars) from a (H, W) array."""
    import numpy as np
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    from lut.tiling.writer import ClassMapWriter, map_legend
    from lut.toolkit.gis.legend import sidecars, write_legend

    names = names or CLASSES6
    profile = {"width": classes.shape[1], "height": classes.shape[0], "crs": CRS.from_user_input(crs) if crs else None,
               "transform": transform or from_origin(300000.0, 4000000.0, 10.0, 10.0)}
    from lut.toolkit.core.ownership import confidence_path_of

    writer = ClassMapWriter(path, profile, names, None if confidence is None else confidence_path_of(path))
    writer.write_rows(0, classes.astype(np.uint8), None if confidence is None else confidence.astype(np.uint8))
    writer.close()
    write_legend(map_legend(names, writer.counts, writer.area_m2), *sidecars(path))
    return path
