"""Memory and time of `lut assess design` and `lut assess estimate` on large maps.

    python bench/bench_assess.py [--sizes 4096 16384] [--n 1000]

Each size gets a blocky 6-class lut map (64 px parcels, a nodata collar) written strip by strip; `design`
(counting, allocation, streaming point location, GeoPackage + CSV) and `estimate` (the sample labelled with
each point's map class, a tenth of them changed) each run in a fresh process, whose peak RSS (VmHWM) is
printed. Goal: under 1 GB at 16384², and flat with size.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_change import CLASSES, PEAK, write_map

DESIGN = ("import re, sys, time; from pathlib import Path; from lut.toolkit.assess.design import DesignConfig, design; "
          "t = time.perf_counter(); r = design(DesignConfig(Path(sys.argv[1]), Path(sys.argv[2]), n=int(sys.argv[3]), "
          "min_per_stratum=20)); s = time.perf_counter() - t; " + PEAK + "print(r['n'], s, hwm)")
ESTIMATE = ("import re, sys, time; from pathlib import Path; "
            "from lut.toolkit.assess.estimate import EstimateConfig, estimate_areas; t = time.perf_counter(); "
            "r = estimate_areas(EstimateConfig(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))); "
            "s = time.perf_counter() - t; " + PEAK + "print(r['labelled_points'], s, hwm)")


def run(code: str, *args) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], check=True, capture_output=True, text=True)
    return out.stdout.split()


def label(sample_csv: Path) -> None:
    from lut.toolkit.assess.sample_files import fill_references

    rows = list(csv.DictReader(open(sample_csv)))
    rng = np.random.default_rng(0)
    labels = [CLASSES[(CLASSES.index(r["map_class"]) + 1) % 6] if rng.random() < 0.1 else r["map_class"]
              for r in rows]
    fill_references(sample_csv, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    print(f"{'map':>14} {'step':>9} {'points':>7} {'seconds':>8} {'peak RSS MB':>12}")
    peaks = []
    with tempfile.TemporaryDirectory(prefix="lut-bench-assess-") as tmp:
        for size in args.sizes:
            folder = Path(tmp) / str(size)
            folder.mkdir()
            start = time.perf_counter()
            write_map(folder / "map.tif", size, 0)
            print(f"{'':>14} (map written in {time.perf_counter() - start:.1f} s)")
            n, seconds, hwm = run(DESIGN, folder / "map.tif", folder / "s.gpkg", args.n)
            print(f"{size:>6} x {size:<6} {'design':>9} {n:>7} {float(seconds):>8.1f} {float(hwm):>12.1f}")
            label(folder / "s.csv")
            n, seconds, hwm2 = run(ESTIMATE, folder / "map.tif", folder / "s.csv", folder / "out")
            print(f"{size:>6} x {size:<6} {'estimate':>9} {n:>7} {float(seconds):>8.1f} {float(hwm2):>12.1f}")
            peaks.append(max(float(hwm), float(hwm2)))
    print(f"largest / smallest peak RSS: {peaks[-1] / peaks[0]:.2f} (goal: < 1024 MB at 16384²)")


if __name__ == "__main__":
    main()
