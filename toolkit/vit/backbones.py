"""Backbones: a Hugging Face hub id, a local ViT checkpoint (incl. lut pretrain output) or a random init."""

from __future__ import annotations

import functools
import json
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F

from lut.toolkit.core.errors import HubUnreachable, InputError

#: name -> (hidden size, attention heads); all are 12 layers deep with patch 16.
RANDOM_INIT_SIZES: dict[str, tuple[int, int]] = {"vit-tiny": (192, 3), "vit-small": (384, 6), "vit-base": (768, 12)}
DEFAULT_BACKBONE = "google/vit-base-patch16-224"


@dataclass(frozen=True)
class BackboneInfo:
    spec: str
    kind: str  # "random-init" | "local" | "hub"
    image_size: int
    patch_size: int
    hidden_size: int
    num_layers: int


def vit_config(spec: str, image_size: int = 224, **overrides):
    """The ViTConfig for a random-init size name."""
    from transformers import ViTConfig

    if spec not in RANDOM_INIT_SIZES:
        raise InputError(unknown_backbone_message(spec))
    hidden, heads = RANDOM_INIT_SIZES[spec]
    fields = dict(hidden_size=hidden, num_hidden_layers=12, num_attention_heads=heads, intermediate_size=4 * hidden,
                  image_size=image_size, patch_size=16)
    fields.update(overrides)
    return ViTConfig(**fields)


def unknown_backbone_message(spec: str) -> str:
    return (f"unknown backbone {spec!r}: pass a Hugging Face hub id (org/name), a local checkpoint directory, "
            f"or one of {', '.join(RANDOM_INIT_SIZES)}")


def default_processor(image_size: int):
    from transformers import ViTImageProcessor

    return ViTImageProcessor(size={"height": image_size, "width": image_size},
                             image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])


def check_image_size(image_size: int, patch_size: int) -> None:
    if image_size <= 0 or image_size % patch_size:
        raise InputError(f"`image_size` {image_size} is not a multiple of the patch size {patch_size}")


def resize_position_embeddings(state: dict, key: str, old_grid: int, new_grid: int) -> None:
    """Bicubic resize of the patch position embeddings so a checkpoint serves another image size."""
    pos = state[key]
    cls, grid = pos[:, :1], pos[:, 1:]
    dim = grid.shape[-1]
    grid = grid.reshape(1, old_grid, old_grid, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", align_corners=False)
    state[key] = torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, dim)], dim=1)


def _with_image_size(model, image_size: int):
    """Rebuild `model` for another input size, keeping its weights."""
    cfg = model.config
    if cfg.image_size == image_size:
        return model
    check_image_size(image_size, cfg.patch_size)
    state = model.state_dict()
    key = next(k for k in state if k.endswith("embeddings.position_embeddings"))
    resize_position_embeddings(state, key, int(math.isqrt(state[key].shape[1] - 1)), image_size // cfg.patch_size)
    cfg.image_size = image_size
    rebuilt = type(model)(cfg)
    rebuilt.load_state_dict(state)
    return rebuilt


def is_local_spec(spec: str) -> bool:
    """A path (existing, or spelled like one: ./x, /x, ~/x, x/, a/b/c, or under an existing folder) rather
    than a hub id (org/name)."""
    if Path(spec).exists() or spec.startswith((".", "/", "~", "models/")) or spec.endswith(("/", "\\")):
        return True
    return spec.count("/") > 1 or (spec.count("/") == 1 and Path(spec.split("/")[0]).is_dir())


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the Hugging Face hub can be reached: offline settings, else one TCP connect (2 s at most), so
    an offline machine fails in seconds instead of after transformers' retries."""
    offline = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    if any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in offline):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout):
            return True
    except OSError:
        return False


def in_hub_cache(spec: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(spec, "config.json"), str)
    except Exception:  # noqa: BLE001 - an unusual cache layout is simply not a cache hit
        return False


def require_safetensors(path: Path) -> None:
    """lut loads local weights from safetensors only: a pickled pytorch_model.bin is refused, never opened."""
    if not (Path(path) / "model.safetensors").is_file():
        pickled = [p.name for p in Path(path).glob("*.bin")] + [p.name for p in Path(path).glob("*.pt*")]
        found = f" (it has {', '.join(sorted(pickled))}, which lut never unpickles)" if pickled else ""
        raise InputError(f"{path} has no model.safetensors{found}; convert the checkpoint to safetensors "
                       "(save_pretrained(..., safe_serialization=True))")


