"""Shared option groups and the parameter types of structured options.

Each group collects its options into one typed config (`train`, `dist`, `strategy`), so a command takes
one parameter per group and a new option touches one place. Structured values (bands, shards, label
counts, grid items, strategy lists) are parsed here, at the boundary, by the library's own parsers:
a bad value fails as a usage error (exit 2) with the parser's message.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from lut.toolkit.core.errors import LutError
from lut.toolkit.core.formats import MAP_PRECISIONS, TRAIN_PRECISIONS
from lut.toolkit.core.terminal import stderr_is_terminal

from lut.toolkit.train.strategies import STRATEGIES as STRATEGY_NAMES

from .group import flags


def show_progress(quiet: bool) -> bool:
    """Progress bars only on a terminal: never written into a redirected log."""
    return not quiet and stderr_is_terminal()


class Parsed(click.ParamType):
    """A value parsed by a library function; its error becomes click's usage error (exit 2)."""

    def __init__(self, name: str, parse: Callable[[str], Any]) -> None:
        self.name = name
        self.parse = parse

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except LutError as exc:
            self.fail(flags(str(exc)), param, ctx)


def _bands(text: str):
    from lut.toolkit.core.radiometry import parse_bands
    return parse_bands(text)


def _shard(text: str):
    from lut.tiling.scene_list import parse_shard
    return parse_shard(text)


def _labels(text: str):
    from lut.toolkit.study.compare import parse_labels
    return parse_labels(text)


def _strategies(text: str):
    from lut.toolkit.study.compare import parse_strategies
    return parse_strategies(text)


def _grid_item(text: str):
    from lut.toolkit.study.recipe_grid import parse_grid
    return parse_grid([text])


def _channels(text: str):
    names = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    if not names:
        from lut.toolkit.core.errors import InputError
        raise InputError(f"`channels` takes band names such as red,green,blue, got {text!r}")
    return names


def _mask_rule(text: str):
    from lut.toolkit.core.masks import parse_rule
    parse_rule(text)
    return text


def _href(text: str):
    from lut.toolkit.core.sources import HrefMap
    HrefMap.parse([text])
    return text


BANDS = Parsed("bands", _bands)
HREF_RULE = Parsed("OLD=NEW", _href)
CHANNELS = Parsed("names", _channels)
MASK_RULE = Parsed("rule", _mask_rule)
SHARD = Parsed("I/N", _shard)
LABEL_COUNTS = Parsed("counts", _labels)
STRATEGIES = Parsed("strategies", _strategies)
GRID_ITEM = Parsed("OPTION=V1,V2", _grid_item)
TRAIN_PRECISION = click.Choice([*TRAIN_PRECISIONS, "bf16"])
MAP_PRECISION = click.Choice(list(MAP_PRECISIONS))


def group(target: str, build: Callable[..., Any], *specs: tuple[tuple[str, ...], dict]):
    """Options `specs` ((decls, attrs) as for click.option) that reach the command as one value,
    `target=build(**their values)`."""
    params = [click.Option(decls, **attrs) for decls, attrs in specs]

    def decorate(f):
        @functools.wraps(f)
        def command(*args, **kwargs):
            values = {p.name: kwargs.pop(p.name) for p in params}
            return f(*args, **kwargs, **{target: build(**values)})
        command.__click_params__ = [*getattr(f, "__click_params__", []), *reversed(params)]
        return command
    return decorate


def opt(*decls: str, **attrs) -> tuple[tuple[str, ...], dict]:
    return decls, attrs


def data_options(f):
    """Where the labelled images come from (finetune, compare)."""
    for decls, attrs in reversed([
        opt("--data", default="synthetic", show_default=True,
            help="'synthetic' (the embedded generator) or an image folder DIR/<class>/*."),
        opt("--synthetic-images", default=8000, show_default=True, type=click.IntRange(12),
            help="Number of synthetic images."),
        opt("--bands", default=None, type=BANDS, help="1-based bands of GeoTIFF chips, e.g. 3,2,1 (default 1,2,3)."),
        opt("--image-size", default=None, type=click.IntRange(1),
            help="Input size in pixels (default: the backbone's)."),
    ]):
        f = click.option(*decls, **attrs)(f)
    return f


def _train(epochs, batch_size, seed, workers, no_cache, quiet, class_weights, label_smoothing, mixup, cutmix, mix_prob,
           ema, patience, crop_scale, colour_jitter, cache_views, drop_path):
    from lut.toolkit.data.augment import AugmentConfig
    from lut.toolkit.train.regularize import MixConfig
    from lut.toolkit.train.config import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, num_workers=workers,
                       cache_features=not no_cache, progress=show_progress(quiet), class_weights=class_weights,
                       label_smoothing=label_smoothing, mix=MixConfig(mixup, cutmix, mix_prob), ema=ema,
                       patience=patience, augment=AugmentConfig(crop_scale, colour_jitter), cache_views=cache_views,
                       drop_path=drop_path)


