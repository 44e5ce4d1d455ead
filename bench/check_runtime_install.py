"""The runtime install, measured and exercised: a fresh venv with `pip install .` (no extras) maps, changes,
vectorizes, composites and assesses the demo scene, and imports no training stack.

    make demo && python bench/check_runtime_install.py [--venv /tmp/lut-runtime]

Prints the install's size (site-packages) beside the full install's (.venv), the cold start of `lut classify
--help`, and the time to a map of a 256 x 256 scene (start-up to exit, best of 3), each in fresh processes.
Needs the package index (or a warm pip cache) and the demo's exported model (models/demo-progressive).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "demo-progressive"


def du_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def best_of(cmd: list[str], n: int = 3) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--venv", type=Path, default=Path("/tmp/lut-runtime"))
    args = parser.parse_args()
    venv, work = args.venv, args.venv.parent / "lut-runtime-work"
    shutil.rmtree(venv, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(ROOT)], check=True)
    print(f"runtime install: {time.perf_counter() - start:.0f} s")
    site = next((venv / "lib").glob("python3*/site-packages"))
    full = next((ROOT / ".venv" / "lib").glob("python3*/site-packages"))
    print(f"site-packages: runtime {du_mb(site):,.0f} MB, full (.venv: train, gpu, ray, dev) {du_mb(full):,.0f} MB")
    lut, py = str(venv / "bin" / "lut"), str(venv / "bin" / "python")
    heavy = subprocess.run([py, "-c", "import importlib.util as u; print([m for m in ('torch', 'transformers', "
                            "'optimum', 'lightly', 'sklearn') if u.find_spec(m)])"], capture_output=True, text=True)
    print(f"training packages importable in the runtime: {heavy.stdout.strip()}")
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(ROOT / "demo" / "scene.tif") as src:
        corner = Window(128, 128, 256, 256)
        profile = {**src.profile, "width": 256, "height": 256, "transform": src.window_transform(corner)}
        with rasterio.open(work / "small.tif", "w", **profile) as dst:
            dst.write(src.read(window=corner))
    print(f"cold start, lut classify --help: {best_of([lut, 'classify', '--help']):.2f} s")
    small = [lut, "classify", str(work / "small.tif"), "-o", str(work / "small_map.tif"), "--model", str(MODEL),
             "--overwrite", "--quiet"]
    print(f"a 256 x 256 scene, start to map: {best_of(small):.2f} s")
    steps = [
        [lut, "classify", str(ROOT / "demo" / "scene.tif"), "-o", str(work / "a.tif"), "--model", str(MODEL),
         "--probabilities", "--confidence", "--quiet"],
        [lut, "classify", str(ROOT / "demo" / "scene_after.tif"), "-o", str(work / "b.tif"), "--model", str(MODEL),
         "--probabilities", "--confidence", "--mask", str(ROOT / "demo" / "scene_after_SCL.tif"), "--quiet"],
        [lut, "change", str(work / "a.tif"), str(work / "b.tif"), "-o", str(work / "change.tif")],
        [lut, "vectorize", str(work / "a.tif"), "-o", str(work / "a.gpkg")],
        [lut, "composite", str(work / "a.tif"), str(work / "b.tif"), "-o", str(work / "year.tif")],
        [lut, "assess", "design", str(work / "a.tif"), "-o", str(work / "sample.gpkg"), "--n", "60",
         "--min-per-stratum", "5"],
    ]
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True)
        print(f"{'ok' if done.returncode == 0 else 'FAILED'}  lut {' '.join(cmd[1:3])}"
              + ("" if done.returncode == 0 else f": {done.stderr.strip()}"))


if __name__ == "__main__":
    main()
