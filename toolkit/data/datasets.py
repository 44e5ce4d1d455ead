"""Data sources, the stratified split and the torch datasets the training loop reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from .augment import AugmentConfig, augment
from lut.toolkit.core.bundle import ChipInfo
from lut.toolkit.core.errors import InputError
from .imagefolder import ImageFolderSource
from lut.toolkit.core.radiometry import BandRule
from .synthetic import SyntheticSource


class LabelledSource(Protocol):
    labels: np.ndarray
    rule: BandRule

    @property
    def classes(self) -> tuple[str, ...] | list[str]: ...
    def __len__(self) -> int: ...
    def load(self, index: int) -> np.ndarray: ...
    def describe(self) -> dict: ...


def open_source(
    data: str, image_size: int, bands: tuple[int, ...] | None = None, synthetic_images: int = 8000, seed: int = 0,
    offset_dn: float | None = None, verify: bool = True,
) -> LabelledSource:
    """'synthetic' for the embedded generator, else a labelled image folder."""
    if data == "synthetic":
        if bands is not None:
            raise InputError("`bands` applies to GeoTIFF chips; the synthetic data is RGB: drop `bands`")
        try:
            return SyntheticSource(synthetic_images, image_size, seed)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
    return ImageFolderSource(Path(data), image_size, bands, verify=verify, offset_dn=offset_dn)


def chip_info(source, gsd: float | None) -> ChipInfo:
    """The chips' native side and ground resolution, for classify to read windows of the same footprint."""
    if isinstance(source, SyntheticSource):
        return ChipInfo(source.chip_size_px, gsd or source.gsd_m, "--gsd" if gsd else "synthetic")
    found = source.survey.gsd_m
    if gsd is not None:
        return ChipInfo(source.survey.size_px, gsd, "--gsd")
    return ChipInfo(source.survey.size_px, found, "geotiff" if found else "unknown")


@dataclass(frozen=True)
class Splits:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def stratified_split(labels: np.ndarray, seed: int, val: float = 0.2, test: float = 0.2) -> Splits:
    """60/20/20 by default, stratified and fixed by the seed (pretrain's guard relies on that)."""
    idx = np.arange(len(labels))
    counts = np.bincount(labels)
    if counts.min() < 3:
        few = ", ".join(str(i) for i in np.flatnonzero(counts < 3))
        raise InputError(f"every class needs at least 3 images for a train/val/test split (too few: class {few})")
    try:
        rest, test_idx = train_test_split(idx, test_size=test, stratify=labels, random_state=seed)
        train_idx, val_idx = train_test_split(
            rest, test_size=val / (1.0 - test), stratify=labels[rest], random_state=seed
        )
    except ValueError as exc:
        raise InputError(f"{len(labels)} images are too few for a stratified 60/20/20 split of "
                       f"{len(counts)} classes") from exc
    return Splits(np.sort(train_idx), np.sort(val_idx), np.sort(test_idx))


def limit_train_labels(splits: Splits, labels: np.ndarray, n: int | None, seed: int) -> Splits:
    """A stratified subset of n training labels; val and test stay as they are."""
    if n is None or n >= len(splits.train):
        return splits
    n_classes = len(np.unique(labels))
    if n < n_classes:
        raise InputError(f"`train_labels` {n} is fewer than the {n_classes} classes")
    subset, _ = train_test_split(splits.train, train_size=n, stratify=labels[splits.train], random_state=seed)
    return Splits(np.sort(subset), splits.val, splits.test)


class PatchDataset(torch.utils.data.Dataset):
    """Normalised (3, S, S) tensors; augmentation is drawn from (seed, epoch, index), so runs repeat."""

    def __init__(
        self,
        source: LabelledSource,
        indices: np.ndarray,
        mean: list[float],
        std: list[float],
        augment: bool = False,
        seed: int = 0,
        policy: AugmentConfig = AugmentConfig(),
    ) -> None:
        self.source = source
        self.indices = np.asarray(indices)
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]
        self.augment = augment
        self.policy = policy
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        index = int(self.indices[i])
        image = torch.from_numpy(self.source.load(index))
        if self.augment:
            image = augment(image, self.policy, np.random.default_rng([self.seed, self.epoch, index]))
        return (image - self.mean) / self.std, int(self.source.labels[index])


def stratified_sample(indices: np.ndarray, labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to n of `indices`, seeded and spread over every class present: classes take turns, so each gets
    n / K (or all it has). Quality gates measured on it cover every class, never the first one alone."""
    rng = np.random.default_rng([seed, 271828])
    indices = np.asarray(indices)
    per_class = [rng.permutation(indices[labels[indices] == k]) for k in np.unique(labels[indices])]
    picked: list[int] = []
    depth = 0
    while len(picked) < min(n, len(indices)):
        for members in per_class:
            if depth < len(members) and len(picked) < n:
                picked.append(int(members[depth]))
        depth += 1
    return np.sort(np.asarray(picked, dtype=np.int64))


def class_counts(labels: np.ndarray, classes: list[str]) -> dict[str, int]:
    counts = np.bincount(labels, minlength=len(classes))
    return {name: int(c) for name, c in zip(classes, counts)}
