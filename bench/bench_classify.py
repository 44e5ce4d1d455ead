"""lut classify: pipeline vs raw ONNX Runtime, vs a naive whole-scene PyTorch loop, and peak memory.

    python bench/bench_classify.py [--spec vit-small --size 2048 --mem-sizes 4096,8192,16384]

1. End-to-end throughput of classify_scene vs session.run on the same batches, already in memory
   (goal >= 0.9: the pipeline costs under 10%).
2. Versus a naive baseline that reads the whole scene and runs PyTorch eager one tile at a time.
3. Peak RSS of `lut classify` (a fresh process per size) on 3-band uint8 GeoTIFFs that this script
   writes, 4096 to 16384 px a side (goal: under 1 GB and flat).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import write_random_bundle, write_uint8_scene


def write_big_scene(path: Path, size: int, seed: int = 0) -> None:
    write_uint8_scene(path, size, seed)


def export(bundle: Path) -> None:
    from lut.export.exporter import ExportConfig, export_model

    export_model(ExportConfig(model_dir=bundle, quantize=True, samples=8, min_seconds=0.05))


def throughput_section(args, tmp: Path) -> None:
    import rasterio
    import torch

    from lut.tiling.classify import ClassifyConfig, classify_scene
    from lut.tiling.deployed import load_deployed

    bundle = write_random_bundle(tmp / "bundle", args.spec)
    export(bundle)
    scene = tmp / "scene.tif"
    write_big_scene(scene, args.size)
    model = load_deployed(bundle, args.precision)
    n = (args.size // 224 + (args.size % 224 > 0)) ** 2
    batches = [np.random.default_rng(i).standard_normal((args.batch_size, 3, 224, 224)).astype(np.float32)
               for i in range(2)]
    model.logits(batches[0])
    start = time.perf_counter()
    done = 0
    while done < n:
        model.logits(batches[done // args.batch_size % 2][: min(args.batch_size, n - done)])
        done += args.batch_size
    raw = n / (time.perf_counter() - start)
    result = classify_scene(ClassifyConfig(scene=scene, output=tmp / "map.tif", model=bundle,
                                           precision=args.precision, batch_size=args.batch_size, progress=False,
                                           overwrite=True))
    pipeline = result.patches / result.seconds
    print(f"{args.spec} {model.precision} on {model.device}, {args.size} px scene, {n} patches, "
          f"batch {args.batch_size}")
    print(f"  raw session.run on in-memory batches  {raw:8.2f} patches/s")
    print(f"  lut classify end to end              {pipeline:8.2f} patches/s")
    print(f"  pipeline / raw                        {pipeline / raw:8.3f} (goal >= 0.9)")

    from transformers import ViTForImageClassification

    torch_model = ViTForImageClassification.from_pretrained(bundle).eval()
    start = time.perf_counter()
    with rasterio.open(scene) as src:
        whole = src.read().astype(np.float32) / 255.0  # the naive way: everything in memory
    mean = np.asarray([0.5, 0.5, 0.5], np.float32)[:, None, None]
    tiles = 0
    with torch.no_grad():
        for y in range(0, args.size - 223, 224):
            for x in range(0, args.size - 223, 224):
                tile = (whole[:, y:y + 224, x:x + 224] - mean) / mean
                torch_model(pixel_values=torch.from_numpy(tile)[None])
                tiles += 1
                if tiles >= args.naive_tiles:
                    break
            if tiles >= args.naive_tiles:
                break
    naive = tiles / (time.perf_counter() - start)
    print(f"  naive whole-scene PyTorch eager, 1 tile at a time ({tiles} tiles)  {naive:8.2f} patches/s")
    print(f"  lut classify / naive                  {pipeline / naive:8.2f}x")


def memory_section(args, tmp: Path) -> None:
    from transformers import ViTConfig, ViTForImageClassification

    bundle = tmp / "small"
    config = ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                       image_size=224, patch_size=16, num_labels=6)
    write_random_bundle(bundle, "vit-tiny")
    ViTForImageClassification(config).save_pretrained(bundle)  # same bundle files, a quicker network
    export(bundle)
    # VmHWM, not ru_maxrss: after fork+exec Linux reports the parent's peak in ru_maxrss when it is larger
    code = ("import re, sys; from lut.tiling.classify import ClassifyConfig, classify_scene; "
            "r = classify_scene(ClassifyConfig(scene=sys.argv[1], output=sys.argv[2], model=sys.argv[3], "
            "progress=False, overwrite=True)); "
            "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)); "
            "print(r.patches, r.seconds, hwm / 1024)")
    print("peak RSS of a fresh classify process (tiny 2-layer ViT, int8):")
    rows = []
    for size in args.mem_sizes:
        scene = tmp / f"big{size}.tif"
        write_big_scene(scene, size)
        out = subprocess.run([sys.executable, "-c", code, str(scene), str(tmp / "m.tif"), str(bundle)],
                             check=True, capture_output=True, text=True).stdout.split()
        patches, seconds, rss = int(out[-3]), float(out[-2]), float(out[-1])
        rows.append(rss)
        print(f"  {size:>6} x {size:<6} {patches:>6} patches {seconds:7.1f} s  peak RSS {rss:7.1f} MB")
        scene.unlink()
    print(f"  largest / smallest peak RSS: {rows[-1] / rows[0]:.2f} (flat = 1.0; goal: < 1024 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="vit-small")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--size", type=int, default=4480)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--naive-tiles", type=int, default=40)
    parser.add_argument("--mem-sizes", default="4096,8192,16384")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    args.mem_sizes = [int(s) for s in args.mem_sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_throughput:
            throughput_section(args, Path(tmp))
        if not args.skip_memory:
            memory_section(args, Path(tmp))


if __name__ == "__main__":
    main()
