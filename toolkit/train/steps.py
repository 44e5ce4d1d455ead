"""The loop's small steps: the cosine LR schedule, the finite-loss check, a rank's loader."""

from __future__ import annotations

import math

import torch

from lut.toolkit.core.errors import RunFailed
from lut.toolkit.data.datasets import PatchDataset

from .distributed import Shard


class CosineSchedule:
    """Cosine decay applied to every param group's own base LR, including groups added later."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int) -> None:
        self.optimizer = optimizer
        self.total_steps = max(total_steps, 1)
        self.step_count = 0
        self.apply()

    def factor(self) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(self.step_count, self.total_steps) / self.total_steps))

    def apply(self) -> None:
        f = self.factor()
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * f

    def step(self) -> None:
        self.step_count += 1
        self.apply()


def check_finite(fabric, loss: torch.Tensor, epoch: int) -> None:
    """Stop at once when the loss is NaN/inf on any rank: nothing after it would be a model. Every rank
    stops together; one stopping alone would leave the others waiting inside a collective."""
    local = bool(torch.isfinite(loss.detach()).item())
    finite = local
    if fabric.world_size > 1:
        finite = fabric.all_reduce(torch.tensor(float(local), device=fabric.device), reduce_op="min").item() == 1
    if not finite:
        value = "NaN/inf on another rank" if local else loss.item()
        raise RunFailed(f"the training loss became {value} in epoch {epoch}; nothing was written. Check the "
                       "data for invalid pixels, or lower the learning rate")


def shard_loader(dataset: PatchDataset, shard: Shard, batch_size: int, workers: int):
    """This rank's share of `dataset`, in order (padding included: `shard.valid` says which rows count)."""
    return torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, shard.indices.tolist()),
                                       batch_size=batch_size, shuffle=False, num_workers=workers)
