"""Training regularizers users expect from timm and TorchGeo: class weights, mixup/cutmix, weight EMA."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lut.toolkit.core.errors import InputError

CLASS_WEIGHTS = ("none", "balanced")


def class_weights(mode: str, labels: np.ndarray, num_classes: int) -> torch.Tensor | None:
    """`balanced`: n / (K * n_k) per class (scikit-learn's rule), so every class weighs the same in the loss;
    a class absent from the training labels gets weight 0. `none`: None."""
    if mode not in CLASS_WEIGHTS:
        raise InputError(f"`class_weights` must be one of {', '.join(CLASS_WEIGHTS)}, got {mode!r}")
    if mode == "none":
        return None
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


@dataclass(frozen=True)
class MixConfig:
    """mixup and cutmix on pixel batches (timm's rule): with probability `prob` a batch is mixed, by cutmix
    when only it is on or on a coin flip, else mixup; the mixing ratio is drawn from Beta(alpha, alpha)."""

    mixup: float = 0.0  # alpha; 0 = off
    cutmix: float = 0.0
    prob: float = 1.0

    @property
    def active(self) -> bool:
        return (self.mixup > 0 or self.cutmix > 0) and self.prob > 0

    def check(self) -> None:
        if self.mixup < 0 or self.cutmix < 0 or not 0 <= self.prob <= 1:
            raise InputError("`mixup` and `cutmix` take alphas >= 0 and `mix_prob` a probability in [0, 1]")


def mix_batch(x: torch.Tensor, y: torch.Tensor, num_classes: int, cfg: MixConfig,
              rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A mixed batch and its soft targets (one-hot when the batch is left alone); the partner of image i
    is image i in the batch reversed."""
    targets = nn.functional.one_hot(y, num_classes).float()
    if not cfg.active or rng.random() >= cfg.prob:
        return x, targets
    use_cutmix = cfg.cutmix > 0 and (cfg.mixup <= 0 or rng.random() < 0.5)
    lam = float(rng.beta(cfg.cutmix, cfg.cutmix) if use_cutmix else rng.beta(cfg.mixup, cfg.mixup))
    partner = x.flip(0)
    if use_cutmix:
        h, w = x.shape[-2:]
        cut_h, cut_w = int(h * np.sqrt(1 - lam)), int(w * np.sqrt(1 - lam))
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
        x = x.clone()
        x[..., y0:y1, x0:x1] = partner[..., y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the area actually kept
    else:
        x = lam * x + (1 - lam) * partner
    return x, lam * targets + (1 - lam) * targets.flip(0)


class WeightEma:
    """An exponential moving average of the trainable weights, used for validation, the best snapshot and
    export. Parameters that start training later join the average with their current values."""

    def __init__(self, decay: float) -> None:
        if not 0 < decay < 1:
            raise InputError(f"`ema` takes a decay in (0, 1), e.g. 0.999; got {decay}")
        self.decay = decay
        self.shadow: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def update(self, params: list[nn.Parameter]) -> None:
        for p in params:
            avg = self.shadow.get(id(p))
            if avg is None:
                self.shadow[id(p)] = p.detach().clone()
            else:
                avg.mul_(self.decay).add_(p.detach(), alpha=1 - self.decay)

    @contextlib.contextmanager
    def applied(self, params: list[nn.Parameter]):
        """The averaged values in place of the live ones for the duration of the block."""
        live = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p in params:
                if id(p) in self.shadow:
                    p.copy_(self.shadow[id(p)])
        try:
            yield
        finally:
            with torch.no_grad():
                for p, value in zip(params, live):
                    p.copy_(value)
