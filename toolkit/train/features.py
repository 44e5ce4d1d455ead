"""Cached features of a frozen prefix, and the standardized head that trains on them."""

from __future__ import annotations


import torch
from torch import nn
from tqdm.auto import tqdm

from lut.toolkit.data.datasets import PatchDataset
from lut.toolkit.vit.staged import StagedViT

from .config import TrainConfig
from .distributed import Shard
from .steps import shard_loader


class FeatureCache:
    """Prefix outputs for a fixed cut, computed once; sequence caches are kept in float16.

    `views` > 1 caches that many augmented views of each image (the dataset's augmentation for epochs
    0..views-1); epoch e trains on view e mod views. Under DDP each rank caches only its `shard` of the
    dataset (equal sizes, so equal batch counts)."""

    def __init__(self, staged: StagedViT, cut: int, dataset: PatchDataset, cfg: TrainConfig, device: torch.device,
                 desc: str, shard: Shard | None = None, batch_size: int | None = None, views: int = 1) -> None:
        self.shard = shard if shard is not None else Shard.of(len(dataset), 1, 0)
        loader = shard_loader(dataset, self.shard, batch_size or cfg.batch_size, cfg.num_workers)
        self.views: list[torch.Tensor] = []
        for view in range(views):
            if views > 1:
                dataset.set_epoch(view)
            chunks, labels = [], []
            with torch.no_grad():
                for x, y in tqdm(loader, desc=f"{desc} ({view + 1}/{views})" if views > 1 else desc, leave=False,
                                 disable=not cfg.progress, unit="batch"):
                    h = staged.prefix(x.to(device), cut)
                    chunks.append(h.to("cpu", torch.float16 if h.dim() == 3 else torch.float32))
                    labels.append(y)
            self.views.append(torch.cat(chunks))
        self.features = self.views[0]
        self.labels = torch.cat(labels)

    def batches(self, batch_size: int, generator: torch.Generator | None = None, epoch: int = 0):
        features = self.views[epoch % len(self.views)]
        order = (torch.randperm(len(self.labels), generator=generator) if generator is not None
                 else torch.arange(len(self.labels)))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            yield features[idx].float(), self.labels[idx]


class StandardizedHead(nn.Module):
    """The classifier on centred, rescaled features, folded into a plain Linear afterwards.

    The CLS features of a frozen backbone (random or self-supervised) share a large common offset and
    differ in small directions; a linear head trained on them raw converges far too slowly to measure
    what the backbone holds. Centring with training-set means and dividing by **one** global scale (the
    RMS of the per-feature standard deviations) fixes that. Per-feature standardization did too, but it
    multiplied the weights of low-variance feature directions (up to 7.8x the median column norm on an
    RSSCN7 bundle), which amplified INT8 quantization noise: top-1 agreement of the INT8 export fell from
    97.3% to 93.2% on the same model (BENCHMARKS.md). The statistics are fixed, so folding is exact.
    """

    def __init__(self, linear: nn.Linear, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.linear = linear
        self.register_buffer("mean", mean.to(linear.weight))
        self.register_buffer("std", std.to(linear.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x - self.mean) / self.std)

    @torch.no_grad()
    def folded(self) -> nn.Linear:
        out = nn.Linear(self.linear.in_features, self.linear.out_features).to(self.linear.weight)
        weight = self.linear.weight / self.std
        out.weight.copy_(weight)
        out.bias.copy_(self.linear.bias - weight @ self.mean)
        return out


@torch.no_grad()
def head_input_moments(staged: StagedViT, batches, cut: int, device: torch.device,
                       valid: torch.Tensor | None = None) -> torch.Tensor:
    """Count, per-feature sum and sum of squares (float64, one row each) of the classifier's input over
    `batches` of prefix outputs at `cut`; rows where `valid` is False (shard padding) are left out."""
    features = torch.cat([staged.head_input(x.to(device), cut).double().cpu() for x, _ in batches])
    if valid is not None:
        features = features[valid]
    count = torch.full((features.shape[1],), float(len(features)), dtype=torch.float64)
    return torch.stack([count, features.sum(0), features.pow(2).sum(0)])


def moments_to_statistics(moments: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    count, total, squares = moments
    mean = total / count
    var = (squares / count - mean.pow(2)).clamp_min(0)
    return mean.float(), (var + eps).sqrt().float()


def head_input_statistics(staged: StagedViT, batches, cut: int, device: torch.device,
                          eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std of the classifier's input over `batches` of prefix outputs at `cut`."""
    return moments_to_statistics(head_input_moments(staged, batches, cut, device), eps)
