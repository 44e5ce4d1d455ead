"""Training throughput on 1 vs N ranks (Lightning Fabric DDP), and bf16-mixed vs fp32 where a GPU runs it.

Each configuration trains the same global batch on the same data inside lut's own launch (spawned ranks,
gloo on CPU, NCCL on GPUs); images/s counts training images over the time of `fit` (caches, training and
the per-epoch validation), so start-up (spawning, imports, data) is left out. Ratios come from one run:

    python bench/bench_ddp.py [--spec vit-tiny --size 64 --images 1200 --epochs 2 --ranks 2]

On a CPU, N ranks split the cores (each rank gets cores / N threads): the ratio says what DDP's
gradient all-reduce and the smaller per-rank batches cost or gain there. On GPUs each rank has its own.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch

from lut.toolkit.selfsup.dino import PretrainConfig, pretrain
from lut.toolkit.train.distributed import DistConfig, launch, native_bfloat16
from lut.toolkit.train.finetune import FinetuneConfig, run_finetune
from lut.toolkit.train.strategies import StrategyConfig
from lut.toolkit.train.config import TrainConfig

from common import write_image_folder


def _finetune_rank(fabric, cfg: FinetuneConfig) -> dict:
    metrics = run_finetune(cfg, fabric).metrics
    return {"seconds": metrics["train_seconds"], "accuracy": metrics["accuracy"], "train": metrics["train_labels"]}


def finetune_rate(args, dist: DistConfig, strategy: str) -> dict:
    cfg = FinetuneConfig(data="synthetic", synthetic_images=args.images, image_size=args.size, backbone=args.spec,
                         strategy=StrategyConfig(strategy),
                         train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, progress=False), dist=dist)
    out = launch(dist, _finetune_rank, cfg)
    out["images_per_s"] = out["train"] * args.epochs / out["seconds"]
    return out


def dino_rate(args, dist: DistConfig, folder: Path, tmp: Path) -> dict:
    cfg = PretrainConfig(sources=[str(folder)], backbone=args.spec, image_size=args.size, epochs=args.epochs,
                         batch_size=args.batch_size, local_views=2, out_dim=1024, split_guard=False,
                         output=tmp / f"dino-{dist.devices}-{dist.precision}", overwrite=True, progress=False,
                         dist=dist)
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # pretrain's per-epoch JSON lines
        result = pretrain(cfg)
    images = sum(h["images"] for h in result.history)
    return {"seconds": result.seconds, "images_per_s": images / result.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="vit-tiny")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=1200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--strategies", default="full_ft,linear_probe")
    args = parser.parse_args()
    accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    ranks = min(args.ranks, torch.cuda.device_count()) if accelerator == "gpu" else args.ranks
    print(f"{args.spec} at {args.size} px, {args.images} synthetic images, global batch {args.batch_size}, "
          f"{args.epochs} epochs, {accelerator}, {os.cpu_count()} cores")
    rows = []
    for strategy in args.strategies.split(","):
        one = finetune_rate(args, DistConfig(accelerator=accelerator), strategy)
        many = finetune_rate(args, DistConfig(devices=ranks, accelerator=accelerator), strategy)
        rows.append({"what": f"finetune {strategy}", "one": one, "many": many})
    names = ("1 rank", f"{ranks} ranks")
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_image_folder(Path(tmp) / "images", args.images // 2, args.size)
        one = dino_rate(args, DistConfig(accelerator=accelerator, precision="fp32"), folder, Path(tmp))
        many = dino_rate(args, DistConfig(devices=ranks, accelerator=accelerator, precision="fp32"), folder,
                         Path(tmp))
        rows.append({"what": "pretrain dino", "one": one, "many": many})
        if accelerator == "gpu" and native_bfloat16("cuda"):
            bf16 = dino_rate(args, DistConfig(accelerator="gpu", precision="bf16-mixed"), folder, Path(tmp))
            rows.append({"what": "pretrain dino, 1 GPU", "one": one, "many": bf16, "names": ("fp32", "bf16-mixed")})
            ft = finetune_rate(args, DistConfig(accelerator="gpu", precision="bf16-mixed"), "full_ft")
            rows.append({"what": "finetune full_ft, 1 GPU", "one": rows[0]["one"], "many": ft,
                         "names": ("fp32", "bf16-mixed")})
    for row in rows:
        one, many = row["one"], row["many"]
        extra = "".join(f", accuracy {r['accuracy']:.3f}" for r in (one, many) if "accuracy" in r)
        a, b = row.get("names", names)
        print(f"{row['what']:<26} {a} {one['images_per_s']:7.1f} img/s | {b} {many['images_per_s']:7.1f} img/s | "
              f"ratio {many['images_per_s'] / one['images_per_s']:.2f}x{extra}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
