"""`lut pretrain --method dino`: self-supervised DINO on unlabelled imagery, with lightly's components.

Student and teacher ViTs with a DINO projection head; the teacher is an EMA of the student (momentum
0.996 -> 1 on a cosine schedule), sees the 2 global crops while the student sees all crops, and its
output is centred and sharpened with a temperature warm-up. Checkpoints are written every epoch, so a
killed run resumes with --resume and loses at most one epoch.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lut.toolkit.core.atomic import atomic_directory
from lut.toolkit.core.space import full_disk_line
from lut.toolkit.core.bundle import Bundle
from .dino_train import CHECKPOINT, DinoState, HeadSizes, build_state, save_checkpoint, train_epoch
from lut.toolkit.train.distributed import all_mean, launch
from lut.toolkit.core.errors import (EXIT_INTERRUPTED, EXIT_TERMINATED, InputError, Interrupted, OutputFailed,
                                     OwnershipError, warn)
from lut.toolkit.core.ownership import check_not_input, check_output_dir
from lut.toolkit.data.unlabelled import Pool, SourceSpec, build_pool

from .config import PretrainConfig, build_backbone
from .views import epoch_loader, local_crop_size, make_transform


@dataclass
class PretrainResult:
    output: Path
    history: list[dict]
    seconds: float


def output_paths(cfg: PretrainConfig) -> tuple[Path, Path]:
    """The backbone directory and its checkpoint directory; both checked before any work."""
    cfg.check()
    name = Path(cfg.backbone).name if Path(cfg.backbone).exists() else cfg.backbone
    target = Path(cfg.output) if cfg.output else Path(cfg.store) / f"dino-{name}"
    inputs = [SourceSpec.parse(s).path for s in cfg.sources] + [cfg.monitor]
    if Path(cfg.backbone).exists():
        inputs.append(Path(cfg.backbone))
    check_output_dir(target, cfg.overwrite, ("backbone",), inputs, "output")
    work = target.with_name(target.name + ".ckpt")
    check_not_input(work, inputs, "checkpoint directory")
    if (work / CHECKPOINT).is_file() and not cfg.resume and not cfg.overwrite:
        raise OwnershipError(f"{work} holds an unfinished run; pass `resume` to continue it or `overwrite=True` to "
                             "restart")
    if work.exists() and not (work / CHECKPOINT).is_file() and any(work.iterdir()):
        raise InputError(f"{work} exists and is not lut's checkpoint directory; move it away")
    return target, work


def pretrain(cfg: PretrainConfig) -> PretrainResult | None:
    """Run DINO on every rank of `cfg.dist` and write a ViT checkpoint directory that `finetune` loads as
    its backbone.

    Args:
        cfg: the unlabelled sources, the backbone, the DINO schedule and the output.

    Returns:
        The output directory, the per-epoch history and the wall time; None on the ranks other than 0 of a
        torchrun/srun run.

    Raises:
        InputError: sources or options that cannot be used.
        OwnershipError: an output or unfinished run exists (`resume`, `overwrite=True`).
        FormatError: a checkpoint of another architecture or a damaged one.
        Interrupted: Ctrl-C or SIGTERM; the last epoch's checkpoint is kept for `resume`.
    """
    target, work = output_paths(cfg)
    cfg.dist.check(cfg.batch_size)
    return launch(cfg.dist, _pretrain_rank, cfg, target, work)


def _pretrain_rank(fabric, cfg: PretrainConfig, target: Path, work: Path) -> PretrainResult:
    torch.manual_seed(cfg.seed)  # every rank builds the same random-init backbone; rank 0's is kept anyway
    backbone, processor = build_backbone(cfg)
    mean, std = list(processor.image_mean), list(processor.image_std)
    local_size = local_crop_size(cfg, backbone.config.patch_size)
    pool = build_pool(cfg.sources, cfg.image_size, cfg.bands, cfg.seed, cfg.split_guard)
    monitor = None
    if cfg.monitor is not None and fabric.global_rank == 0:
        from .knn import KnnMonitor

        monitor = KnnMonitor(cfg.monitor, cfg.image_size, mean, std, cfg.seed, cfg.monitor_images)
    c = backbone.config
    state = build_state(backbone, HeadSizes(cfg.out_dim, cfg.head_hidden, cfg.bottleneck),
                        cfg.architecture(c.hidden_size, c.num_hidden_layers, c.patch_size), fabric)
    if cfg.resume and (work / CHECKPOINT).is_file():
        state.restore(work / CHECKPOINT, fabric.device)  # written by rank 0 of a run on any number of ranks
    elif cfg.resume and fabric.global_rank == 0:
        warn(f"`resume`: {work / CHECKPOINT} does not exist, so pretraining starts from epoch 1")
    if not state.use_sources(pool.described) and fabric.global_rank == 0:
        warn(f"`resume` with other `sources` than epochs 1-{state.epoch} were trained on; the backbone records "
             "both (pretrain.sources_by_epoch in its lut.json)")
    if fabric.global_rank == 0:
        work.mkdir(parents=True, exist_ok=True)
    # different crops on every rank, the same on every rerun
    torch.manual_seed(cfg.seed * 7919 + fabric.global_rank)
    try:
        _run_epochs(cfg, state, fabric, pool, make_transform(cfg, local_size, mean, std), monitor, work)
    except KeyboardInterrupt as exc:
        code = getattr(exc, "exit_code", EXIT_INTERRUPTED)
        done = f" of epoch {state.history[-1]['epoch']}" if state.history else ""
        kept = (f"the checkpoint{done} in {work} was kept: rerun with --resume to continue"
                if (work / CHECKPOINT).is_file() else "no epoch had finished, so nothing was kept")
        raise Interrupted(f"{'terminated' if code == EXIT_TERMINATED else 'interrupted'}; {kept}", code) from exc
    except (OSError, RuntimeError) as exc:
        _failed_write(exc, target, work)
        raise
    if fabric.global_rank == 0:
        try:
            _write_backbone(cfg, state, processor, target, pool, local_size, str(fabric.strategy.precision.precision))
        except (OSError, RuntimeError) as exc:
            _failed_write(exc, target, work)
            raise
        shutil.rmtree(work, ignore_errors=True)
    fabric.barrier()
    history = state.history
    return PretrainResult(target, history, history[-1]["elapsed_s"] if history else 0.0)


def _failed_write(exc: BaseException, target: Path, work: Path) -> None:
    """A write that failed for want of space becomes one line: an empty checkpoint folder goes; one that holds
    an epoch's checkpoint stays for `resume`, and the line says so. Other failures are left to the caller."""
    with contextlib.suppress(OSError):
        if work.is_dir() and not any(work.iterdir()):
            work.rmdir()
    kept = (f"the checkpoint in {work} was kept: free some space and rerun with `resume`"
            if (work / CHECKPOINT).is_file() else "nothing partial was kept: free some space or write the output "
                                                  "elsewhere")
    line = full_disk_line(exc, target, kept)
    if line is not None:
        raise OutputFailed(line) from exc