def check_hub_backbone(spec: str) -> None:
    """Fail at once, in one line, for a hub id that cannot be had: offline and not cached."""
    if in_hub_cache(spec) or hub_reachable():
        return
    if spec == DEFAULT_BACKBONE:
        raise HubUnreachable(f"cannot reach the Hugging Face hub for {spec!r} (offline?): pass a local checkpoint "
                       "directory (`backbone` DIR, e.g. from lut pretrain) or a random init "
                       "(`backbone` vit-tiny|vit-small|vit-base)")
    raise InputError(f"backbone directory {spec} does not exist (and the Hugging Face hub is unreachable, so it "
                   "cannot be fetched as a hub id either): pass an existing checkpoint directory or vit-tiny|"
                   "vit-small|vit-base")


def is_hub_id(spec: str) -> bool:
    """'org/name', the only other form a backbone spec may take."""
    return spec.count("/") == 1 and not is_local_spec(spec)


def check_backbone_spec(spec: str) -> str:
    """'random-init', 'local' or 'hub', after every check that needs no model loading: a missing or wrong
    directory, pickled weights, or a hub id that cannot be had fails here, in a second or two."""
    if spec in RANDOM_INIT_SIZES:
        return "random-init"
    if not is_local_spec(spec):
        if not is_hub_id(spec):
            raise InputError(unknown_backbone_message(spec))
        check_hub_backbone(spec)
        return "hub"
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(f"backbone directory {spec} does not exist")
    if not path.is_dir():
        raise InputError(f"backbone {spec} is a file; pass the checkpoint directory that holds config.json")
    if not (path / "config.json").is_file():
        raise InputError(f"{spec} is not a checkpoint directory (no config.json)")
    try:
        cfg = json.loads((path / "config.json").read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{spec}/config.json is not valid JSON: {exc}") from exc
    if cfg.get("model_type") != "vit":
        raise InputError(f"{spec} holds a {cfg.get('model_type')!r} model; lut fine-tunes ViT backbones")
    require_safetensors(path)
    return "local"


def load_classifier(spec: str, classes: list[str], image_size: int | None = None):
    """A ViTForImageClassification with a fresh K-class head, its image processor and a description."""
    from transformers import AutoConfig, ViTForImageClassification, ViTImageProcessor
    from transformers.utils import logging as hf_logging

    id2label = {i: c for i, c in enumerate(classes)}
    label2id = {c: i for i, c in id2label.items()}
    head = dict(num_labels=len(classes), id2label=id2label, label2id=label2id)

    if spec in RANDOM_INIT_SIZES:
        size = image_size or 224
        check_image_size(size, 16)
        model = ViTForImageClassification(vit_config(spec, size, **head))
        return model, default_processor(size), _info(spec, "random-init", model)

    local = check_backbone_spec(spec) == "local"

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the replaced head is expected; say it once ourselves
    try:
        config = AutoConfig.from_pretrained(spec, **head)
        # safetensors only for local checkpoints (lut writes nothing else); a hub/.bin checkpoint is read by
        # transformers with torch.load(weights_only=True), never a full unpickle; no remote code is ever run
        model = ViTForImageClassification.from_pretrained(spec, config=config, ignore_mismatched_sizes=True,
                                                          use_safetensors=True if local else None)
    except OSError as exc:
        if local:
            raise InputError(f"cannot load the checkpoint in {spec}: {str(exc).splitlines()[0]}") from exc
        raise HubUnreachable(
            f"cannot reach the Hugging Face hub for {spec!r} (offline?): pass a local checkpoint directory "
            f"(`backbone` DIR, e.g. from lut pretrain) or a random init (`backbone` vit-tiny|vit-small|vit-base)",
        ) from exc
    except Exception as exc:
        raise InputError(f"cannot load backbone {spec}: {str(exc).splitlines()[0]}") from exc
    finally:
        hf_logging.set_verbosity(verbosity)
    try:
        processor = ViTImageProcessor.from_pretrained(spec)
    except OSError:
        processor = default_processor(model.config.image_size)
    if image_size is not None and image_size != model.config.image_size:
        model = _with_image_size(model, image_size)
    check_image_size(model.config.image_size, model.config.patch_size)
    processor.size = {"height": model.config.image_size, "width": model.config.image_size}
    return model, processor, _info(spec, "local" if local else "hub", model)


def _info(spec: str, kind: str, model) -> BackboneInfo:
    c = model.config
    return BackboneInfo(spec, kind, c.image_size, c.patch_size, c.hidden_size, c.num_hidden_layers)
