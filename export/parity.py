"""Parity and speed of every ONNX variant against the PyTorch model, on real validation images."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lut.toolkit.core.bundle import Bundle
from lut.toolkit.data.datasets import PatchDataset, class_counts, open_source, stratified_sample, stratified_split
from lut.toolkit.core.errors import InputError

from .runtime import open_session


@dataclass
class Sample:
    """Normalised images (N, 3, S, S), their labels (None when the data's classes differ from the bundle's)
    and where they came from, with the count per class."""

    images: np.ndarray
    labels: np.ndarray | None
    source: str
    per_class: dict[str, int]
    seed: int


def chip_bands(bundle: Bundle) -> tuple[int, ...] | None:
    """The bands the bundle's chips were read with; None for RGB (photos take no --bands)."""
    rule = bundle.band_rule
    return rule.bands if rule is not None and rule.bands != (1, 2, 3) else None


def parity_sample(bundle: Bundle, mean: list[float], std: list[float], data: str | None, n: int) -> Sample:
    """Up to n validation images, seeded and stratified over every class, from `data` or the bundle's source."""
    seed = int(bundle.split.get("seed", 0))
    recorded = bundle.data_source
    if data is None:
        if recorded.get("kind") == "synthetic":
            data, count = "synthetic", int(recorded["images"])
        else:
            data, count = recorded.get("path", "synthetic"), 0
            if not Path(data).is_dir():
                raise InputError(f"the bundle's data source {data} is not here; pass `data` DIR")
    else:
        count = int(recorded.get("images", 600)) if data == "synthetic" else 0
    bands = chip_bands(bundle) if data != "synthetic" else None
    source = open_source(data, bundle.image_size, bands, max(count, 60), seed, verify=False)
    if bundle.band_rule is not None and bundle.band_rule.quantity == source.rule.quantity:
        source.rule = bundle.band_rule
    same_classes = list(source.classes) == list(bundle.classes)
    val = stratified_sample(stratified_split(source.labels, seed).val, source.labels, n, seed)
    dataset = PatchDataset(source, val, mean, std)
    images = np.stack([dataset[i][0].numpy() for i in range(len(dataset))])
    labels = source.labels[val] if same_classes else None
    return Sample(images, labels, str(data), class_counts(source.labels[val], list(source.classes)), seed)


def batches(images: np.ndarray, batch_size: int):
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size]


def throughput(run: Callable[[np.ndarray], object], images: np.ndarray, batch_size: int,
               min_seconds: float = 1.0, max_batches: int = 200) -> float:
    """Images per second over whole batches, after one warm-up batch."""
    batch = images[:batch_size]
    if len(batch) < batch_size:
        batch = np.concatenate([batch] * (batch_size // max(len(batch), 1) + 1))[:batch_size]
    run(batch)
    done, start = 0, time.perf_counter()
    while done < max_batches and (time.perf_counter() - start < min_seconds or done < 2):
        run(batch)
        done += 1
    return done * batch_size / (time.perf_counter() - start)


def torch_logits(model: torch.nn.Module, images: np.ndarray, batch_size: int) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([model(pixel_values=torch.from_numpy(b)).logits.numpy()
                               for b in batches(images, batch_size)])


def onnx_logits(session, images: np.ndarray, batch_size: int) -> np.ndarray:
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: b})[0] for b in batches(images, batch_size)]).astype(np.float32)


def measure_variants(model: torch.nn.Module, variants: dict[str, Path], images: np.ndarray, labels: np.ndarray | None,
                     batch_size: int = 16, device: str = "cpu", min_seconds: float = 1.0) -> dict:
    """Per variant: max |logit diff|, top-1 agreement, accuracy, size and images/s, PyTorch as reference."""
    ref = torch_logits(model, images, batch_size)
    ref_top1 = ref.argmax(1)

    def accuracy(top1: np.ndarray) -> float | None:
        return None if labels is None else float((top1 == labels).mean())

    with torch.no_grad():
        torch_speed = throughput(lambda b: model(pixel_values=torch.from_numpy(b)), images, batch_size, min_seconds)
    rows = {"pytorch": {"max_abs_logit_diff": 0.0, "top1_agreement": 1.0, "accuracy": accuracy(ref_top1),
                        "size_mb": None, "images_per_s": torch_speed, "device": "cpu"}}
    for name, path in variants.items():
        session = open_session(path, "cpu" if name == "int8" else device)
        logits = onnx_logits(session, images, batch_size)
        top1 = logits.argmax(1)
        input_name = session.get_inputs()[0].name
        rows[name] = {
            "file": path.name,
            "max_abs_logit_diff": float(np.abs(logits - ref).max()),
            "top1_agreement": float((top1 == ref_top1).mean()),
            "accuracy": accuracy(top1),
            "size_mb": path.stat().st_size / 1e6,
            "images_per_s": throughput(lambda b: session.run(None, {input_name: b}), images, batch_size, min_seconds),
            "device": session.get_providers()[0].replace("ExecutionProvider", "").lower(),
        }
    return rows


def format_parity(rows: dict) -> str:
    head = f"{'variant':<8} {'max|dlogit|':>11} {'top1 agree':>10} {'accuracy':>8} {'size MB':>8} {'img/s':>8}  device"
    lines = [head]
    for name, r in rows.items():
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        size = "-" if r["size_mb"] is None else f"{r['size_mb']:.2f}"
        lines.append(f"{name:<8} {r['max_abs_logit_diff']:>11.2e} {r['top1_agreement']:>10.3f} {acc:>8} {size:>8} "
                     f"{r['images_per_s']:>8.1f}  {r['device']}")
    return "\n".join(lines)


def uint8_windows(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The normalised parity images as the uint8 windows a uint8 scene gives (un-normalised, rounded)."""
    return np.clip(np.rint((images * std + mean) * 255.0), 0, 255).astype(np.uint8)


def measure_uint8_inputs(variants: dict[str, Path], written: dict[str, Path], images: np.ndarray,
                         mean: list[float], std: list[float], batch_size: int = 16, device: str = "cpu") -> dict:
    """Per variant: its uint8-input twin against the float model fed what lut's numpy path prepares from
    the same uint8 windows; both run the same float32 arithmetic, so the logits should be equal."""
    from lut.toolkit.core.radiometry import rule_for_dtype

    from .uint8_input import FLOAT_INPUT, U8_INPUT, rule_inputs

    m = np.asarray(mean, np.float32)[:, None, None]
    s = np.asarray(std, np.float32)[:, None, None]
    windows = uint8_windows(images, m, s)
    rule = rule_for_dtype("uint8", tuple(range(1, len(mean) + 1)))
    prepared = np.stack([rule.apply(w, m, s) for w in windows])
    empty = np.empty((0, *prepared.shape[1:]), np.float32)
    rows = {}
    for name, path in written.items():
        on = "cpu" if name == "int8" else device
        reference = onnx_logits(open_session(variants[name], on), prepared, batch_size)
        session = open_session(path, on)
        logits = np.concatenate([session.run(None, {U8_INPUT: b, FLOAT_INPUT: empty, **rule_inputs(rule)})[0]
                                 for b in batches(windows, batch_size)]).astype(np.float32)
        rows[name] = {"file": path.name, "max_abs_logit_diff": float(np.abs(logits - reference).max()),
                      "top1_agreement": float((logits.argmax(1) == reference.argmax(1)).mean()),
                      "size_mb": path.stat().st_size / 1e6}
    return rows
