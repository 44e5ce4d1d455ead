"""`lut finetune` as a library call: data, backbone, strategy, training, evaluation, the model bundle."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from lut.toolkit.core.atomic import atomic_directory, check_writable_dir
from lut.toolkit.vit.backbones import DEFAULT_BACKBONE, check_backbone_spec, is_local_spec, load_classifier
from lut.toolkit.core.bundle import Bundle
from .distributed import DistConfig, launch
from lut.toolkit.vit.drop_path import add_drop_path
from lut.toolkit.data.datasets import (
    LabelledSource, PatchDataset, Splits, chip_info, limit_train_labels, open_source, stratified_split)
from lut.toolkit.core.errors import InputError
from .evaluation import classification_metrics
from lut.toolkit.core.ownership import check_output_dir
from lut.toolkit.core.raster import check_gsd
from .curves import curves_csv, plot_curves
from .report import format_metrics, markdown_report, plot_confusion
from lut.toolkit.core.store import DEFAULT_STORE, set_latest
from .strategies import StrategyConfig, make_plan
from .config import TrainConfig
from .trainer import Trainer


@dataclass
class FinetuneConfig:
    data: str = "synthetic"
    synthetic_images: int = 8000
    bands: tuple[int, ...] | None = None
    image_size: int | None = None
    backbone: str = DEFAULT_BACKBONE
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    dist: DistConfig = field(default_factory=DistConfig)
    train_labels: int | None = None
    gsd: float | None = None  # metres per pixel of photo chips (GeoTIFF chips carry their own)
    reflectance_offset: float | None = None  # e.g. -1000 for Sentinel-2 L2A baseline >= 04.00 without metadata
    output: Path | None = None
    overwrite: bool = False
    store: Path = DEFAULT_STORE

    def check(self) -> None:
        if self.image_size is not None and self.image_size <= 0:
            raise InputError(f"`image_size` must be a positive multiple of the patch size, got {self.image_size}")
        check_gsd(self.gsd)
        self.dist.check(self.train.batch_size)


@dataclass
class FinetuneOutcome:
    """`model` and `processor` are None when the ranks ran in other processes: the bundle holds them."""

    model: torch.nn.Module | None
    processor: object | None
    metrics: dict
    bundle: Bundle


def library_versions() -> dict:
    import sklearn
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "scikit-learn": sklearn.__version__, "numpy": np.__version__}


def prepare_data(cfg: FinetuneConfig, image_size: int) -> tuple[LabelledSource, Splits]:
    source = open_source(cfg.data, image_size, cfg.bands, cfg.synthetic_images, cfg.train.seed,
                         cfg.reflectance_offset)
    splits = stratified_split(source.labels, cfg.train.seed)
    return source, limit_train_labels(splits, source.labels, cfg.train_labels, cfg.train.seed)


def _probe_image_size(cfg: FinetuneConfig) -> int | None:
    """The image size the backbone wants when none was given (read from a local config, no download)."""
    if cfg.image_size is not None:
        return cfg.image_size
    config = Path(cfg.backbone) / "config.json"
    if config.is_file():
        try:
            return int(json.loads(config.read_text()).get("image_size", 224))
        except (ValueError, json.JSONDecodeError):
            return None
    return 224


def run_finetune(cfg: FinetuneConfig, fabric=None) -> FinetuneOutcome:
    """Train and evaluate one strategy on this rank of `fabric` (one device when None); writes nothing
    (see `finetune`). Every rank returns the same metrics."""
    torch.manual_seed(cfg.train.seed)
    image_size = _probe_image_size(cfg) or 224
    source, splits = prepare_data(cfg, image_size)
    classes = list(source.classes)
    model, processor, backbone = load_classifier(cfg.backbone, classes, cfg.image_size)
    if backbone.image_size != image_size:  # the checkpoint decided; reopen the data at its size
        image_size = backbone.image_size
        source, splits = prepare_data(cfg, image_size)
    add_drop_path(model, cfg.train.drop_path)
    plan = make_plan(cfg.strategy, backbone.num_layers, cfg.train.epochs)
    mean, std = list(processor.image_mean), list(processor.image_std)
    seed = cfg.train.seed
    train_set = PatchDataset(source, splits.train, mean, std, augment=True, seed=seed, policy=cfg.train.augment)
    val_set = PatchDataset(source, splits.val, mean, std)
    test_set = PatchDataset(source, splits.test, mean, std)

    trainer = Trainer(model, plan, cfg.train, fabric)
    result = trainer.fit(train_set, val_set)
    y_pred, y_true = trainer.predict_test(test_set)
    metrics = classification_metrics(y_true, y_pred, classes)
    metrics.update(
        strategy=plan.name,
        trainable_params=result.trainable_params,
        total_params=result.total_params,
        train_seconds=result.train_seconds,
        best_epoch=result.best_epoch,
        best_val_accuracy=result.best_val_accuracy,
        history=result.history,
        train_labels=int(len(splits.train)),
    )
    model.to("cpu")
    bundle = Bundle(
        kind="model", image_size=image_size, classes=classes, band_rule=source.rule, chip=chip_info(source, cfg.gsd),
        backbone=asdict(backbone), strategy=asdict(cfg.strategy), data=cfg.data, data_source=source.describe(),
        split={"seed": seed, "fractions": [0.6, 0.2, 0.2], "train": int(len(splits.train)),
               "val": int(len(splits.val)), "test": int(len(splits.test)), "train_labels": cfg.train_labels},
        training={**asdict(cfg.train), "devices": trainer.fabric.world_size,
                  "precision": str(trainer.fabric.strategy.precision.precision)}, versions=library_versions(),
        metrics={k: metrics[k] for k in ("accuracy", "macro_f1", "per_class_f1")},
    )
    return FinetuneOutcome(model, processor, metrics, bundle)


def write_bundle(outcome: FinetuneOutcome, target: Path, overwrite: bool) -> None:
    """Model, processor, lut.json, metrics.json, report.md, curves.csv/.png and confusion.png, all or nothing."""
    with atomic_directory(target, overwrite) as tmp:
        outcome.model.save_pretrained(tmp, safe_serialization=True)
        outcome.processor.save_pretrained(tmp)
        outcome.bundle.save(tmp)
        (tmp / "metrics.json").write_text(json.dumps(outcome.metrics, indent=2))
        (tmp / "report.md").write_text(markdown_report(outcome.metrics, outcome.bundle))
        plot_confusion(outcome.metrics, tmp / "confusion.png")
        (tmp / "curves.csv").write_text(curves_csv(outcome.metrics["history"]))
        plot_curves(outcome.metrics["history"], tmp / "curves.png", f"{outcome.metrics['strategy']}")


def finetune_inputs(cfg: FinetuneConfig) -> list[Path]:
    """What finetune reads, which its output must never replace or hold."""
    inputs = [] if cfg.data == "synthetic" else [Path(cfg.data)]
    if is_local_spec(cfg.backbone):
        inputs.append(Path(cfg.backbone))
    return inputs


def finetune(cfg: FinetuneConfig) -> tuple[Path, FinetuneOutcome]:
    """Fine-tune a ViT with one transfer strategy, write its bundle and point `store/LATEST` at it.

    Args:
        cfg: data, backbone, strategy, training and device options, and the output.

    Returns:
        The bundle directory and the run's outcome (metrics, curves); the outcome is None on the ranks
        other than 0 of a torchrun/srun run.

    Raises:
        InputError: data, backbone or options that cannot be used; nothing is written.
        OwnershipError: an output exists that lut may not replace.
        HubUnreachable: a hub backbone while the hub cannot be reached.
        RunFailed: the training loss became NaN or inf; nothing is written.
    """
    target = Path(cfg.output) if cfg.output is not None else Path(cfg.store) / cfg.strategy.name
    cfg.check()
    check_backbone_spec(cfg.backbone)  # a missing directory or an unreachable hub fails before the data is read
    # fail before hours of training, not after: a new path, or a lut bundle under --overwrite, never an input
    check_output_dir(target, cfg.overwrite, ("model",), finetune_inputs(cfg), "output")
    check_writable_dir(Path(cfg.store), create=True)  # models/LATEST is written at the end
    return target, launch(cfg.dist, _finetune_rank, cfg, target)


def _finetune_rank(fabric, cfg: FinetuneConfig, target: Path) -> FinetuneOutcome:
    """One rank's share of `finetune`; rank 0 alone writes the bundle and models/LATEST. The model comes
    back only from a one-process run; ranks in other processes return the metrics and the bundle."""
    outcome = run_finetune(cfg, fabric)
    if fabric.global_rank == 0:
        write_bundle(outcome, target, cfg.overwrite)
        set_latest(target, cfg.store)
    fabric.barrier()
    return outcome if fabric.world_size == 1 else FinetuneOutcome(None, None, outcome.metrics, outcome.bundle)


__all__ = ["FinetuneConfig", "FinetuneOutcome", "finetune", "format_metrics", "run_finetune", "write_bundle"]
