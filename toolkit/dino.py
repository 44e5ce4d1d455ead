"""`lut pretrain --method dino`: self-supervised DINO on unlabelled imagery, with lightly's components.

Student and teacher ViTs with a DINO projection head; the teacher is an EMA of the student (momentum
0.996 -> 1 on a cosine schedule), sees the 2 global crops while the student sees all crops, and its
output is centred and sharpened with a temperature warm-up. Checkpoints are written every epoch, so a
killed run resumes with --resume and loses at most one epoch.
"""

from __future__ import annotations

import copy
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from .atomic import atomic_directory, atomic_file
from .backbones import RANDOM_INIT_SIZES, check_image_size, default_processor, require_safetensors, vit_config
from .errors import EXIT_INTERRUPTED, EXIT_TERMINATED, Interrupted, LutError
from .bundle import Bundle
from .ownership import check_not_input, check_output_dir
from .store import DEFAULT_STORE
from .training import check_finite, resolve_device
from .unlabelled import Item, Pool, SourceSpec, build_pool, epoch_items, load_item

CHECKPOINT = "checkpoint.pt"


@dataclass
class PretrainConfig:
    sources: list[str] = field(default_factory=list)
    method: str = "dino"
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
    weight_decay: float = 0.04
    momentum: float = 0.996
    out_dim: int = 4096
    head_hidden: int = 1024
    bottleneck: int = 256
    teacher_temp: float = 0.04
    teacher_temp_final: float = 0.07
    teacher_temp_warmup_epochs: int = 30
    # colour is much of the signal in land-cover imagery: lower these (e.g. 0.2, 0, 0) for colour-coded classes
    colour_jitter: float = 0.5  # lightly's cj_strength; 0 disables
    grayscale: float = 0.2
    solarize: float = 0.2
    grad_clip: float = 3.0
    windows_per_scene: int = 200
    bands: tuple[int, ...] | None = None
    seed: int = 0
    split_guard: bool = True
    monitor: Path | None = None
    monitor_images: int = 900
    resume: bool = False
    overwrite: bool = False
    device: str = "auto"
    precision: str = "auto"  # auto: bfloat16 autocast where the device runs it natively, else float32
    workers: int = 0
    progress: bool = True
    store: Path = DEFAULT_STORE

    def architecture(self, hidden: int, layers: int, patch: int) -> dict:
        """What a checkpoint must match to be resumed."""
        return {"backbone": self.backbone, "hidden": hidden, "layers": layers, "patch": patch,
                "image_size": self.image_size, "out_dim": self.out_dim, "head_hidden": self.head_hidden,
                "bottleneck": self.bottleneck}


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


class DinoNetwork(nn.Module):
    """Backbone CLS embedding -> projection head, batching the crops of one resolution together."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, views: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs: list[torch.Tensor | None] = [None] * len(views)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, v in enumerate(views):
            by_size.setdefault(tuple(v.shape[-2:]), []).append(i)
        for indices in by_size.values():
            x = torch.cat([views[i] for i in indices])
            z = self.head(self.backbone(pixel_values=x, interpolate_pos_encoding=True).last_hidden_state[:, 0])
            for i, chunk in zip(indices, z.chunk(len(indices))):
                outputs[i] = chunk
        return outputs  # type: ignore[return-value]


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


def learning_rate(cfg: PretrainConfig, step: int, steps_per_epoch: int) -> float:
    peak = cfg.lr * cfg.batch_size / 256
    warmup = min(cfg.warmup_epochs, max(cfg.epochs - 1, 0)) * steps_per_epoch
    total = cfg.epochs * steps_per_epoch
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return cfg.min_lr + 0.5 * (peak - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def teacher_temperature(cfg: PretrainConfig, epoch: int) -> float:
    warm = min(cfg.teacher_temp_warmup_epochs, max(cfg.epochs // 3, 1))
    if epoch >= warm:
        return cfg.teacher_temp_final
    return cfg.teacher_temp + (cfg.teacher_temp_final - cfg.teacher_temp) * epoch / warm


def _save_checkpoint(path: Path, state: dict) -> None:
    """Tensors, numbers, strings, lists and dicts only, so `load_checkpoint` reads it without pickle."""
    with atomic_file(path, overwrite=True) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, device: torch.device) -> dict:
    """weights_only=True: torch's restricted loader, which refuses any pickled object that could run code."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and torch errors alike
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LutError(f"cannot read checkpoint {path}: it is damaged or holds more than tensors ({first[:120]}); "
                       "pass --overwrite to restart the run") from None
    if not isinstance(state, dict) or "architecture" not in state:
        raise LutError(f"{path} is not a lut pretraining checkpoint; pass --overwrite to restart the run")
    return state


