"""lut classify against its peers, side by side, each as its own process on the same model, scene and grid.

    python bench/bench_peers.py [--sizes 256,4096,10980 --models vit-tiny,vit-base --precisions fp32,int8]

Contenders (peer_scripts.py): `lut classify` (the CLI, whole process); a plain rasterio + numpy + ONNX
Runtime script with lut's grid; a raw `session.run` over the scene's first windows already in memory;
TorchGeo's GridGeoSampler + DataLoader when `torchgeo` is importable (pip install 'lut[bench]'). Rounds
interleave the contenders; each figure is the best of the rounds. Printed per size, model and precision:
whole-process seconds, peak RSS (MB) and patches/s, and the goals:
  lut patches/s >= 0.95 x the raw session's (scenes of 4096² and more; lut's own streaming figure);
  lut never slower than the plain script (whole process); lut's peak RSS <= the script's + 100 MB;
  start-up (the whole process on 256²) within 0.15 s of the script's.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from common import exported_random_bundle, write_uint8_scene
from peer_scripts import PLAIN, RAW, TORCHGEO

LUT = Path(sys.executable).with_name("lut")


def run_measured(cmd: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, stdout) of one process; os.wait4 reports the peak of the one process waited
    for. Its output goes to files, not pipes, which a chatty child could fill before it is waited for."""
    # bytecode caches on, as on users' machines (this workplace sets PYTHONDONTWRITEBYTECODE, which makes
    # lut compile its own modules on every start while the peers import only precompiled packages)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        stdout.seek(0)
        stderr.seek(0)
        out, err = stdout.read(), stderr.read()
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: {err.strip()[-400:]}")
    return seconds, usage.ru_maxrss / 1024, out


@functools.lru_cache(maxsize=1)
def has_torchgeo() -> bool:
    return subprocess.run([sys.executable, "-c", "import torchgeo"], capture_output=True).returncode == 0


def contenders(tmp: Path, scene: Path, bundle: Path, precision: str, batch: int, size: int,
               raw_patches: int) -> dict[str, list[str]]:
    files = json.loads((bundle / "onnx" / "lut.json").read_text())["onnx"]
    model = str(bundle / "onnx" / files[precision])
    scripts = {name: tmp / f"peer_{name}.py" for name in ("plain", "raw", "torchgeo")}  # not torchgeo.py
    for path, text in zip(scripts.values(), (PLAIN, RAW, TORCHGEO)):
        path.write_text(text)
    py = sys.executable
    found = {
        "lut": [str(LUT), "classify", str(scene), "-o", str(tmp / "lut.tif"), "--model", str(bundle), "--precision",
                precision, "--batch-size", str(batch), "--quiet", "--overwrite"],
        "plain script": [py, str(scripts["plain"]), str(scene), model, str(tmp / "plain.tif"), str(batch)],
        "raw session": [py, str(scripts["raw"]), str(scene), model, str(batch),
                        str(min(raw_patches, (size // 224) ** 2))],
    }
    if has_torchgeo():
        found["torchgeo"] = [py, str(scripts["torchgeo"]), str(scene), model, str(batch)]
    return found


def measure(tmp: Path, scene: Path, bundle: Path, precision: str, size: int, args) -> dict:
    cmds = contenders(tmp, scene, bundle, precision, args.batch_size, size, args.raw_patches)
    best: dict[str, dict] = {}
    for _ in range(args.rounds):
        for name, cmd in cmds.items():
            seconds, rss, out = run_measured(cmd)
            row = best.setdefault(name, {"seconds": seconds, "rss_mb": rss, "patches_s": 0.0})
            row["seconds"], row["rss_mb"] = min(row["seconds"], seconds), min(row["rss_mb"], rss)
            if name == "raw session":
                row["patches_s"] = max(row["patches_s"], float(out.strip()))
            elif name == "lut":
                summary = json.loads((tmp / "lut.summary.json").read_text())
                row["patches_s"] = max(row["patches_s"], summary["patches"] / summary["seconds"])
    best["map identical"] = same_map(tmp / "lut.tif", tmp / "plain.tif")
    return best


def same_map(a: Path, b: Path) -> float:
    import rasterio

    with rasterio.open(a) as x, rasterio.open(b) as y:
        return float((x.read(1) == y.read(1)).mean())


def report(size: int, spec: str, precision: str, best: dict) -> list[str]:
    lut, plain, raw = best["lut"], best["plain script"], best["raw session"]
    lines = [f"{size}² {spec} {precision}: map pixels equal to the script's {best['map identical']:.4%}"]
    for name in ("lut", "plain script", "raw session", "torchgeo"):
        if name in best:
            row = best[name]
            rate = f"{row['patches_s']:8.1f} patches/s" if row["patches_s"] else " " * 18
            lines.append(f"  {name:<13} {row['seconds']:8.2f} s  {row['rss_mb']:7.0f} MB  {rate}")
    goals = [f"lut/script time {lut['seconds'] / plain['seconds']:.3f} (goal <= 1)",
             f"RSS lut - script {lut['rss_mb'] - plain['rss_mb']:+.0f} MB (goal <= +100)"]
    if size >= 4096:
        goals.append(f"lut/raw patches/s {lut['patches_s'] / raw['patches_s']:.3f} (goal >= 0.95)")
    if size <= 256:
        goals.append(f"start-up lut - script {lut['seconds'] - plain['seconds']:+.2f} s (goal <= +0.15)")
    if "torchgeo" in best:
        goals.append(f"torchgeo/lut time {best['torchgeo']['seconds'] / lut['seconds']:.2f}")
    return lines + ["  " + "; ".join(goals)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,4096,10980")
    parser.add_argument("--models", default="vit-tiny,vit-base")
    parser.add_argument("--precisions", default="int8,fp32")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--raw-patches", type=int, default=128, help="windows the raw session runs (in memory)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "lut-bench-models")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as work:
        tmp = Path(work)
        bundles = {spec: exported_random_bundle(args.cache, spec) for spec in args.models.split(",")}
        for bundle in bundles.values():
            pre = json.loads((bundle / "onnx" / "preprocessor_config.json").read_text())
            assert np.allclose(pre["image_mean"], 0.5) and np.allclose(pre["image_std"], 0.5), "scripts assume 0.5"
        for size in map(int, args.sizes.split(",")):
            scene = write_uint8_scene(tmp / f"scene{size}.tif", size)
            for spec, bundle in bundles.items():
                for precision in args.precisions.split(","):
                    best = measure(tmp, scene, bundle, precision, size, args)
                    print("\n".join(report(size, spec, precision, best)), flush=True)
            scene.unlink()


if __name__ == "__main__":
    main()
