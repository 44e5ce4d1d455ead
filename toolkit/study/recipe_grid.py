"""Recipe search in `lut compare`: a grid over training options, and the winner of each cell group on
validation accuracy (test is only reported, never used to choose)."""

from __future__ import annotations

import itertools
from dataclasses import replace

from lut.toolkit.data.augment import AugmentConfig
from lut.toolkit.core.errors import InputError
from lut.toolkit.train.regularize import MixConfig
from lut.toolkit.train.strategies import StrategyConfig
from lut.toolkit.train.config import TrainConfig

#: option -> (where it lives, type)
GRID_OPTIONS: dict[str, tuple[str, type]] = {
    "class_weights": ("train", str), "label_smoothing": ("train", float), "ema": ("train", float),
    "patience": ("train", int), "cache_views": ("train", int), "drop_path": ("train", float),
    "epochs": ("train", int),
    "mixup": ("mix", float), "cutmix": ("mix", float), "mix_prob": ("mix", float),
    "crop_scale": ("augment", float), "colour_jitter": ("augment", float),
    "head_lr": ("strategy", float), "backbone_lr": ("strategy", float), "unfreeze_every": ("strategy", int),
    "layer_decay": ("strategy", float),
}

Setting = tuple[tuple[str, object], ...]


def parse_grid(items: list[str] | tuple[str, ...]) -> dict[str, list]:
    """`["mixup=0,0.2", "label_smoothing=0,0.1"]` -> {"mixup": [0.0, 0.2], "label_smoothing": [0.0, 0.1]}."""
    grid: dict[str, list] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in GRID_OPTIONS or not values.strip():
            raise InputError(f"`grid` takes OPTION=V1,V2 with OPTION one of {', '.join(GRID_OPTIONS)}; got {item!r}")
        kind = GRID_OPTIONS[name][1]
        try:
            grid[name] = [kind(v.strip()) for v in values.split(",")]
        except ValueError as exc:
            raise InputError(f"`grid` {name} takes {kind.__name__} values, got {values!r}") from exc
    return grid


def settings(grid: dict[str, list]) -> list[Setting]:
    """Every combination, in the order given; `()` (the base recipe) when there is no grid."""
    names = list(grid)
    return [tuple(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))] or [()]


def setting_key(setting: Setting) -> str:
    return "__".join(f"{k}={v}" for k, v in setting)


def apply(setting: Setting, train: TrainConfig, strategy: StrategyConfig) -> tuple[TrainConfig, StrategyConfig]:
    """The base training and strategy options with the setting's values in place."""
    parts: dict[str, dict] = {"train": {}, "mix": {}, "augment": {}, "strategy": {}}
    for name, value in setting:
        where = GRID_OPTIONS[name][0]
        field = {"mix_prob": "prob", "colour_jitter": "colour"}.get(name, name)
        parts[where][field] = value
    mix: MixConfig = replace(train.mix, **parts["mix"])
    augment: AugmentConfig = replace(train.augment, **parts["augment"])
    return replace(train, mix=mix, augment=augment, **parts["train"]), replace(strategy, **parts["strategy"])


def winners(cells: list[dict]) -> list[dict]:
    """Per (backbone, strategy, labels), the cell with the best validation accuracy (the first on ties)."""
    best: dict[tuple, dict] = {}
    for c in cells:
        group = (c["backbone"], c["strategy"], c["labels"])
        if group not in best or c["best_val_accuracy"] > best[group]["best_val_accuracy"]:
            best[group] = c
    return list(best.values())


def search_table(cells: list[dict]) -> list[str]:
    """Every setting of every group, its validation and test accuracy, the validation winner marked."""
    chosen = {id(c) for c in winners(cells)}
    out = ["## 6. Recipe search (the winner of each group is chosen on validation accuracy)", "",
           "| backbone | strategy | labels | setting | val accuracy | test accuracy | winner |",
           "|---|---|---|---|---|---|---|"]
    for c in cells:
        labels = "all" if c["labels"] is None else c["labels"]
        out.append(f"| {c['backbone']} | {c['strategy']} | {labels} | {c.get('setting') or 'base'} | "
                   f"{c['best_val_accuracy']:.4f} | {c['accuracy']:.4f} | {'yes' if id(c) in chosen else ''} |")
    return out + [""]
