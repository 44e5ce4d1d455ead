"""`lut pretrain --method dino`: self-supervised DINO on unlabelled imagery, with lightly's components.

Student and teacher ViTs with a DINO projection head; the teacher is an EMA of the student (momentum
0.996 -> 1 on a cosine schedule), sees the 2 global crops while the student sees all crops, and its
output is centred and sharpened with a temperature warm-up. Checkpoints are written every epoch, so a
killed run resumes with --resume and loses at most one epoch.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .atomic import atomic_directory
from .backbones import RANDOM_INIT_SIZES, check_image_size, default_processor, require_safetensors, vit_config
from .bundle import Bundle
from .dino_schedule import DinoSchedule
from .dino_train import CHECKPOINT, DinoState, HeadSizes, build_state, save_checkpoint, train_epoch
from .distributed import DistConfig, all_mean, launch
from .errors import EXIT_INTERRUPTED, EXIT_TERMINATED, Interrupted, LutError
from .ownership import check_not_input, check_output_dir
from .store import DEFAULT_STORE
from .unlabelled import Item, Pool, SourceSpec, build_pool, epoch_items, load_item


@dataclass
class PretrainConfig:
    sources: list[str] = field(default_factory=list)
    method: str = "dino"
    recipe: str = "paper"  # the preset the values came from (dino_recipes); recorded in lut.json
    backbone: str = "vit-small"
    output: Path | None = None
    image_size: int = 224
    local_size: int | None = None
    local_views: int = 6
    epochs: int = 100
    batch_size: int = 64
    lr: float = 5e-4  # per 256 images, scaled linearly with the batch size as in the paper
    min_lr: float = 1e-6
    warmup_epochs: int = 10
    weight_decay: float = 0.04  # on weights only (not norms, biases, position embeddings, CLS token) ...
    weight_decay_end: float = 0.4  # ... rising on a cosine to this, as in the paper
    momentum: float = 0.996
    out_dim: int = 4096
    head_hidden: int = 1024
    bottleneck: int = 256
    teacher_temp_start: float = 0.04  # the paper's warmup_teacher_temp (lightly's too)
    teacher_temp_final: float = 0.07  # the paper's teacher_temp (lightly's too)
    teacher_temp_warmup_epochs: int = 30
    # colour is much of the signal in land-cover imagery: lower these (e.g. 0.2, 0, 0) for colour-coded classes
    colour_jitter: float = 0.5  # lightly's cj_strength; 0 disables
    grayscale: float = 0.2
    solarize: float = 0.2
    grad_clip: float = 3.0  # per parameter tensor, as the paper's clip_gradients
    windows_per_scene: int = 200
    bands: tuple[int, ...] | None = None
    seed: int = 0
    split_guard: bool = True
    monitor: Path | None = None
    monitor_images: int = 900
    resume: bool = False
    overwrite: bool = False
    # devices, nodes and arithmetic; auto precision: bfloat16 autocast where the hardware runs it natively
    dist: DistConfig = field(default_factory=lambda: DistConfig(precision="auto"))
    workers: int = 0
    progress: bool = True
    store: Path = DEFAULT_STORE

    def architecture(self, hidden: int, layers: int, patch: int) -> dict:
        """What a checkpoint must match to be resumed."""
        return {"backbone": self.backbone, "hidden": hidden, "layers": layers, "patch": patch,
                "image_size": self.image_size, "out_dim": self.out_dim, "head_hidden": self.head_hidden,
                "bottleneck": self.bottleneck}

    def schedule(self, steps_per_epoch: int) -> DinoSchedule:
        return DinoSchedule(epochs=self.epochs, steps_per_epoch=steps_per_epoch, batch_size=self.batch_size,
                            lr=self.lr, min_lr=self.min_lr, warmup_epochs=self.warmup_epochs,
                            momentum=self.momentum, teacher_temp_start=self.teacher_temp_start,
                            teacher_temp_final=self.teacher_temp_final,
                            teacher_temp_warmup_epochs=self.teacher_temp_warmup_epochs,
                            weight_decay=self.weight_decay, weight_decay_end=self.weight_decay_end)


def build_backbone(cfg: PretrainConfig):
    """A ViTModel without pooler: a random-init size name, or a local checkpoint to keep pretraining."""
    from transformers import ViTImageProcessor, ViTModel

    if cfg.backbone in RANDOM_INIT_SIZES:
        check_image_size(cfg.image_size, 16)
        return ViTModel(vit_config(cfg.backbone, cfg.image_size), add_pooling_layer=False), \
            default_processor(cfg.image_size)
    path = Path(cfg.backbone)
    if not (path / "config.json").is_file():
        raise LutError(f"--backbone must be one of {', '.join(RANDOM_INIT_SIZES)} or a local ViT checkpoint "
                       f"directory, got {cfg.backbone!r}")
    from transformers.utils import logging as hf_logging

    require_safetensors(path)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a pooler left unused is expected
    try:
        model = ViTModel.from_pretrained(path, add_pooling_layer=False, use_safetensors=True)
    except OSError as exc:
        raise LutError(f"cannot load the checkpoint in {path}: {str(exc).splitlines()[0]}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    check_image_size(cfg.image_size, model.config.patch_size)
    try:
        processor = ViTImageProcessor.from_pretrained(path)
    except OSError:
        processor = default_processor(cfg.image_size)
    return model, processor


class ViewsDataset(torch.utils.data.Dataset):
    def __init__(self, pool: Pool, items: list[Item], image_size: int, transform) -> None:
        self.pool, self.items, self.image_size, self.transform = pool, items, image_size, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> list[torch.Tensor]:
        image = load_item(self.pool, self.items[i], self.image_size)
        pil = Image.fromarray((image.transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8))
        return self.transform(pil)


def collate_views(batch: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    return [torch.stack(v) for v in zip(*batch)]


def make_transform(cfg: PretrainConfig, local_size: int, mean: list[float], std: list[float]):
    from lightly.transforms.dino_transform import DINOTransform

    # nadir imagery has no up or down: vertical flips and 90-degree rotations are label-preserving
    return DINOTransform(global_crop_size=cfg.image_size, local_crop_size=local_size, n_local_views=cfg.local_views,
                         hf_prob=0.5, vf_prob=0.5, rr_prob=0.5, cj_prob=0.8 if cfg.colour_jitter > 0 else 0.0,
                         cj_strength=cfg.colour_jitter, random_gray_scale=cfg.grayscale,
                         solarization_prob=cfg.solarize, normalize={"mean": mean, "std": std})


def local_crop_size(cfg: PretrainConfig, patch: int) -> int:
    size = cfg.local_size or max(patch, int(round(cfg.image_size * 96 / 224 / patch)) * patch)
    if size > cfg.image_size:
        raise LutError(f"--local-size {size} is larger than the global crop --image-size {cfg.image_size}")
    check_image_size(size, patch)
    return size


@dataclass
class PretrainResult:
    output: Path
    history: list[dict]
    seconds: float


def output_paths(cfg: PretrainConfig) -> tuple[Path, Path]:
    """The backbone directory and its checkpoint directory; both checked before any work."""
    if cfg.method != "dino":
        raise LutError(f"unknown --method {cfg.method!r}; lut pretrains with dino")
    name = Path(cfg.backbone).name if Path(cfg.backbone).exists() else cfg.backbone
    target = Path(cfg.output) if cfg.output else Path(cfg.store) / f"dino-{name}"
    inputs = [SourceSpec.parse(s).path for s in cfg.sources] + [cfg.monitor]
    if Path(cfg.backbone).exists():
        inputs.append(Path(cfg.backbone))
    check_output_dir(target, cfg.overwrite, ("backbone",), inputs, "output")
    work = target.with_name(target.name + ".ckpt")
    check_not_input(work, inputs, "checkpoint directory")
    if (work / CHECKPOINT).is_file() and not cfg.resume and not cfg.overwrite:
        raise LutError(f"{work} holds an unfinished run; pass --resume to continue it or --overwrite to restart")
    if work.exists() and not (work / CHECKPOINT).is_file() and any(work.iterdir()):
        raise LutError(f"{work} exists and is not lut's checkpoint directory; move it away")
    return target, work


def pretrain(cfg: PretrainConfig) -> PretrainResult | None:
    """Run DINO on every rank of `cfg.dist` and write a ViT checkpoint directory that `lut finetune
    --backbone DIR` loads. Returns None on the ranks other than 0 of a torchrun/srun run."""
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
        raise Interrupted(f"{'terminated' if code == EXIT_TERMINATED else 'interrupted'}; {kept}", code) from None
    if fabric.global_rank == 0:
        _write_backbone(cfg, state, processor, target, pool, local_size, str(fabric.strategy.precision.precision))
        shutil.rmtree(work, ignore_errors=True)
    fabric.barrier()
    history = state.history
    return PretrainResult(target, history, history[-1]["elapsed_s"] if history else 0.0)


def _write_backbone(cfg: PretrainConfig, state: DinoState, processor, target: Path, pool: Pool, local_size: int,
                    precision: str) -> None:
    with atomic_directory(target, cfg.overwrite) as tmp:
        state.teacher.backbone.to("cpu").save_pretrained(tmp, safe_serialization=True)
        processor.size = {"height": cfg.image_size, "width": cfg.image_size}
        processor.save_pretrained(tmp)
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
        Bundle(kind="backbone", image_size=cfg.image_size, backbone={"spec": cfg.backbone},
               pretrain={"method": "dino", "precision": "bf16" if precision.startswith("bf16") else "fp32",
                         "local_size": local_size, "sources": pool.described, "split_guard": pool.guards,
                         "config": config, "history": state.history}).save(tmp)


def epoch_loader(cfg: PretrainConfig, pool: Pool, transform, epoch: int, fabric):
    """This rank's share of the epoch's windows: a DistributedSampler (set to the epoch) over the same item
    list on every rank, batches of batch_size / ranks, the same number of them on every rank."""
    items = epoch_items(pool, cfg.windows_per_scene, cfg.image_size, cfg.seed, epoch)
    dataset = ViewsDataset(pool, items, cfg.image_size, transform)
    sampler = torch.utils.data.distributed.DistributedSampler(
        dataset, num_replicas=fabric.world_size, rank=fabric.global_rank, shuffle=True, seed=cfg.seed * 1000)
    sampler.set_epoch(epoch)
    local = cfg.batch_size // fabric.world_size
    rank_seed = (cfg.seed * 1000 + epoch) * 10 * fabric.world_size + fabric.global_rank * 10
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=local, sampler=sampler, drop_last=len(items) > cfg.batch_size,
        collate_fn=collate_views, num_workers=cfg.workers, worker_init_fn=lambda w: torch.manual_seed(rank_seed + w))
    return items, loader


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
