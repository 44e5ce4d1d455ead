"""What the student and teacher see: multi-crop views of unlabelled windows, batched per rank."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from lut.toolkit.core.errors import InputError
from lut.toolkit.data.unlabelled import Item, Pool, epoch_items, load_item
from lut.toolkit.vit.backbones import check_image_size

from .config import PretrainConfig


class ViewsDataset(torch.utils.data.Dataset):
    def __init__(self, pool: Pool, items: list[Item], image_size: int, transform) -> None:
        self.pool, self.items, self.image_size, self.transform = pool, items, image_size, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> list[torch.Tensor]:
        image = load_item(self.pool, self.items[i], self.image_size)
        pil = Image.fromarray((image.transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8))
        return self.transform(pil)


def collate_views(batch: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    return [torch.stack(v) for v in zip(*batch)]


def make_transform(cfg: PretrainConfig, local_size: int, mean: list[float], std: list[float]):
    from lightly.transforms.dino_transform import DINOTransform

    # nadir imagery has no up or down: vertical flips and 90-degree rotations are label-preserving
    return DINOTransform(global_crop_size=cfg.image_size, local_crop_size=local_size, n_local_views=cfg.local_views,
                         hf_prob=0.5, vf_prob=0.5, rr_prob=0.5, cj_prob=0.8 if cfg.colour_jitter > 0 else 0.0,
                         cj_strength=cfg.colour_jitter, random_gray_scale=cfg.grayscale,
                         solarization_prob=cfg.solarize, normalize={"mean": mean, "std": std})


def local_crop_size(cfg: PretrainConfig, patch: int) -> int:
    size = cfg.local_size or max(patch, int(round(cfg.image_size * 96 / 224 / patch)) * patch)
    if size > cfg.image_size:
        raise InputError(f"`local_size` {size} is larger than the global crop `image_size` {cfg.image_size}")
    check_image_size(size, patch)
    return size


def epoch_loader(cfg: PretrainConfig, pool: Pool, transform, epoch: int, fabric):
    """This rank's share of the epoch's windows: a DistributedSampler (set to the epoch) over the same item
    list on every rank, batches of batch_size / ranks, the same number of them on every rank."""
    items = epoch_items(pool, cfg.windows_per_scene, cfg.image_size, cfg.seed, epoch)
    dataset = ViewsDataset(pool, items, cfg.image_size, transform)
    sampler = torch.utils.data.distributed.DistributedSampler(
        dataset, num_replicas=fabric.world_size, rank=fabric.global_rank, shuffle=True, seed=cfg.seed * 1000)
    sampler.set_epoch(epoch)
    local = cfg.batch_size // fabric.world_size
    rank_seed = (cfg.seed * 1000 + epoch) * 10 * fabric.world_size + fabric.global_rank * 10
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=local, sampler=sampler, drop_last=len(items) > cfg.batch_size,
        collate_fn=collate_views, num_workers=cfg.workers, worker_init_fn=lambda w: torch.manual_seed(rank_seed + w))
    return items, loader
