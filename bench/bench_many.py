"""Many scenes and the feeder.

1. Feeder ceiling: `lut classify` of a random 4096² uint8 scene, 224 px windows, with a null model (the
   session returns zeros at once), so the figure is what reading, preparing, accumulating and writing can
   deliver. Baseline, as before this change: the reader thread prepares each window with the band rule
   itself (`readers=0`). Against it: the preparing moved to a pool of 1 or 2 threads, and uint8 windows
   handed to a model that normalises them in its graph (the null model skips that work: on a GPU it runs
   on the device), with 1, 2 and 4 prepare threads. Runs alternate, best of `--repeats`.
2. Many scenes: 8 scenes through `classify_many` with the local engine and with Ray (2 workers, 1 CPU
   each, embedded local Ray), a small 2-layer ViT: wall time, per-scene overhead (wall minus the scenes'
   own classify seconds, per scene) and Ray's start-up.

    python bench/bench_many.py [--size 4096] [--repeats 3] [--scenes 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_random_bundle  # noqa: E402


def write_scene(path: Path, size: int, seed: int = 0) -> None:
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(500000, 5000000, 10, 10), tiled=True,
                       blockxsize=256, blockysize=256) as dst:
        for y in range(0, size, 1024):
            h = min(1024, size - y)
            dst.write(rng.integers(1, 256, (3, h, size), dtype=np.uint8),
                      window=rasterio.windows.Window(0, y, size, h))


class NullSession:
    """Returns zero logits at once: what remains is the feeder and the writer."""

    def __init__(self, classes: int) -> None:
        self.classes = classes

    def run(self, names, feeds):
        return [np.zeros((sum(len(v) for v in feeds.values()), self.classes), np.float32)]

    def get_providers(self):
        return ["CPUExecutionProvider"]


def feeder_section(args, tmp: Path) -> None:
    from lut.tiling.classify import ClassifyConfig, classify_scene
    from lut.tiling.deployed import load_deployed

    bundle = write_random_bundle(tmp / "bundle", "vit-tiny")
    from lut.export.exporter import ExportConfig, export_model

    export_model(ExportConfig(model_dir=bundle, samples=8, min_seconds=0.05))
    model = load_deployed(bundle, "fp32", "cpu")
    model.session = NullSession(len(model.classes))
    model.uint8_session = lambda rule: model.session  # the uint8-input graph, equally null
    scene = tmp / "scene.tif"
    write_scene(scene, args.size)
    base = ClassifyConfig(scene=scene, output=tmp / "m.tif", model=bundle, progress=False, overwrite=True)
    variants = {"per-window rule on the reader (before)": replace(base, uint8_graph=False, readers=0),
                "per-window rule, 1 prepare thread": replace(base, uint8_graph=False, readers=1),
                "per-window rule, 2 prepare threads": replace(base, uint8_graph=False, readers=2)}
    for readers in (1, 2, 4):
        variants[f"uint8 into the graph, {readers} prepare thread(s)"] = replace(base, readers=readers)
    best = {name: 0.0 for name in variants}
    for _ in range(args.repeats):
        for name, cfg in variants.items():
            start = time.perf_counter()
            result = classify_scene(cfg, warn=lambda m: None, model=model)
            best[name] = max(best[name], result.patches / (time.perf_counter() - start))
    print(f"feeder ceiling, null model, random {args.size}² uint8 scene, 224 px windows, best of {args.repeats}:")
    baseline = best["per-window rule on the reader (before)"]
    for name, rate in best.items():
        print(f"  {name:<44} {rate:8.0f} patches/s  {rate / baseline:5.2f}x")


def many_section(args, tmp: Path) -> None:
    from lut.export.exporter import ExportConfig, export_model
    from lut.tiling.classify import ClassifyConfig
    from lut.tiling.engines import RayOptions
    from lut.tiling.many import ManyConfig, classify_many
    from transformers import ViTConfig, ViTForImageClassification

    bundle = write_random_bundle(tmp / "small", "vit-tiny")
    config = ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                       image_size=224, patch_size=16, num_labels=6)
    ViTForImageClassification(config).save_pretrained(bundle)
    export_model(ExportConfig(model_dir=bundle, samples=8, min_seconds=0.05))
    scenes = tmp / "scenes"
    scenes.mkdir()
    for i in range(args.scenes):
        write_scene(scenes / f"S{i}.tif", 1024, seed=i)
    template = ClassifyConfig(scene=Path("-"), output=Path("-"), model=bundle, progress=False, precision="fp32")
    print(f"\n{args.scenes} scenes of 1024² (16 windows each), 2-layer ViT fp32:")
    for name, engine, ray in (("local", "local", RayOptions()),
                              ("ray, 2 workers x 1 CPU", "ray", RayOptions(workers=2, cpus_per_worker=1))):
        out = tmp / f"out-{engine}"
        start = time.perf_counter()
        result = classify_many(ManyConfig(scenes=[str(scenes)], output=out, template=template, engine=engine,
                                          ray=ray, progress="none"), say=lambda m: None)
        wall = time.perf_counter() - start
        inside = sum(r["seconds"] for r in result.rows)
        print(f"  {name:<24} wall {wall:6.1f} s  scenes' own classify time {inside:6.1f} s  "
              f"overhead {(wall - inside / (2 if engine == 'ray' else 1)) / args.scenes:5.2f} s/scene")
    import ray as ray_module

    start = time.perf_counter()
    ray_module.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    print(f"  Ray start-up alone: {time.perf_counter() - start:.1f} s")
    ray_module.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--skip-many", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_many_") as name:
        feeder_section(args, Path(name))
        if not args.skip_many:
            many_section(args, Path(name))


if __name__ == "__main__":
    main()
