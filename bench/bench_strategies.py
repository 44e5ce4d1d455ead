"""Training time of each strategy in lut's loop vs a plain loop that runs the full model every epoch.

The plain loop is the study's reference: every parameter requires grad, the whole network runs forward
and backward each batch, and only the optimizer knows which parameters are meant to train (progressive
rebuilds it each epoch). lut's loop runs the frozen prefix without autograd and, for strategies whose
frozen part never changes (linear_probe, last_block), computes it once and trains on cached features.
Ratios are measured in one run: python bench/bench_strategies.py [--spec vit-small --size 96 ...]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from torch import nn

from lut.toolkit.vit.backbones import load_classifier
from lut.toolkit.data.datasets import PatchDataset, open_source
from lut.toolkit.vit.staged import StagedViT
from lut.toolkit.train.strategies import STRATEGIES, StrategyConfig, make_plan
from lut.toolkit.train.steps import CosineSchedule
from lut.toolkit.train.config import TrainConfig
from lut.toolkit.train.trainer import Trainer


def plain_loop(model: nn.Module, plan, train: PatchDataset, epochs: int, batch_size: int) -> float:
    staged = StagedViT(model)
    loader = torch.utils.data.DataLoader(train, batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        cut = plan.cuts[epoch]
        groups = [{"params": list(model.classifier.parameters()), "lr": plan.head_lr, "base_lr": plan.head_lr}]
        for stage in range(cut, staged.num_stages):
            rate = plan.stage_lr[stage]
            groups.append({"params": list(staged.stage_modules(stage).parameters()), "lr": rate, "base_lr": rate})
        optimizer = torch.optim.AdamW(groups, weight_decay=0.01)  # rebuilt every epoch, as in the reference
        schedule = CosineSchedule(optimizer, math.ceil(len(train) / batch_size) * epochs)
        model.train()
        for x, y in loader:
            loss = loss_fn(model(pixel_values=x).logits, y)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
            optimizer.step()
            schedule.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="vit-small")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--unfreeze-every", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    source = open_source("synthetic", args.size, synthetic_images=args.images, seed=0)
    n_train = int(0.8 * args.images)
    train = PatchDataset(source, np.arange(n_train), [0.5] * 3, [0.5] * 3, augment=True)
    val = PatchDataset(source, np.arange(n_train, args.images), [0.5] * 3, [0.5] * 3)
    print(f"{args.spec} at {args.size} px, {n_train} train images, {args.epochs} epochs, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'strategy':<16} {'plain s':>8} {'lut s':>8} {'lut no-cache s':>15} {'speed-up':>9} {'no-cache':>9}")
    for name in STRATEGIES:
        times = {}
        for variant in ("plain", "lut", "nocache"):
            model, _, info = load_classifier(args.spec, list(source.classes), args.size)
            plan = make_plan(StrategyConfig(name, unfreeze_every=args.unfreeze_every), info.num_layers, args.epochs)
            if variant == "plain":
                times[variant] = plain_loop(model, plan, train, args.epochs, args.batch_size)
            else:
                cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, progress=False,
                                  cache_features=variant == "lut")
                times[variant] = Trainer(model, plan, cfg).fit(train, val).train_seconds
        print(f"{name:<16} {times['plain']:>8.1f} {times['lut']:>8.1f} {times['nocache']:>15.1f} "
              f"{times['plain'] / times['lut']:>8.2f}x {times['plain'] / times['nocache']:>8.2f}x", flush=True)
    print("note: lut times include validation every epoch; the plain loop does no validation at all")


if __name__ == "__main__":
    main()
