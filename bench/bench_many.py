"""Many scenes and the feeder.

1. Feeder ceiling: `lut classify` of a random 4096² uint8 scene, 224 px windows, with a null model (the
   session returns zeros at once), so the figure is what reading, preparing, accumulating and writing can
   deliver. Baseline: lut's own pipeline as it was before this change (`--baseline-rev`, checked out in a
   git worktree and run in a subprocess). Against it, today's pipeline: the reader preparing each window
   itself (`readers=0`), the preparing moved to a pool of 1 or 2 threads, and uint8 windows handed to a
   model that normalises them in its graph (the null model skips that work: on a GPU it runs on the
   device), with 1, 2 and 4 threads. Old and new runs alternate; best of `--repeats`; rates are patches
   per second of the streaming part (both versions time it the same way, model loading excluded).
   Then reading alone, with 1, 2 and 4 reading threads.
2. Many scenes: 8 scenes through `classify_many` with the local engine and with Ray (2 workers, 1 CPU
   each, embedded local Ray), a small 2-layer ViT: wall time, per-scene overhead (wall minus the scenes'
   own classify seconds, per scene) and Ray's start-up.

    python bench/bench_many.py [--size 4096] [--repeats 3] [--scenes 8]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
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
        return [np.zeros((sum(len(v) for k, v in feeds.items() if k.startswith("pixel")), self.classes), np.float32)]

    def get_providers(self):
        return ["CPUExecutionProvider"]


def feeder_section(args, tmp: Path) -> None:
    from lut.tiling.classify import ClassifyConfig, classify_scene
    from lut.tiling.deployed import load_deployed

    bundle = write_random_bundle(tmp / "bundle", "vit-tiny")
    from lut.export.exporter import ExportConfig, export_model

    export_model(ExportConfig(model_dir=bundle, samples=8, min_seconds=0.05))
    model = load_deployed(bundle, "fp32", "cpu")
    model._session = NullSession(len(model.classes))  # for the float and the uint8-input graph alike
    model.prepare = lambda uint8: None
    scene = tmp / "scene.tif"
    write_scene(scene, args.size)
    base = ClassifyConfig(scene=scene, output=tmp / "m.tif", model=bundle, progress=False, overwrite=True)
    variants = {"per-window rule on the reader": replace(base, uint8_graph=False, readers=0),
                "per-window rule, 1 prepare thread": replace(base, uint8_graph=False, readers=1),
                "per-window rule, 2 prepare threads": replace(base, uint8_graph=False, readers=2)}
    for readers in (1, 2, 4):
        variants[f"uint8 into the graph, {readers} prepare thread(s)"] = replace(base, readers=readers)
    old = f"lut at {args.baseline_rev} (before this change)"
    best = {old: 0.0, **{name: 0.0 for name in variants}}
    with baseline_tree(args.baseline_rev) as tree:
        for _ in range(args.repeats):  # old and new alternate, so both see the same machine
            best[old] = max(best[old], baseline_rate(tree, scene, bundle, tmp))
            for name, cfg in variants.items():
                result = classify_scene(cfg, model=model)
                best[name] = max(best[name], result.patches / result.seconds)
    print(f"feeder ceiling, null model, random {args.size}² uint8 scene, 224 px windows, patches per second of "
          f"streaming (read, prepare, infer, write), best of {args.repeats}:")
    for name, rate in best.items():
        print(f"  {name:<44} {rate:8.0f} patches/s  {rate / best[old]:5.2f}x")
    read_section(args, scene)


@contextlib.contextmanager
def baseline_tree(rev: str):
    """lut's packages as they were at `rev`, importable as `lut` from a temporary directory."""
    root = Path(tempfile.mkdtemp(prefix="bench_many_old_"))
    repo = Path(__file__).resolve().parents[1]
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", "--detach", str(root / "tree"), rev], check=True)
    try:
        (root / "path" / "lut").mkdir(parents=True)
        for package in ("toolkit", "export", "tiling"):
            (root / "path" / "lut" / package).symlink_to(root / "tree" / package)
        yield root / "path"
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(root / "tree")], check=False)
        shutil.rmtree(root, ignore_errors=True)


#: the old pipeline with its session swapped for a null one (its classify_scene loads the model itself)
OLD_RUN = """
import sys, numpy as np
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import lut.tiling.classify as c
assert c.__file__.startswith(sys.argv[1])
real = c.load_deployed
class Null:
    def __init__(self, k): self.k = k
    def run(self, names, feeds): return [np.zeros((len(feeds["pixel_values"]), self.k), np.float32)]
    def get_providers(self): return ["CPUExecutionProvider"]
def null_model(*args, **kwargs):
    model = real(*args, **kwargs)
    model.session = Null(len(model.classes))
    return model
c.load_deployed = null_model
r = c.classify_scene(c.ClassifyConfig(scene=Path(sys.argv[2]), output=Path(sys.argv[3]), model=Path(sys.argv[4]),
                                      precision="fp32", progress=False, overwrite=True))
print(r.patches / r.seconds)
"""


def baseline_rate(tree: Path, scene: Path, bundle: Path, tmp: Path) -> float:
    out = subprocess.run([sys.executable, "-c", OLD_RUN, str(tree), str(scene), str(tmp / "old.tif"), str(bundle)],
                         check=True, capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def read_section(args, scene: Path) -> None:
    """Reading alone (GDAL strips and validity masks, nothing else): the bound every variant above shares."""
    from lut.tiling.grid import PatchGrid
    from lut.toolkit.core.chunks import ChunkReader
    from lut.toolkit.core.scene import open_raster

    grid = PatchGrid(args.size, args.size, 224, 224)
    print("reading strips alone (ChunkReader), best of", args.repeats)
    for threads in (1, 2, 4):
        best = 0.0
        for _ in range(args.repeats):
            start = time.perf_counter()
            windows = sum(len(c.offsets) for c in ChunkReader(lambda: open_raster(scene), (1, 2, 3), None, grid,
                                                                     threads=threads).chunks())
            best = max(best, windows / (time.perf_counter() - start))
        print(f"  {threads} reading thread(s)                          {best:8.0f} windows/s")


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
                                          ray=ray, progress="none"))
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
    parser.add_argument("--baseline-rev", default="96bb818",
                        help="git revision of lut before the feeder work (the commit this change started from)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_many_") as name:
        feeder_section(args, Path(name))
        if not args.skip_many:
            many_section(args, Path(name))


if __name__ == "__main__":
    main()
