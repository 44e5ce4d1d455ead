"""Imagery as users get it: bytes fetched for remote scenes, and the false change clouds make.

    python bench/bench_imagery.py [--model models/demo-progressive]   (run `make demo` first for the model)

1. Remote reads. The real Sentinel-2 scene (../shared/data/scenes, 1933 x 1947, 4 bands uint16) is written as
   a COG and served by a range-capable HTTP server on 127.0.0.1. Measured: bytes and requests for mapping the
   whole scene over /vsicurl/ against the file's size, for reading one 256 x 256 window, the map's bytes
   against the local run's, and the wall time of the remote run over the local one (same run, so the ratio
   holds on a noisy machine).
2. False change from clouds. The same scene (no real change) at three "dates": clear, and twice with
   different synthetic clouds and shadows (SCL-style masks, 15% cover). Measured: the share of compared
   pixels whose class changed (all of it is false) and the share of the scene compared, for the two cloudy
   dates without masks, with masks (dilated 2 px), and for their composite against the clear date; and the
   size `--probabilities` adds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / ".." / "shared" / "data" / "scenes" / "s2_l1c_assateague_b2-b3-b4-b8.tif"
sys.path.insert(0, str(ROOT))


def write_cog(src_path: Path, target: Path, bands=(3, 2, 1), clouds=None, rng=None) -> Path | None:
    """The scene's red, green, blue as a COG (512 px blocks, overviews); with `clouds`, painted with clouds and
    shadows, and their SCL-style layer written beside it (returned)."""
    import rasterio

    from lut.toolkit.data.clouds import add_clouds

    with rasterio.open(src_path) as src:
        data = src.read(list(bands))
        profile = {"driver": "COG", "width": src.width, "height": src.height, "count": 3, "dtype": "uint16",
                   "crs": src.crs, "transform": src.transform, "blocksize": 512, "compress": "deflate"}
    scl_path = None
    if clouds is not None:
        as8 = np.clip(data.astype(np.float32) / 3000 * 255, 1, 255).astype(np.uint8).transpose(1, 2, 0).copy()
        scl = add_clouds(as8, clouds, rng, (24, 24))
        cloud, shadow = scl == 9, scl == 3
        data[:, cloud] = (as8[cloud].T.astype(np.float32) / 255 * 7000 + 1000).astype(np.uint16)
        data[:, shadow] = (data[:, shadow] * 0.45).astype(np.uint16)
        scl_path = target.with_name(target.stem + "_SCL.tif")
        with rasterio.open(scl_path, "w", **{**profile, "count": 1, "dtype": "uint8"}) as dst:
            dst.write(scl, 1)
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(data)
    return scl_path


def remote_reads(model: Path, tmp: Path) -> None:
    import rasterio
    from rasterio.windows import Window

    from lut.tiling.classify import ClassifyConfig, classify_scene
    from tests.range_server import serve

    served = tmp / "served"
    served.mkdir()
    write_cog(SCENE, served / "scene.tif")
    os.link(served / "scene.tif", served / "window.tif")  # a second URL: GDAL caches by URL
    size = (served / "scene.tif").stat().st_size
    cfg = ClassifyConfig(scene=served / "scene.tif", output=tmp / "local.tif", model=model, progress=False)
    start = time.perf_counter()
    classify_scene(cfg)
    local_s = time.perf_counter() - start
    with serve(served) as (url, counter):
        start = time.perf_counter()
        classify_scene(ClassifyConfig(scene=f"{url}/scene.tif", output=tmp / "remote.tif", model=model, progress=False))
        remote_s = time.perf_counter() - start
        scene_bytes, scene_requests = counter.bytes, counter.requests
        counter.reset()
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(f"/vsicurl/{url}/window.tif") as src:
            src.read(window=Window(700, 700, 256, 256))
        window_bytes, window_requests = counter.bytes, counter.requests
    same = (tmp / "remote.tif").read_bytes() == (tmp / "local.tif").read_bytes()
    print("1. remote reads (COG on a local HTTP server, range requests)")
    print(f"   file {size / 1e6:.1f} MB; whole-scene map fetched {scene_bytes / 1e6:.1f} MB in {scene_requests} "
          f"requests ({scene_bytes / size:.2f} of the file)")
    print(f"   one 256 x 256 window fetched {window_bytes / 1e3:.0f} kB in {window_requests} requests "
          f"({window_bytes / size:.4f} of the file)")
    print(f"   remote map byte-identical to the local map: {same}; wall time remote/local {remote_s / local_s:.2f} "
          f"({remote_s:.1f} s / {local_s:.1f} s)")


def false_change(model: Path, tmp: Path) -> None:
    from lut.tiling.classify import ClassifyConfig, classify_scene
    from lut.tiling.composite import CompositeConfig, composite
    from lut.toolkit.data.clouds import cloud_field
    from lut.toolkit.gis.change import ChangeConfig, compute_change

    clear = tmp / "clear.tif"
    write_cog(SCENE, clear)
    with __import__("rasterio").open(clear) as src:
        h, w = src.height, src.width
    dates = []
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        path = tmp / f"cloudy{seed}.tif"
        dates.append((path, write_cog(SCENE, path, clouds=cloud_field(rng, h, w, cover=0.15, cells=8), rng=rng)))

    def classify(scene, name, **kw):
        out = tmp / f"{name}.tif"
        classify_scene(ClassifyConfig(scene=scene, output=out, model=model, progress=False, confidence=True, **kw))
        return out

    def changed(a, b, name):
        t = compute_change(ChangeConfig(a, b, tmp / f"{name}.change.tif")).transitions
        return 100.0 * t.changed_pixels() / max(t.total, 1), 100.0 * t.total / (h * w)

    ref = classify(clear, "ref")
    plain = [classify(p, f"plain{i}") for i, (p, _) in enumerate(dates)]
    masked = [classify(p, f"masked{i}", mask=m, mask_dilate=2, probabilities=True) for i, (p, m) in enumerate(dates)]
    composite(CompositeConfig([masked[0], masked[1]], tmp / "composite.tif"))
    rows = [("two cloudy dates, no mask", *changed(plain[0], plain[1], "a")),
            ("two cloudy dates, masked (dilate 2)", *changed(masked[0], masked[1], "b")),
            ("cloudy date vs clear, no mask", *changed(ref, plain[0], "c")),
            ("cloudy date vs clear, masked", *changed(ref, masked[0], "d")),
            ("composite of both vs clear", *changed(ref, tmp / "composite.tif", "e"))]
    mapped = tmp / "masked0.tif"
    probs = mapped.with_suffix(".probabilities.tif")
    print(f"   --probabilities: {probs.stat().st_size / 1e6:.2f} MB beside a {mapped.stat().st_size / 1e6:.2f} MB map "
          f"(class + confidence) of {h * w / 1e6:.2f} Mpx, deflate")
    print("2. false change from clouds (no real change; Sentinel-2 scene, 15% synthetic cloud + shadow per date)")
    print(f"   {'comparison':<38} {'false change %':>14} {'scene compared %':>17}")
    for name, false, compared in rows:
        print(f"   {name:<38} {false:>14.2f} {compared:>17.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "demo-progressive")
    args = parser.parse_args()
    if not SCENE.is_file() or not (args.model / "onnx").is_dir():
        sys.exit("needs ../shared/data/scenes and an exported model (run `make demo` first)")
    tmp = Path(tempfile.mkdtemp(prefix="lut-bench-imagery-"))
    try:
        remote_reads(args.model, tmp)
        false_change(args.model, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