train_options = group(
    "train", _train,
    opt("--epochs", default=15, show_default=True, type=click.IntRange(1)),
    opt("--batch-size", default=32, show_default=True, type=click.IntRange(1),
        help="The global batch, split over --devices x --nodes ranks."),
    opt("--seed", default=0, show_default=True, type=int),
    opt("--workers", default=0, show_default=True, type=click.IntRange(0), help="DataLoader workers."),
    opt("--no-cache", is_flag=True, help="Recompute frozen features every epoch (for benchmarks)."),
    opt("--quiet", is_flag=True, help="No progress bars."),
    opt("--class-weights", default="none", show_default=True, type=click.Choice(["none", "balanced"]),
        help="balanced: every class weighs the same in the loss (n / (K * n_k)), for imbalanced labels."),
    opt("--label-smoothing", default=0.0, show_default=True, type=click.FloatRange(0, 1, max_open=True)),
    opt("--mixup", default=0.0, show_default=True, type=click.FloatRange(0),
        help="mixup alpha (0 = off); pixel batches only, cached strategies are not mixed."),
    opt("--cutmix", default=0.0, show_default=True, type=click.FloatRange(0),
        help="cutmix alpha (0 = off); with --mixup each mixed batch takes one of the two."),
    opt("--mix-prob", default=1.0, show_default=True, type=click.FloatRange(0, 1),
        help="Probability that a batch is mixed."),
    opt("--ema", default=None, type=click.FloatRange(0, 1, min_open=True, max_open=True),
        help="Decay of an EMA of the weights (e.g. 0.999), used for validation, the bundle and export."),
    opt("--patience", default=None, type=click.IntRange(1),
        help="Stop after this many epochs without a better validation accuracy."),
    opt("--crop-scale", default=1.0, show_default=True, type=click.FloatRange(0.05, 1),
        help="Random resized crops keeping at least this area fraction (1 = off); flips and "
             "90-degree rotations are always on."),
    opt("--colour-jitter", "colour_jitter", default=0.0, show_default=True, type=click.FloatRange(0, 1, max_open=True),
        help="Brightness/contrast/saturation jitter strength (0 = off: colour carries land cover)."),
    opt("--cache-views", default=1, show_default=True, type=click.IntRange(1),
        help="linear_probe/last_block: augmented views cached per image, one per epoch in turn."),
    opt("--drop-path", default=0.0, show_default=True, type=click.FloatRange(0, 1, max_open=True),
        help="Stochastic depth of the last block (linear in depth, DeiT's rule); 0 = off."),
)


def _dist(devices, nodes, accelerator, device, precision):
    from lut.toolkit.train.distributed import DistConfig, from_device

    if device is not None:
        accelerator = from_device(device)
    return DistConfig(devices=devices, nodes=nodes, accelerator=accelerator,
                      precision="bf16-mixed" if precision == "bf16" else precision)


def dist_options(precision_default: str):
    """Where training runs (finetune, compare, pretrain): devices, nodes, accelerator, precision."""
    return group(
        "dist", _dist,
        opt("--devices", default=1, show_default=True, type=click.IntRange(1),
            help="Devices (GPUs, or CPU processes) per node; one node starts its own ranks."),
        opt("--nodes", default=1, show_default=True, type=click.IntRange(1),
            help="Nodes; multi-node runs are started by torchrun or srun around lut (README)."),
        opt("--accelerator", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "gpu"])),
        opt("--device", default=None, hidden=True, type=click.Choice(["auto", "cpu", "cuda"]),
            help="Old name of --accelerator (cuda means gpu)."),
        opt("--precision", default=precision_default, show_default=True, type=TRAIN_PRECISION,
            help="bf16-mixed: bfloat16 autocast where the CPU/GPU has native bf16; auto picks it there (bf16 is an "
                 "alias)."),
    )


def _strategy(strategy, head_lr, backbone_lr, unfreeze_every, layer_decay):
    from lut.toolkit.train.strategies import StrategyConfig
    return StrategyConfig(strategy, head_lr, backbone_lr, unfreeze_every, layer_decay)


strategy_options = group(
    "strategy", _strategy,
    opt("--strategy", default="progressive", show_default=True, type=click.Choice(list(STRATEGY_NAMES))),
    opt("--head-lr", default=None, type=float, help="Head learning rate (default: the strategy's)."),
    opt("--backbone-lr", default=None, type=float, help="Backbone learning rate (default: the strategy's)."),
    opt("--unfreeze-every", default=3, show_default=True, type=click.IntRange(1),
        help="progressive: epochs between unfreezing blocks."),
    opt("--layer-decay", default=0.75, show_default=True, type=float, help="llrd: per-layer LR decay."),
)


def _scene(channels, href_map, mask, mask_rule, mask_dilate, no_mask, max_clipped):
    return {"channels": channels, "href_map": tuple(href_map), "mask": mask, "mask_rule": mask_rule,
            "mask_dilate": mask_dilate, "use_mask": not no_mask, "max_clipped": max_clipped}


def scene_options(f):
    """How a scene is read beyond its pixels (classify, change --model): band files and STAC items, hrefs,
    cloud and quality masks, and the clipping check. Reaches the command as `scene_opts`, ClassifyConfig fields."""
    return group(
        "scene_opts", _scene,
        opt("--channels", default=None, type=CHANNELS,
            help="Band files and STAC items: the bands to stack as the model's input, by eo:bands common name or "
                 "band name (default: red,green,blue)."),
        opt("--href-map", multiple=True, type=HREF_RULE,
            help="Rewrite hrefs starting with OLD to start with NEW (mirrors, requester-pays buckets, local "
                 "copies); repeatable, the longest OLD wins."),
        opt("--mask", default=None, help="A cloud/quality raster (SCL, QA_PIXEL, BQA, ...) for the scene: its "
                                         "excluded pixels are nodata (default: the STAC item's mask asset)."),
        opt("--mask-rule", default=None, type=MASK_RULE,
            help="scl (excludes 0,1,3,8,9,10), qa_pixel, bqa, values:V,V,... or bits:B,LO-HI>=N,... "
                 "(default: from the mask's name)."),
        opt("--mask-dilate", default=0, show_default=True, type=click.IntRange(0),
            help="Grow the masked area by this many scene pixels (cloud edges, shadows)."),
        opt("--no-mask", is_flag=True, help="Ignore the mask asset a STAC item brings."),
        opt("--max-clipped", default=0.2, show_default=True, type=click.FloatRange(0, 1),
            help="Refuse a scene when the scaling clips more than this share of its valid pixels."),
    )(f)