def native_bfloat16(device: torch.device) -> bool:
    """Whether the hardware has bf16 units (AVX512-BF16/AMX CPUs, Ampere+ GPUs); elsewhere bf16 is emulated."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def use_bfloat16(precision: str, device: torch.device) -> bool:
    """bfloat16 autocast: 1.46x faster DINO epochs on an AVX512-BF16 CPU (bench_pretrain), slower if emulated."""
    if precision not in ("auto", "fp32", "bf16"):
        raise LutError(f"--precision must be auto, fp32 or bf16, got {precision!r}")
    if precision == "fp32":
        return False
    supported = native_bfloat16(device)
    if precision == "bf16" and not supported:
        raise LutError(f"--precision bf16 was asked for but this {device.type.upper()} has no native bfloat16")
    return supported


@dataclass
class PretrainResult:
    output: Path
    history: list[dict]
    seconds: float


@dataclass
class DinoState:
    """What one DINO run trains and what a checkpoint restores."""

    student: DinoNetwork
    teacher: DinoNetwork
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    arch: dict
    epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)

    def checkpoint(self) -> dict:
        return {"architecture": self.arch, "epoch": self.epoch, "step": self.step, "history": self.history,
                "student": self.student.state_dict(), "teacher": self.teacher.state_dict(),
                "optimizer": self.optimizer.state_dict(), "criterion": self.criterion.state_dict()}

    def restore(self, path: Path, device: torch.device) -> None:
        state = load_checkpoint(path, device)
        if state.get("architecture") != self.arch:
            raise LutError(f"{path} was written for another architecture ({state.get('architecture')}); "
                           "pass the same --backbone/--image-size/head sizes or --overwrite to restart")
        self.student.load_state_dict(state["student"])
        self.teacher.load_state_dict(state["teacher"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.criterion.load_state_dict(state["criterion"])
        self.epoch, self.step, self.history = int(state["epoch"]), int(state["step"]), list(state["history"])


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


def build_state(cfg: PretrainConfig, backbone, device: torch.device) -> DinoState:
    from lightly.loss import DINOLoss
    from lightly.models.modules import DINOProjectionHead
    from lightly.models.utils import deactivate_requires_grad

    c = backbone.config

    def new_head() -> nn.Module:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # lightly's head uses torch's older weight_norm
            return DINOProjectionHead(c.hidden_size, cfg.head_hidden, cfg.bottleneck, cfg.out_dim,
                                      freeze_last_layer=1)

    student = DinoNetwork(backbone, new_head()).to(device)
    # weight-normed heads cannot be deep-copied: build the teacher's and copy the weights in
    teacher = DinoNetwork(copy.deepcopy(backbone), new_head()).to(device)
    teacher.head.load_state_dict(student.head.state_dict())
    deactivate_requires_grad(teacher)
    criterion = DINOLoss(output_dim=cfg.out_dim, teacher_temp=cfg.teacher_temp).to(device)
    optimizer = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return DinoState(student, teacher, criterion, optimizer, cfg.architecture(c.hidden_size, c.num_hidden_layers,
                                                                              c.patch_size))


def train_epoch(cfg: PretrainConfig, state: DinoState, loader, device: torch.device, bf16: bool,
                steps_per_epoch: int) -> list[float]:
    from lightly.models.utils import update_momentum
    from lightly.utils.scheduler import cosine_schedule

    epoch, total_steps = state.epoch, cfg.epochs * steps_per_epoch
    temp = teacher_temperature(cfg, epoch)
    state.student.train()
    losses: list[float] = []
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=not cfg.progress, unit="batch")
    for views in bar:
        views = [v.to(device) for v in views]
        for group in state.optimizer.param_groups:
            group["lr"] = learning_rate(cfg, state.step, steps_per_epoch)
        momentum = cosine_schedule(state.step, total_steps, cfg.momentum, 1.0)
        # networks under autocast, the loss (softmax, centring) in float32
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            with torch.no_grad():
                teacher_out = state.teacher(views[:2])
            student_out = state.student(views)
        loss = state.criterion([t.float() for t in teacher_out], [o.float() for o in student_out], teacher_temp=temp)
        check_finite(loss, epoch + 1)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(state.student.parameters(), cfg.grad_clip)
        state.student.head.cancel_last_layer_gradients(current_epoch=epoch)
        state.optimizer.step()
        update_momentum(state.student, state.teacher, momentum)
        state.step += 1
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    return losses


def pretrain(cfg: PretrainConfig) -> PretrainResult:
    """Run DINO and write a ViT checkpoint directory that `lut finetune --backbone DIR` loads."""
    target, work = output_paths(cfg)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    bf16 = use_bfloat16(cfg.precision, device)
    backbone, processor = build_backbone(cfg)
    mean, std = list(processor.image_mean), list(processor.image_std)
    local_size = local_crop_size(cfg, backbone.config.patch_size)
    pool = build_pool(cfg.sources, cfg.image_size, cfg.bands, cfg.seed, cfg.split_guard)
    monitor = None
    if cfg.monitor is not None:
        from .knn import KnnMonitor

        monitor = KnnMonitor(cfg.monitor, cfg.image_size, mean, std, cfg.seed, cfg.monitor_images)
    state = build_state(cfg, backbone, device)
    if cfg.resume and (work / CHECKPOINT).is_file():
        state.restore(work / CHECKPOINT, device)
    work.mkdir(parents=True, exist_ok=True)
    try:
        _run_epochs(cfg, state, pool, make_transform(cfg, local_size, mean, std), device, bf16, monitor, work)
    except KeyboardInterrupt as exc:
        code = getattr(exc, "exit_code", EXIT_INTERRUPTED)
        done = f" of epoch {state.history[-1]['epoch']}" if state.history else ""
        kept = (f"the checkpoint{done} in {work} was kept: rerun with --resume to continue"
                if (work / CHECKPOINT).is_file() else "no epoch had finished, so nothing was kept")
        raise Interrupted(f"{'terminated' if code == EXIT_TERMINATED else 'interrupted'}; {kept}", code) from None
    history = state.history
    with atomic_directory(target, cfg.overwrite) as tmp:
        state.teacher.backbone.to("cpu").save_pretrained(tmp, safe_serialization=True)
        processor.size = {"height": cfg.image_size, "width": cfg.image_size}
        processor.save_pretrained(tmp)
        Bundle(kind="backbone", image_size=cfg.image_size, backbone={"spec": cfg.backbone},
               pretrain={"method": "dino", "precision": "bf16" if bf16 else "fp32", "local_size": local_size,
                         "sources": pool.described, "split_guard": pool.guards,
                         "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
                         "history": history}).save(tmp)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return PretrainResult(target, history, history[-1]["elapsed_s"] if history else 0.0)


def _run_epochs(cfg: PretrainConfig, state: DinoState, pool: Pool, transform, device: torch.device, bf16: bool,
                monitor, work: Path) -> None:
    steps_per_epoch = None
    started = time.perf_counter()
    seconds_before = state.history[-1]["elapsed_s"] if state.history else 0.0
    epochs = tqdm(range(state.epoch, cfg.epochs), desc="dino", unit="epoch", disable=not cfg.progress,
                  initial=state.epoch, total=cfg.epochs)
    for epoch in epochs:
        items = epoch_items(pool, cfg.windows_per_scene, cfg.image_size, cfg.seed, epoch)
        generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        loader = torch.utils.data.DataLoader(
            ViewsDataset(pool, items, cfg.image_size, transform), batch_size=cfg.batch_size, shuffle=True,
            drop_last=len(items) > cfg.batch_size, collate_fn=collate_views, num_workers=cfg.workers,
            generator=generator, worker_init_fn=lambda w: torch.manual_seed(cfg.seed * 1000 + epoch * 10 + w))
        steps_per_epoch = steps_per_epoch or len(loader)
        state.epoch = epoch
        losses = train_epoch(cfg, state, loader, device, bf16, steps_per_epoch)
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else float("nan"),
                  "teacher_temp": teacher_temperature(cfg, epoch), "images": len(items),
                  "elapsed_s": seconds_before + time.perf_counter() - started}
        if monitor is not None:
            record["knn_accuracy"] = monitor.accuracy(state.teacher.backbone, device)
        state.history.append(record)
        state.epoch = epoch + 1
        epochs.set_postfix(loss=f"{record['loss']:.3f}",
                           **({"knn": f"{record['knn_accuracy']:.3f}"} if "knn_accuracy" in record else {}))
        if not cfg.progress:
            print(json.dumps(record), flush=True)
        _save_checkpoint(work / CHECKPOINT, state.checkpoint())
