"""Memory and speed of `lut change` and `lut vectorize` on large maps.

1. `lut change` on two maps of 2048² and 8192² pixels with confidence bands, in a fresh process per size:
   same grid, same grid with --min-confidence and --preview, and AFTER on another grid (20 m, shifted), which
   is warped on the fly. Goal: peak RSS under 1 GB at 8192², and flat with size.
2. `lut vectorize` of the 8192² map in a fresh process: the class band is read whole (see vectorize.py), so
   this states its memory rather than holding it flat.

The maps are blocky (64 px land parcels of random classes) and written strip by strip by this script.

    python bench/bench_change.py [--sizes 2048 8192]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CLASSES = ["forest", "cropland", "urban", "water", "barren", "wetland"]
PARCEL = 64
STRIP = 512


def write_map(path: Path, size: int, seed: int, pixel_m: float = 10.0, offset_m: float = 0.0,
              changed_from: Path | None = None) -> None:
    """A lut map of PARCEL-pixel parcels; with `changed_from`, the same parcels with a tenth of them changed."""
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    from lut.tiling.writer import ClassMapWriter, map_legend
    from lut.toolkit.core.ownership import confidence_path_of
    from lut.toolkit.gis.legend import sidecars, write_legend

    rng = np.random.default_rng(0)
    parcels = rng.integers(0, len(CLASSES), (size // PARCEL + 1, size // PARCEL + 1))
    if changed_from is not None:
        change = np.random.default_rng(seed).random(parcels.shape) < 0.1
        parcels = np.where(change, (parcels + 1) % len(CLASSES), parcels)
    profile = {"width": size, "height": size, "crs": CRS.from_epsg(32633),
               "transform": from_origin(500000.0 + offset_m, 5000000.0, pixel_m, pixel_m)}
    writer = ClassMapWriter(path, profile, CLASSES, confidence_path_of(path))
    conf_rng = np.random.default_rng(seed + 1)
    for y0 in range(0, size, STRIP):
        rows = np.arange(y0, min(size, y0 + STRIP)) // PARCEL
        classes = parcels[rows][:, np.arange(size) // PARCEL].astype(np.uint8)
        classes[:, : size // 16] = 255  # a nodata collar
        confidence = conf_rng.integers(30, 101, classes.shape, dtype=np.uint8)
        writer.write_rows(y0, classes, confidence)
    writer.close()
    write_legend(map_legend(CLASSES, writer.counts, writer.area_m2), *sidecars(path))


# VmHWM, not ru_maxrss: after fork+exec Linux reports the parent's peak in ru_maxrss when it is larger
PEAK = "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024; "

CHANGE = ("import re, sys, time; from lut.toolkit.gis.change import ChangeConfig, compute_change; "
          "conf = None if sys.argv[4] == '-' else float(sys.argv[4]); "
          "preview = None if sys.argv[5] == '-' else sys.argv[5]; "
          "t = time.perf_counter(); r = compute_change(ChangeConfig(sys.argv[1], sys.argv[2], sys.argv[3], conf, "
          "preview, overwrite=True)); s = time.perf_counter() - t; " + PEAK +
          "print(r.transitions.total, s, hwm)")

VECTORIZE = ("import re, sys, time; from lut.toolkit.gis.vectorize import VectorizeConfig, vectorize; "
             "r = vectorize(VectorizeConfig(sys.argv[1], sys.argv[2], min_pixels=int(sys.argv[3]), overwrite=True)); "
             + PEAK + "print(r.polygons, r.seconds, hwm)")


def run(code: str, *args) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], check=True, capture_output=True, text=True)
    return out.stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_change_") as tmp_name:
        tmp = Path(tmp_name)
        print("lut change, a fresh process per run (two maps with confidence bands):")
        print(f"  {'size':>11}  {'case':<42} {'common Mpx':>10} {'seconds':>8} {'Mpx/s':>7} {'peak RSS MB':>12}")
        peaks: dict[str, list[float]] = {}
        for size in args.sizes:
            before, after, moved = tmp / f"b{size}.tif", tmp / f"a{size}.tif", tmp / f"m{size}.tif"
            write_map(before, size, 1)
            write_map(after, size, 2, changed_from=before)
            write_map(moved, size // 2, 3, pixel_m=20.0, offset_m=size * 2.5, changed_from=before)
            cases = [("same grid", after, "-", "-"),
                     ("same grid, --min-confidence 50, --preview", after, "50", tmp / "c.png"),
                     ("AFTER at 20 m, shifted: warped", moved, "-", "-")]
            for name, other, conf, preview in cases:
                total, seconds, rss = run(CHANGE, before, other, tmp / "c.tif", conf, preview)
                mpx = int(total) / 1e6
                peaks.setdefault(name, []).append(float(rss))
                print(f"  {size:>5}x{size:<5}  {name:<42} {mpx:>10.1f} {float(seconds):>8.1f} "
                      f"{mpx / float(seconds):>7.1f} {float(rss):>12.1f}")
        for name, rows in peaks.items():
            print(f"  {name}: largest / smallest peak RSS {rows[-1] / rows[0]:.2f} (flat = 1.0; goal < 1024 MB)")
        size = args.sizes[-1]
        print(f"\nlut vectorize of the {size}x{size} map, a fresh process:")
        for min_pixels in (0, 1000):
            polygons, seconds, rss = run(VECTORIZE, tmp / f"b{size}.tif", tmp / "v.gpkg", min_pixels)
            print(f"  --min-pixels {min_pixels:<5} {int(polygons):>9,} polygons {float(seconds):>7.1f} s  "
                  f"peak RSS {float(rss):7.1f} MB")


if __name__ == "__main__":
    main()
