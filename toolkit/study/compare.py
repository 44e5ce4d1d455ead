"""`lut compare`: the study's tables on your own data — a grid of finetune runs, cached cell by cell."""

from __future__ import annotations

import hashlib
import logging
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lut.toolkit.core.atomic import write_text_atomic
from lut.toolkit.vit.backbones import check_backbone_spec
from lut.toolkit.core.bundle import BUNDLE_FILE, Bundle
from lut.toolkit.core.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, InputError, Interrupted, warn
from lut.toolkit.core.ownership import COMPARE_FORMAT, check_not_input, is_compare_directory
from lut.toolkit.train.distributed import DistConfig, launch
from lut.toolkit.train.finetune import FinetuneConfig, run_finetune
from .recipe_grid import Setting, apply, setting_key, settings
from lut.toolkit.train.strategies import STRATEGIES, StrategyConfig
from lut.toolkit.train.config import TrainConfig

EFFICIENCY_STRATEGIES = ("linear_probe", "differential_lr", "progressive")
log = logging.getLogger(__name__)
DOMAIN_STRATEGIES = ("linear_probe", "progressive")


@dataclass
class CompareConfig:
    backbones: list[str]
    strategies: list[str] = field(default_factory=lambda: list(STRATEGIES))
    train_labels: list[int | None] = field(default_factory=lambda: [None])
    efficiency_strategies: list[str] = field(default_factory=lambda: list(EFFICIENCY_STRATEGIES))
    data: str = "synthetic"
    synthetic_images: int = 8000
    bands: tuple[int, ...] | None = None
    image_size: int | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    dist: DistConfig = field(default_factory=DistConfig)
    grid: dict[str, list] = field(default_factory=dict)  # recipe search: option -> values (see recipe_grid)
    output: Path = Path("results")


@dataclass(frozen=True)
class Cell:
    backbone: str
    strategy: str
    labels: int | None  # None: every training label
    setting: Setting = ()  # a point of the recipe grid; () is the base recipe

    @property
    def key(self) -> str:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.backbone.strip("/"))
        key = f"{name}__{self.strategy}__{'all' if self.labels is None else self.labels}"
        return f"{key}__{setting_key(self.setting)}" if self.setting else key


def parse_labels(text: str) -> list[int | None]:
    out: list[int | None] = []
    for part in text.split(","):
        part = part.strip()
        if part == "all":
            out.append(None)
        elif part.isdigit() and int(part) > 0:
            out.append(int(part))
        else:
            raise InputError(f"`train_labels` takes positive counts and 'all', e.g. 500,1000,all; got {text!r}")
    return out


def parse_strategies(text: str) -> list[str]:
    if text == "all":
        return list(STRATEGIES)
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown or not names:
        raise InputError(f"unknown strategy {', '.join(unknown) or text!r}: choose from {', '.join(STRATEGIES)} or all")
    return names


def check_backbones(backbones: list[str]) -> None:
    """Fail before hours of training when a backbone directory is missing or the hub unreachable."""
    for spec in backbones:
        check_backbone_spec(spec)


def plan_cells(cfg: CompareConfig) -> list[Cell]:
    """Every strategy with all labels for every backbone; the data-efficiency strategies at each label count."""
    cells = []
    for backbone in cfg.backbones:
        for labels in cfg.train_labels:
            for strategy in cfg.strategies:
                if labels is None or strategy in cfg.efficiency_strategies:
                    cells += [Cell(backbone, strategy, labels, setting) for setting in settings(cfg.grid)]
    return cells


#: training options added after results folders existed: left out of the fingerprint at their defaults,
#: so those folders still resume
LATER_OPTIONS = ("class_weights", "label_smoothing", "mix", "ema", "patience", "augment", "cache_views", "drop_path")


def train_fingerprint(train: TrainConfig) -> dict:
    defaults = asdict(TrainConfig())
    return {k: v for k, v in asdict(train).items()
            if k not in ("progress", "num_workers") and not (k in LATER_OPTIONS and v == defaults[k])}


def fingerprint(cfg: CompareConfig) -> dict:
    """What every cell shares; a results folder is only resumed with the same."""
    shared = {"data": cfg.data, "synthetic_images": cfg.synthetic_images if cfg.data == "synthetic" else None,
              "bands": cfg.bands, "image_size": cfg.image_size,
              "train": train_fingerprint(cfg.train)}
    if cfg.dist.precision != "fp32":  # the arithmetic changes results; the device count does not
        shared["precision"] = cfg.dist.precision
    shared["id"] = hashlib.sha1(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:12]
    shared["format"] = COMPARE_FORMAT
    return shared