def _every_source(stretches: list[dict]) -> list[dict]:
    """Every source any epoch trained on, once each, in the order first used."""
    seen: list[dict] = []
    for stretch in stretches:
        seen += [s for s in stretch["sources"] if s not in seen]
    return seen


def _write_backbone(cfg: PretrainConfig, state: DinoState, processor, target: Path, pool: Pool, local_size: int,
                    precision: str) -> None:
    with atomic_directory(target, cfg.overwrite) as tmp:
        state.teacher.backbone.to("cpu").save_pretrained(tmp, safe_serialization=True)
        processor.size = {"height": cfg.image_size, "width": cfg.image_size}
        processor.save_pretrained(tmp)
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
        Bundle(kind="backbone", image_size=cfg.image_size, backbone={"spec": cfg.backbone},
               pretrain={"method": "dino", "precision": "bf16" if precision.startswith("bf16") else "fp32",
                         "local_size": local_size, "sources": _every_source(state.sources),
                         "sources_by_epoch": state.sources, "split_guard": pool.guards,
                         "config": config, "history": state.history}).save(tmp)


def _run_epochs(cfg: PretrainConfig, state: DinoState, fabric, pool: Pool, transform, monitor, work: Path) -> None:
    student = fabric.setup_module(state.student)  # the DDP-wrapped forward; state.student stays unwrapped
    schedule = None
    started = time.perf_counter()
    seconds_before = state.history[-1]["elapsed_s"] if state.history else 0.0
    main = fabric.global_rank == 0
    epochs = tqdm(range(state.epoch, cfg.epochs), desc="dino", unit="epoch", disable=not (cfg.progress and main),
                  initial=state.epoch, total=cfg.epochs)
    for epoch in epochs:
        items, loader = epoch_loader(cfg, pool, transform, epoch, fabric)
        # steps of the global batch, the same whatever the number of ranks (a resume may use another)
        schedule = schedule or cfg.schedule(max(len(items) // cfg.batch_size, 1))
        state.epoch = epoch
        losses = train_epoch(state, student, loader, schedule, fabric, cfg.grad_clip, cfg.progress and main)
        loss = all_mean(fabric, float(np.mean(losses)) if losses else float("nan"))
        record = {"epoch": epoch + 1, "loss": loss, "teacher_temp": schedule.teacher_temperature(epoch),
                  "images": len(items), "elapsed_s": seconds_before + time.perf_counter() - started}
        if monitor is not None:
            record["knn_accuracy"] = monitor.accuracy(state.teacher.backbone, fabric.device)
        state.history.append(record)
        state.epoch = epoch + 1
        if main:
            epochs.set_postfix(loss=f"{record['loss']:.3f}",
                               **({"knn": f"{record['knn_accuracy']:.3f}"} if "knn_accuracy" in record else {}))
            if not cfg.progress:
                print(json.dumps(record), flush=True)
            save_checkpoint(work / CHECKPOINT, state)
        fabric.barrier()  # no rank runs ahead of the checkpoint it might be asked to resume from
