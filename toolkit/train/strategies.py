"""The transfer strategies: which stages train in which epoch, and at what learning rate."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from lut.toolkit.core.errors import InputError

Strategy = Literal["linear_probe", "last_block", "full_ft", "differential_lr", "progressive", "llrd"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)


@dataclass(frozen=True)
class StrategyConfig:
    """The study's settings as defaults; None means 'the strategy's default'."""

    name: Strategy = "progressive"
    head_lr: float | None = None
    backbone_lr: float | None = None
    unfreeze_every: int = 3
    layer_decay: float = 0.75

    def check(self) -> None:
        """Refuse an unknown strategy or a schedule that cannot run, before anything loads."""
        if self.name not in STRATEGIES:
            raise InputError(f"unknown strategy {self.name!r}: choose from {', '.join(STRATEGIES)}")
        if self.unfreeze_every < 1:
            raise InputError(f"`unfreeze_every` must be at least 1, got {self.unfreeze_every}")
        if not 0 < self.layer_decay <= 1:
            raise InputError(f"`layer_decay` must be in (0, 1], got {self.layer_decay}")
        for name in ("head_lr", "backbone_lr"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InputError(f"`{name}` must be positive, got {value}")


@dataclass(frozen=True)
class Plan:
    """cuts[e]: first trainable stage in epoch e; stage_lr[s]: its learning rate once trainable."""

    name: str
    cuts: tuple[int, ...]
    stage_lr: dict[int, float] = field(default_factory=dict)
    head_lr: float = 1e-3

    @property
    def fixed_cut(self) -> bool:
        return len(set(self.cuts)) == 1


def make_plan(cfg: StrategyConfig, num_blocks: int, epochs: int) -> Plan:
    """Expand a strategy name into per-epoch cuts and per-stage learning rates."""
    cfg.check()
    name = cfg.name
    if epochs < 1:
        raise InputError("`epochs` must be at least 1")
    stages = num_blocks + 2  # embeddings, blocks, final norm
    head_only = stages

    def lr(value: float | None, default: float) -> float:
        return default if value is None else value

    if name == "linear_probe":
        # a linear head on standardized frozen features converges within the epochs only at a high LR
        return Plan(name, (head_only,) * epochs, {}, lr(cfg.head_lr, 3e-2))
    if name == "last_block":
        rate = lr(cfg.backbone_lr, 5e-4)
        cut = stages - 2  # last block + final norm
        return Plan(name, (cut,) * epochs, {s: rate for s in range(cut, stages)}, lr(cfg.head_lr, 5e-4))
    if name == "full_ft":
        rate = lr(cfg.backbone_lr, 2e-5)
        return Plan(name, (0,) * epochs, {s: rate for s in range(stages)}, lr(cfg.head_lr, rate))
    if name == "differential_lr":
        rate = lr(cfg.backbone_lr, 2e-5)
        return Plan(name, (0,) * epochs, {s: rate for s in range(stages)}, lr(cfg.head_lr, 1e-3))
    if name == "llrd":
        top = lr(cfg.backbone_lr, 1e-4)
        rates = {s: top * cfg.layer_decay ** (stages - 1 - s) for s in range(stages)}
        return Plan(name, (0,) * epochs, rates, lr(cfg.head_lr, 1e-3))
    # progressive: head alone, then one more block from the top every `unfreeze_every` epochs;
    # the final norm joins with the first block.
    if cfg.unfreeze_every < 1:
        raise InputError("`unfreeze_every` must be at least 1")
    rate = lr(cfg.backbone_lr, 2e-5)
    cuts = []
    for epoch in range(epochs):
        unfrozen_blocks = min(epoch // cfg.unfreeze_every, num_blocks)
        cuts.append(head_only if unfrozen_blocks == 0 else stages - 1 - unfrozen_blocks)
    # the head-only epochs are a linear probe that must converge in a few epochs: a higher head LR
    return Plan(name, tuple(cuts), {s: rate for s in range(stages)}, lr(cfg.head_lr, 1e-2))
