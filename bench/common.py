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


def exported_random_bundle(root: Path, spec: str) -> Path:
    """A random-init `spec` bundle exported with fp32 and INT8 under `root` (reused when already there)."""
    bundle = Path(root) / spec
    if not (bundle / "onnx" / "lut.json").is_file():
        from lut.export.exporter import ExportConfig, export_model

        write_random_bundle(bundle, spec)
        export_model(ExportConfig(model_dir=bundle, quantize=True, samples=8, min_seconds=0.05))
    return bundle


def write_uint8_scene(path: Path, size: int, seed: int = 0) -> Path:
    """A tiled, compressed 3-band uint8 GeoTIFF of synthetic land cover, written block by block."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from lut.toolkit.data.synthetic import render

    rng = np.random.default_rng(seed)
    tiles = [render(c % 6, rng, 512, 512).transpose(2, 0, 1) for c in range(6)]
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": "uint8", "crs": "EPSG:32633",
               "transform": from_origin(500000, 5000000, 10, 10), "tiled": True, "blockxsize": 512,
               "blockysize": 512, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as dst:
        for i, y in enumerate(range(0, size, 512)):
            for j, x in enumerate(range(0, size, 512)):
                tile = tiles[(i * 7 + j * 3) % 6]
                dst.write(tile[:, : min(512, size - y), : min(512, size - x)],
                          window=Window(x, y, min(512, size - x), min(512, size - y)))
    return path
