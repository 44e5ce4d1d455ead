"""ONNX Runtime's session options for lut classify, chosen by measurement on this machine.

    python bench/bench_session.py [--models vit-tiny,vit-base --size 2048 --rounds 2]

For each model (random-init ViT, exported fp32 + INT8) and precision, lut classify streams the same uint8
scene with each configuration in turn (rounds interleave them, so all see the same machine; best of the
rounds), and prints patches/s relative to lut's defaults:
  spinning on/off (intra-op threads busy-wait between operators or sleep),
  graph optimisation basic / extended / all,
  threads: every physical core, or one fewer (leaving one to the reader and writer threads).
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

from common import exported_random_bundle, write_uint8_scene

from lut.export.runtime import SessionOptions
from lut.toolkit.core.machine import cpu_cores


def configurations() -> dict[str, SessionOptions]:
    cores = cpu_cores()
    default = SessionOptions()
    configs = {"default (spinning, all, every core)": default,
               "no spinning": replace(default, spinning=False),
               "optimisation extended": replace(default, optimization="extended"),
               "optimisation basic": replace(default, optimization="basic")}
    if cores > 1:
        configs[f"{cores - 1} thread(s), spinning"] = replace(default, threads=cores - 1)
        configs[f"{cores - 1} thread(s), no spinning"] = replace(default, threads=cores - 1, spinning=False)
    return configs


def measure(bundle: Path, precision: str, scene: Path, out: Path, rounds: int) -> dict[str, float]:
    from lut.tiling.classify import ClassifyConfig, classify_scene
    from lut.tiling.deployed import load_deployed

    models = {name: load_deployed(bundle, precision, "cpu", options=o) for name, o in configurations().items()}
    cfg = ClassifyConfig(scene=scene, output=out, model=bundle, precision=precision, progress=False, overwrite=True)
    best = dict.fromkeys(models, 0.0)
    for _ in range(rounds):
        for name, model in models.items():
            model.prepare(uint8=True)  # built before the timed loop, as in a run
            result = classify_scene(cfg, model=model)
            best[name] = max(best[name], result.patches_per_second)
            model._session = model._kind = None  # one model's weights in memory at a time
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="vit-tiny,vit-base")
    parser.add_argument("--precisions", default="fp32,int8")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "lut-bench-models")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        scene = write_uint8_scene(Path(tmp) / "scene.tif", args.size)
        print(f"lut classify, {args.size}² uint8 scene, {cpu_cores()} physical cores, best of {args.rounds} "
              "interleaved rounds; patches/s and the ratio to lut's defaults")
        for spec in args.models.split(","):
            bundle = exported_random_bundle(args.cache, spec)
            for precision in args.precisions.split(","):
                best = measure(bundle, precision, scene, Path(tmp) / "map.tif", args.rounds)
                base = next(iter(best.values()))
                print(f"{spec} {precision}:")
                for name, rate in best.items():
                    print(f"  {name:<38} {rate:8.1f} patches/s  {rate / base:5.3f}x")


if __name__ == "__main__":
    main()
