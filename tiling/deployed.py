"""The exported model a scene is classified with: which ONNX file, its classes, size and normalisation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lut.export.runtime import gpu_usable, open_session, session_device
from lut.toolkit.errors import LutError
from lut.toolkit.radiometry import BandRule
from lut.toolkit.store import DEFAULT_STORE, resolve_bundle

PRECISIONS = ("auto", "fp32", "int8", "fp16")


@dataclass
class DeployedModel:
    path: Path
    precision: str
    classes: list[str]
    image_size: int
    mean: np.ndarray
    std: np.ndarray
    rule: BandRule | None
    session: object

    @property
    def device(self) -> str:
        return session_device(self.session)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"pixel_values": batch})[0]


def onnx_dir_of(model: str | Path | None, store: Path = DEFAULT_STORE) -> Path:
    """Accept an onnx/ folder or a bundle that holds one; default: the bundle models/LATEST names."""
    if model is not None and (Path(model) / "model.onnx").is_file():
        return Path(model)
    bundle = resolve_bundle(model, store)
    onnx_dir = bundle / "onnx"
    if not (onnx_dir / "model.onnx").is_file():
        raise LutError(f"{bundle} has no ONNX export; run lut export {bundle} first")
    return onnx_dir


def pick_file(onnx_dir: Path, info: dict, precision: str, gpu: bool) -> tuple[str, Path]:
    files = info.get("onnx", {"fp32": "model.onnx"})
    if precision == "auto":
        precision = "fp16" if gpu and "fp16" in files else "int8" if not gpu and "int8" in files else "fp32"
    if precision not in files:
        raise LutError(f"{onnx_dir} has no {precision} model (it has {', '.join(sorted(files))}); "
                       f"export it with lut export --quantize / --fp16")
    return precision, onnx_dir / files[precision]


def load_deployed(model: str | Path | None, precision: str = "auto", device: str = "auto",
                  store: Path = DEFAULT_STORE, threads: int | None = None) -> DeployedModel:
    onnx_dir = onnx_dir_of(model, store)
    try:
        info = json.loads((onnx_dir / "lut.json").read_text())
        pre = json.loads((onnx_dir / "preprocessor_config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LutError(f"{onnx_dir} is not a complete lut export: {exc}") from None
    gpu = device != "cpu" and gpu_usable()
    precision, path = pick_file(onnx_dir, info, precision, gpu)
    session = open_session(path, "cpu" if precision == "int8" else device, threads)
    classes = list(info["classes"])
    outputs = session.get_outputs()[0].shape[-1]
    if isinstance(outputs, int) and outputs != len(classes):
        raise LutError(f"{path.name} predicts {outputs} classes but its lut.json names {len(classes)}; "
                       "re-export the bundle")
    return DeployedModel(
        path=path, precision=precision, classes=classes, image_size=int(info["image_size"]),
        mean=np.asarray(pre.get("image_mean", [0.5] * 3), np.float32)[:, None, None],
        std=np.asarray(pre.get("image_std", [0.5] * 3), np.float32)[:, None, None],
        rule=BandRule.from_dict(info["band_rule"]) if "band_rule" in info else None,
        session=session,
    )
