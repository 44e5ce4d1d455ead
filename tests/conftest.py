"""Shared fixtures: tiny local checkpoints (never a download) and the real-data paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
RSSCN7 = SHARED_DATA / "rsscn7"
SCENES = SHARED_DATA / "scenes"


def tiny_vit_config(image_size: int = 32, patch_size: int = 8, layers: int = 2, hidden: int = 32, **extra):
    from transformers import ViTConfig

    return ViTConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=2 * hidden,
                     image_size=image_size, patch_size=patch_size, **extra)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide ViTModel checkpoint for 32 px images, saved like lut pretrain would."""
    import torch
    from transformers import ViTModel

    from lut.toolkit.backbones import default_processor

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_backbone")
    ViTModel(tiny_vit_config()).save_pretrained(path)
    default_processor(32).save_pretrained(path)
    return path


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run in an empty directory so models/ and LATEST land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory, tiny_backbone) -> Path:
    """A small bundle trained on synthetic data, shared by the export and tiling tests."""
    from lut.toolkit.finetune import FinetuneConfig, finetune
    from lut.toolkit.strategies import StrategyConfig
    from lut.toolkit.training import TrainConfig

    root = tmp_path_factory.mktemp("bundle")
    cfg = FinetuneConfig(
        data="synthetic", synthetic_images=360, backbone=str(tiny_backbone),
        strategy=StrategyConfig("differential_lr", head_lr=3e-3, backbone_lr=1e-3),
        train=TrainConfig(epochs=6, batch_size=32, progress=False),
        output=root / "bundle", store=root / "models",
    )
    target, _ = finetune(cfg)
    return target
