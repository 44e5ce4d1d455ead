"""Helpers shared by the benchmarks: a bundle for a random-init ViT, a folder of synthetic images, peak RSS."""

from __future__ import annotations

import resource
from pathlib import Path


def write_random_bundle(path: Path, spec: str = "vit-base", image_size: int = 224, classes: int = 6) -> Path:
    """A bundle with random weights: speed does not depend on what the weights are."""
    from lut.toolkit.vit.backbones import load_classifier
    from lut.toolkit.core.bundle import Bundle, ChipInfo
    from lut.toolkit.core.radiometry import rule_for_dtype
    from lut.toolkit.data.synthetic import CLASSES

    names = list(CLASSES[:classes])
    model, processor, _ = load_classifier(spec, names, image_size)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    Bundle(kind="model", image_size=image_size, classes=names, band_rule=rule_for_dtype("uint8", (1, 2, 3)),
           chip=ChipInfo(image_size, 10.0, "synthetic"), data="synthetic",
           data_source={"kind": "synthetic", "images": 600, "seed": 0}, split={"seed": 0}).save(path)
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_image_folder(root: Path, images: int, size: int) -> Path:
    """`images` synthetic PNG patches in root/<class>/, the classes in turn (seeded): unlabelled pretraining data."""
    import numpy as np
    from PIL import Image

    from lut.toolkit.data.synthetic import CLASSES, render

    rng = np.random.default_rng(0)
    for i in range(images):
        label = i % len(CLASSES)
        (root / CLASSES[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(render(label, rng, size, size)).save(root / CLASSES[label] / f"{i}.png")
    return root
