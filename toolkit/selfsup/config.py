"""`lut pretrain`'s options (`PretrainConfig`) and the backbone it starts from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lut.toolkit.core.errors import FormatError, InputError
from lut.toolkit.core.store import DEFAULT_STORE
from lut.toolkit.train.distributed import DistConfig
from lut.toolkit.vit.backbones import (
    RANDOM_INIT_SIZES, check_image_size, default_processor, require_safetensors, vit_config)

from .dino_schedule import DinoSchedule


@dataclass
class PretrainConfig:
    sources: list[str] = field(default_factory=list)
    method: Literal["dino"] = "dino"
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

    def check(self) -> None:
        """Refuse an unknown method and sizes DINO cannot run with, before any data is read."""
        if self.method != "dino":
            raise InputError(f"unknown `method` {self.method!r}; lut pretrains with dino")
        if not self.sources:
            raise InputError("`sources` is empty: name at least one image folder or scene")
        for name, least in (("epochs", 1), ("batch_size", 2), ("image_size", 1), ("local_views", 0),
                            ("windows_per_scene", 1), ("workers", 0)):
            if getattr(self, name) < least:
                raise InputError(f"`{name}` must be at least {least}, got {getattr(self, name)}")

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
        raise InputError(f"`backbone` must be one of {', '.join(RANDOM_INIT_SIZES)} or a local ViT checkpoint "
                       f"directory, got {cfg.backbone!r}")
    from transformers.utils import logging as hf_logging

    require_safetensors(path)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a pooler left unused is expected
    try:
        model = ViTModel.from_pretrained(path, add_pooling_layer=False, use_safetensors=True)
    except OSError as exc:
        raise InputError(f"cannot load the checkpoint in {path}: {str(exc).splitlines()[0]}") from exc
    except Exception as exc:  # noqa: BLE001 - safetensors' own error for a truncated or corrupt file
        raise FormatError(f"the checkpoint in {path} is damaged ({str(exc).splitlines()[0]}): copy or "
                          "pretrain it again") from exc
    finally:
        hf_logging.set_verbosity(verbosity)
    check_image_size(cfg.image_size, model.config.patch_size)
    try:
        processor = ViTImageProcessor.from_pretrained(path)
    except OSError:
        processor = default_processor(cfg.image_size)
    return model, processor