def guard_warnings(cfg: CompareConfig) -> list[str]:
    """A pretrained backbone that saw this data's val/test images would flatter itself; say so."""
    notes = []
    for spec in cfg.backbones:
        if not (Path(spec) / BUNDLE_FILE).is_file() or cfg.data == "synthetic":
            continue
        info = Bundle.load(Path(spec), ("backbone", "model")).pretrain
        data = str(Path(cfg.data).resolve())
        for source in info.get("sources", []):
            if source.get("kind") == "folder" and source.get("path") == data:
                guards = [g for g in info.get("split_guard", []) if g.get("folder") == data]
                if not guards or guards[0].get("split_seed") != cfg.train.seed:
                    notes.append(f"{spec} was pretrained on images of {cfg.data} beyond its training split for "
                                 f"--seed {cfg.train.seed}; its test scores are optimistic")
    return notes


def run_cell(cfg: CompareConfig, cell: Cell, fabric=None) -> dict:
    train, strategy = apply(cell.setting, cfg.train, StrategyConfig(cell.strategy))
    outcome = run_finetune(FinetuneConfig(
        data=cfg.data, synthetic_images=cfg.synthetic_images, bands=cfg.bands, image_size=cfg.image_size,
        backbone=cell.backbone, strategy=strategy, train=train, dist=cfg.dist, train_labels=cell.labels,
    ), fabric)
    metrics = {k: v for k, v in outcome.metrics.items()}
    metrics.update(backbone=cell.backbone, labels=cell.labels, key=cell.key, setting=setting_key(cell.setting))
    return metrics


def check_results_dir(out: Path, shared: dict, inputs: list) -> None:
    """A new folder, a finished or partial run of the same options (resumed), or a run that finished no
    cell yet (a failed start does not lock the folder against the corrected rerun); never someone's folder."""
    check_not_input(out, inputs, "results directory")
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"results directory {out} is a file; pass another -o")
    stamp = out / "compare.json"
    if not stamp.is_file():
        if any(out.iterdir()):
            raise InputError(f"{out} exists and is not a lut compare results directory; pass another -o")
        return
    if not is_compare_directory(out):
        raise InputError(f"{out} is not a lut compare results directory; pass another -o")
    previous = json.loads(stamp.read_text())
    started = any((out / "cells").glob("*.json")) if (out / "cells").is_dir() else False
    if previous.get("id") != shared["id"] and started:
        raise InputError(f"{out} holds a compare run with other data/training options; pass another -o")


def run_compare(cfg: CompareConfig) -> dict | None:
    """Run (or resume) the grid of fine-tuning runs and write results.md/.csv/.json and the plots.

    Under DDP every rank trains every cell; rank 0 alone writes and logs (progress: INFO on
    `lut.toolkit.study.compare`).

    Args:
        cfg: backbones, strategies, label counts, the recipe grid, training options and the output folder.

    Returns:
        The results (cells and the output folder) on rank 0; None on the other ranks.

    Raises:
        InputError: backbones, data or options that cannot be used, before any cell trains.
        OwnershipError: an output folder that is not a compare folder.
    """
    check_backbones(cfg.backbones)
    cfg.dist.check(cfg.train.batch_size)
    out = Path(cfg.output)
    shared = fingerprint(cfg)
    check_results_dir(out, shared, [cfg.data if cfg.data != "synthetic" else None,
                                    *[b for b in cfg.backbones if Path(b).exists()]])
    cells = plan_cells(cfg)
    done = [(out / "cells" / f"{cell.key}.json").is_file() for cell in cells]  # decided once, for every rank
    return launch(cfg.dist, _compare_rank, cfg, shared, cells, done)


def _compare_rank(fabric, cfg: CompareConfig, shared: dict, cells: list[Cell], done: list[bool]) -> dict:
    from .compare_report import write_results

    main = fabric.global_rank == 0
    out = Path(cfg.output)
    if main:  # under torchrun/srun every rank ran the checks above; one writes and speaks
        (out / "cells").mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "compare.json", json.dumps(shared, indent=2))
        for note in guard_warnings(cfg):
            warn(note)
    results = []
    for k, (cell, cached) in enumerate(zip(cells, done), 1):
        path = out / "cells" / f"{cell.key}.json"
        if cached:
            if main:
                log.info(f"cell {k}/{len(cells)}: {cell.key} (cached)")
            results.append(json.loads(path.read_text()))
            continue
        if main:
            log.info(f"cell {k}/{len(cells)}: {cell.key}")
        try:
            metrics = run_cell(cfg, cell, fabric)
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the finished cells stay, and a rerun resumes
            code = getattr(exc, "exit_code", EXIT_INTERRUPTED)
            what = "terminated" if code == EXIT_TERMINATED else "interrupted"
            raise Interrupted(f"{what}: {len(results)} of {len(cells)} cells finished and kept in {out / 'cells'}; "
                              "run the same command again to resume", code) from exc
        if main:
            write_text_atomic(path, json.dumps(metrics, indent=2))
            log.info(f"  accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}, "
                f"{metrics['train_seconds']:.0f} s")
        results.append(metrics)
    if main:
        write_results(out, cfg, results, DOMAIN_STRATEGIES)
    fabric.barrier()
    return {"cells": results, "output": out}
