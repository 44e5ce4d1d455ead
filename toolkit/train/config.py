"""The training loop's options and its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lut.toolkit.core.errors import InputError
from lut.toolkit.data.augment import AugmentConfig

from .regularize import MixConfig


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 15
    batch_size: int = 32
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    cache_features: bool = True
    standardize_head: bool = True
    num_workers: int = 0
    progress: bool = True
    class_weights: Literal["none", "balanced"] = "none"  # balanced: every class weighs the same in the loss
    label_smoothing: float = 0.0
    mix: MixConfig = field(default_factory=MixConfig)  # mixup/cutmix on pixel batches (not on cached features)
    ema: float | None = None  # decay of an EMA of the weights used for validation, the best snapshot and export
    patience: int | None = None  # stop after this many epochs without a better validation accuracy
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # beyond the flips/rotations
    cache_views: int = 1  # cached strategies: augmented views cached per training image, one per epoch in turn
    drop_path: float = 0.0  # stochastic depth of the last block (linear in depth from 0 at the first)

    def check(self) -> None:
        """Every option that a click range cannot express, refused before anything trains."""
        self.mix.check()
        self.augment.check()
        if self.cache_views < 1:
            raise InputError(f"`cache_views` must be at least 1, got {self.cache_views}")


@dataclass
class TrainResult:
    best_epoch: int
    best_val_accuracy: float
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    trainable_params: int = 0
    total_params: int = 0
