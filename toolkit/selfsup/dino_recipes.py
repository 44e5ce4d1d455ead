"""Named DINO recipes: presets of `PretrainConfig` values, which explicit options override.

`paper` is the DINO paper's defaults (the dataclass as it stands). `short` is for a budget of about
15 minutes on two CPU cores: ViT-Tiny at 64 px, 25 epochs, a high LR with a short warm-up, a fast
teacher (momentum 0.99, temperature 0.04 throughout) and a small head, the schedule of an earlier
short-run recipe; its colour-preserving augmentation won over the paper's on RSSCN7's validation
split (k-NN and linear-probe accuracy, never test). BENCHMARKS.md ("Issue 14") has the cells, with
commands.
"""

from __future__ import annotations

from dataclasses import fields
from types import MappingProxyType

from lut.toolkit.core.errors import InputError

RECIPES = MappingProxyType({
    "paper": MappingProxyType({}),
    "short": MappingProxyType({
        "backbone": "vit-tiny", "image_size": 64, "epochs": 25, "batch_size": 64, "lr": 2e-3,
        "warmup_epochs": 2, "momentum": 0.99, "teacher_temp_start": 0.04, "teacher_temp_final": 0.04,
        "out_dim": 1024, "colour_jitter": 0.2, "grayscale": 0.0, "solarize": 0.0,
    }),
})


def recipe_config(recipe: str = "paper", **options):
    """A `PretrainConfig` from a recipe's values, with `options` (the ones the user gave) taking precedence."""
    from .dino import PretrainConfig  # torch: only when a config is built, so `lut --help` stays fast

    if recipe not in RECIPES:
        raise InputError(f"unknown DINO recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    known = {f.name for f in fields(PretrainConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(f"unknown pretraining option(s) {', '.join(unknown)}")
    return PretrainConfig(**{**RECIPES[recipe], **options, "recipe": recipe})


def describe(recipe: str) -> str:
    """One line for --help: what the recipe sets."""
    values = RECIPES[recipe]
    if not values:
        return "the defaults shown"
    return ", ".join(f"{name.replace('_', '-')} {value}" for name, value in values.items())


__all__ = ["RECIPES", "describe", "recipe_config"]
