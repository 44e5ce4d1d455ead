"""Scene edges: accuracy of the edge strip vs the interior, with inward-aligned windows (lut) and with the
zero-padded last windows lut used before (emulated by classifying a zero-padded copy of the scene).

    .venv/bin/python bench/bench_edges.py

Trains the demo's small ViT on synthetic patches (32 px windows), then classifies one-class scenes of
3 windows + 8 px per side, four seeds per class; the edge strip is the last 8 px rows and columns.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lut.export.exporter import ExportConfig, export_model  # noqa: E402
from lut.tiling.classify import ClassifyConfig, classify_scene  # noqa: E402
from lut.toolkit.cli.demo import write_demo_backbone  # noqa: E402
from lut.toolkit.train.finetune import FinetuneConfig, finetune  # noqa: E402
from lut.toolkit.train.strategies import StrategyConfig  # noqa: E402
from lut.toolkit.data.synthetic import CLASSES, render  # noqa: E402
from lut.toolkit.train.config import TrainConfig  # noqa: E402

PATCH, STRIP, SEEDS = 32, 8, 4


def one_class_scene(cls: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, cls])
    out = np.zeros((size, size, 3), np.uint8)
    for y in range(0, size, PATCH):
        for x in range(0, size, PATCH):
            tile = render(cls, rng, PATCH, PATCH)
            out[y:y + PATCH, x:x + PATCH] = tile[: size - y, : size - x]
    return np.maximum(out, 1).transpose(2, 0, 1)


def write(path: Path, data: np.ndarray) -> Path:
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=3, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(0, 0, 10, 10)) as dst:
        dst.write(data)
    return path


def read_map(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench_edges_"))
    start = time.perf_counter()
    backbone = write_demo_backbone(work / "backbone", PATCH, seed=0)
    bundle, outcome = finetune(FinetuneConfig(
        data="synthetic", synthetic_images=1200, backbone=str(backbone), image_size=PATCH,
        strategy=StrategyConfig("progressive", head_lr=3e-3, backbone_lr=1e-3, unfreeze_every=1),
        train=TrainConfig(epochs=8, batch_size=32, progress=False), output=work / "bundle", store=work / "models"))
    export_model(ExportConfig(model_dir=bundle, samples=64, min_seconds=0.1))
    print(f"bundle: test accuracy {outcome.metrics['accuracy']:.3f} ({time.perf_counter() - start:.0f} s)")
    size = 3 * PATCH + STRIP
    print(f"scenes {size} x {size} px, {SEEDS} per class, edge strip {STRIP} px; accuracy interior / edge")
    print(f"{'class':<10} {'lut (inward)':>16} {'zero-padded':>16}")
    totals = {"inward": [], "padded": []}
    for cls, name in enumerate(CLASSES):
        acc = {"inward": [[], []], "padded": [[], []]}
        for seed in range(SEEDS):
            data = one_class_scene(cls, size, seed)
            padded = np.zeros((3, 4 * PATCH, 4 * PATCH), np.uint8)  # the old grid: last windows padded with 0
            padded[:, :size, :size] = data
            for mode, scene in (("inward", data), ("padded", padded)):
                path = write(work / f"{mode}_{cls}_{seed}.tif", scene)
                out = work / f"{mode}_{cls}_{seed}_map.tif"
                classify_scene(ClassifyConfig(scene=path, output=out, model=bundle, precision="fp32",
                                              progress=False))
                m = read_map(out)[:size, :size]
                edge = np.zeros((size, size), bool)
                edge[-STRIP:, :] = edge[:, -STRIP:] = True
                acc[mode][0].append((m[~edge] == cls).mean())
                acc[mode][1].append((m[edge] == cls).mean())
        row = {mode: (float(np.mean(a[0])), float(np.mean(a[1]))) for mode, a in acc.items()}
        for mode in totals:
            totals[mode].append(row[mode])
        print(f"{name:<10} {row['inward'][0]:>7.2f} / {row['inward'][1]:<6.2f} {row['padded'][0]:>7.2f} / "
              f"{row['padded'][1]:<6.2f}")
    for mode, rows in totals.items():
        interior, edge = np.mean(rows, axis=0)
        print(f"mean {mode:<8} interior {interior:.3f}, edge strip {edge:.3f}, edge / interior {edge / interior:.2f}")


if __name__ == "__main__":
    main()
