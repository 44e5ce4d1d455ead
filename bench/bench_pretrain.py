"""DINO pretraining speed: float32 vs bfloat16 autocast (`lut pretrain --precision`), measured in one run.

Both runs are the real `pretrain()` (data loading, multi-crop, student and EMA teacher, lightly's loss)
on the same synthetic image folder; each precision runs twice, alternating, and the faster run counts.
bfloat16 only pays off on hardware with bf16 units (AVX512-BF16/AMX CPUs, Ampere+ GPUs).
    python bench/bench_pretrain.py [--spec vit-tiny --size 112 --images 256]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from pathlib import Path

import torch

from lut.toolkit.selfsup.dino import PretrainConfig, pretrain
from lut.toolkit.train.distributed import DistConfig, native_bfloat16

from common import write_image_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="vit-tiny")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not native_bfloat16(device.type):
        print(f"this {device.type} has no native bfloat16; nothing to compare")
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_image_folder(Path(tmp) / "images", args.images, args.size)
        seconds: dict[str, list[float]] = {"fp32": [], "bf16-mixed": []}
        for _ in range(2):
            for precision in seconds:
                cfg = PretrainConfig(sources=[str(folder)], backbone=args.spec, image_size=args.size, epochs=1,
                                     batch_size=args.batch_size, split_guard=False,
                                     dist=DistConfig(precision=precision),
                                     output=Path(tmp) / f"out-{precision}", overwrite=True, progress=False)
                with contextlib.redirect_stdout(io.StringIO()):  # pretrain's per-epoch JSON lines
                    seconds[precision].append(pretrain(cfg).seconds)
    fp32, bf16 = min(seconds["fp32"]), min(seconds["bf16-mixed"])
    print(f"{args.spec} at {args.size} px, {args.images} images, batch {args.batch_size}, 2 global + 6 local crops, "
          f"{device.type}, {torch.get_num_threads()} threads")
    print(f"fp32 {fp32:.1f} s/epoch ({args.images / fp32:.1f} img/s), bf16 {bf16:.1f} s/epoch "
          f"({args.images / bf16:.1f} img/s): bf16 is {fp32 / bf16:.2f}x faster")


if __name__ == "__main__":
    main()
