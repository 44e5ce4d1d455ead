"""Training commands: `finetune`, `pretrain` and `compare`."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from lut.toolkit.selfsup.dino_recipes import describe as describe_recipe

from .options import (GRID_ITEM, LABEL_COUNTS, STRATEGIES, BANDS, data_options, dist_options, show_progress,
                      strategy_options, train_options)


@click.command()
@strategy_options
@click.option("--backbone", default="google/vit-base-patch16-224", show_default=True,
              help="Hub id, local checkpoint dir (e.g. from lut pretrain), or vit-tiny|vit-small|vit-base.")
@data_options
@train_options
@click.option("--train-labels", default=None, type=click.IntRange(1),
              help="Use a stratified subset of N training labels.")
@click.option("--gsd", default=None, type=float,
              help="Ground resolution of photo chips in metres per pixel (GeoTIFF chips carry theirs); recorded so "
                   "classify reads windows of the same ground footprint.")
@click.option("--reflectance-offset", default=None, type=float,
              help="Added to 16-bit reflectance before /10000, e.g. -1000 for Sentinel-2 L2A baseline >= 04.00 "
                   "(default: BOA_ADD_OFFSET from the chips' metadata, else 0).")
@click.option("-o", "--output", default=None, type=click.Path(path_type=Path),
              help="Bundle dir (default models/<strategy>).")
@click.option("--overwrite", is_flag=True, help="Replace an existing lut bundle (never anything else).")
@dist_options("fp32")
def finetune(strategy, backbone, data, synthetic_images, bands, image_size, train, train_labels, gsd,
             reflectance_offset, output, overwrite, dist):
    """Fine-tune a ViT with one transfer strategy and write a model bundle."""
    from lut.toolkit.train.finetune import FinetuneConfig, finetune as run, format_metrics

    cfg = FinetuneConfig(
        data=data, synthetic_images=synthetic_images, bands=bands, image_size=image_size, backbone=backbone,
        strategy=strategy, train=train, dist=dist, train_labels=train_labels, gsd=gsd,
        reflectance_offset=reflectance_offset, output=output, overwrite=overwrite,
    )
    target, outcome = run(cfg)
    if outcome is not None:  # None on the other ranks of a torchrun/srun run
        click.echo(format_metrics(outcome.metrics))
        click.echo(f"bundle: {target}")


@click.command()
@click.option("--method", default="dino", show_default=True, type=click.Choice(["dino"]))
@click.option("--recipe", default="paper", show_default=True, type=click.Choice(["paper", "short"]),
              help="A preset; options given explicitly override it. paper: the defaults shown. short (about 15 min "
                   "on 2 CPU cores, augmentation chosen on RSSCN7 validation, see README): "
                   + describe_recipe("short") + ".")
@click.option("--data", "sources", multiple=True, required=True,
              help="Repeatable: an image folder (labels ignored) or a GeoTIFF scene; PATH:3,2,1 picks its bands.")
@click.option("--backbone", default="vit-small", show_default=True,
              help="vit-tiny|vit-small|vit-base (random init) or a local ViT checkpoint to keep pretraining.")
@click.option("-o", "--output", default=None, type=click.Path(path_type=Path),
              help="Checkpoint dir (default models/dino-<backbone>).")
@click.option("--image-size", default=224, show_default=True, type=click.IntRange(1), help="Global crop size.")
@click.option("--local-size", default=None, type=int, help="Local crop size (default 96/224 of the global).")
@click.option("--local-views", default=6, show_default=True, type=click.IntRange(0))
@click.option("--epochs", default=100, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(2),
              help="The global batch (over every device); the LR scales per 256 images of it.")
@click.option("--lr", default=5e-4, show_default=True, type=float, help="Peak LR per 256 images.")
@click.option("--warmup-epochs", default=10, show_default=True, type=click.IntRange(0))
@click.option("--momentum", default=0.996, show_default=True, type=click.FloatRange(0, 1),
              help="Teacher EMA momentum at the start (cosine schedule to 1).")
@click.option("--teacher-temp-start", default=0.04, show_default=True,
              type=click.FloatRange(0, min_open=True),
              help="Teacher temperature at the start of the warm-up (the paper's --warmup_teacher_temp).")
@click.option("--teacher-temp-final", default=0.07, show_default=True, type=click.FloatRange(0, min_open=True),
              help="Teacher temperature after the warm-up (the paper's --teacher_temp).")
@click.option("--weight-decay", default=0.04, show_default=True, type=click.FloatRange(0),
              help="AdamW weight decay at the start, on weights only (not norms, biases, position embeddings, CLS).")
@click.option("--weight-decay-end", default=0.4, show_default=True, type=click.FloatRange(0),
              help="Weight decay at the end of the cosine schedule.")
@click.option("--colour-jitter", default=0.5, show_default=True, type=click.FloatRange(0),
              help="Colour-jitter strength (0 disables); colour carries much of the land-cover signal.")
@click.option("--grayscale", default=0.2, show_default=True, type=click.FloatRange(0, 1),
              help="Probability of a grayscale view.")
@click.option("--solarize", default=0.2, show_default=True, type=click.FloatRange(0, 1),
              help="Probability of solarizing the second global view.")
@click.option("--out-dim", default=4096, show_default=True, type=click.IntRange(2), help="DINO head output size.")
@click.option("--head-hidden", default=1024, show_default=True, type=click.IntRange(2))
@click.option("--bottleneck", default=256, show_default=True, type=click.IntRange(2))
@click.option("--windows-per-scene", default=200, show_default=True, type=click.IntRange(1))
@click.option("--bands", default=None, type=BANDS, help="Bands for every raster source, e.g. 3,2,1.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Also the split seed: a labelled folder contributes only finetune's training split for it.")
@click.option("--all-images", is_flag=True, help="Use every image of labelled folders (disables the split guard).")
@click.option("--monitor", default=None, type=click.Path(path_type=Path),
              help="Labelled folder: k-NN accuracy after each epoch, to see collapse early.")
@click.option("--resume", is_flag=True, help="Continue from the last epoch checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output (and any unfinished run).")
@click.option("--workers", default=0, show_default=True, type=click.IntRange(0))
@click.option("--quiet", is_flag=True, help="No progress bars (one JSON line per epoch instead).")
@dist_options("auto")
def pretrain(recipe, sources, all_images, quiet, **options):
    """Self-supervised DINO pretraining on unlabelled imagery; the result is a backbone for finetune."""
    from lut.toolkit.selfsup.dino import pretrain as run
    from lut.toolkit.selfsup.dino_recipes import RECIPES, recipe_config

    options.update(sources=list(sources), split_guard=not all_images, progress=show_progress(quiet))
    ctx = click.get_current_context()
    for name in RECIPES[recipe]:  # the recipe's values stand where the user left the default
        if ctx.get_parameter_source(name) is ParameterSource.DEFAULT:
            del options[name]
    result = run(recipe_config(recipe, **options))
    if result is None:  # the other ranks of a torchrun/srun run
        return
    last = result.history[-1] if result.history else {}
    knn = f", k-NN accuracy {last['knn_accuracy']:.3f}" if "knn_accuracy" in last else ""
    click.echo(f"pretrained {len(result.history)} epochs in {result.seconds:.0f} s, final loss "
               f"{last.get('loss', float('nan')):.4f}{knn}")
    click.echo(f"backbone: {result.output}  (use: lut finetune --backbone {result.output})")


@click.command()
@click.option("--backbones", required=True, help="Comma-separated backbones (specs or checkpoint dirs).")
@click.option("--strategies", default="all", show_default=True, type=STRATEGIES,
              help="Comma-separated strategies, or all.")
@click.option("--train-labels", default="all", show_default=True, type=LABEL_COUNTS,
              help="Label counts, e.g. 500,1000,2000,all.")
@click.option("--efficiency-strategies", default="linear_probe,differential_lr,progressive", show_default=True,
              type=STRATEGIES, help="Strategies also run at the smaller label counts.")
@data_options
@train_options
@click.option("--grid", multiple=True, type=GRID_ITEM,
              help="Repeatable recipe search, e.g. --grid mixup=0,0.2 --grid label_smoothing=0,0.1: every combination "
                   "runs for every cell; tables 1-4 show each cell's winner on validation accuracy.")
@click.option("-o", "--output", default="results", show_default=True, type=click.Path(path_type=Path))
@dist_options("fp32")
def compare(backbones, strategies, train_labels, efficiency_strategies, grid, data, synthetic_images, bands,
            image_size, train, output, dist):
    """Run a grid of finetune runs and write the study's tables (resumable: finished cells are cached)."""
    from lut.toolkit.study.compare import CompareConfig, run_compare

    cfg = CompareConfig(
        backbones=[b.strip() for b in backbones.split(",") if b.strip()], strategies=strategies,
        train_labels=train_labels, efficiency_strategies=efficiency_strategies,
        data=data, synthetic_images=synthetic_images, bands=bands, image_size=image_size,
        train=train, dist=dist, grid={k: v for item in grid for k, v in item.items()}, output=output)
    result = run_compare(cfg)
    if result is not None:  # None on the other ranks of a torchrun/srun run
        click.echo(f"results: {result['output'] / 'results.md'}")
