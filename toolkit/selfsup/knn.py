"""k-NN accuracy of frozen features on a labelled folder: the cheap collapse detector for pretraining."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lut.toolkit.data.datasets import PatchDataset, stratified_split
from lut.toolkit.data.imagefolder import ImageFolderSource, check_directory


class KnnMonitor:
    """Loads a labelled folder once (train split = memory bank, val split = queries) and scores a backbone."""

    def __init__(self, folder: Path, image_size: int, mean: list[float], std: list[float], seed: int = 0,
                 max_images: int = 1000, k: int = 20) -> None:
        check_directory(Path(folder), "`monitor` folder")  # named as the option it came from
        source = ImageFolderSource(Path(folder), image_size)
        splits = stratified_split(source.labels, seed)
        rng = np.random.default_rng(seed)
        bank = rng.permutation(splits.train)[: max_images * 2 // 3]
        queries = rng.permutation(splits.val)[: max_images // 3]
        self.k = k
        self.bank = self._load(PatchDataset(source, bank, mean, std))
        self.queries = self._load(PatchDataset(source, queries, mean, std))

    @staticmethod
    def _load(dataset: PatchDataset) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
        return torch.stack(xs), torch.tensor(ys)

    @torch.no_grad()
    def features(self, backbone, images: torch.Tensor, device: torch.device, batch_size: int = 64) -> torch.Tensor:
        out = [backbone(pixel_values=images[i:i + batch_size].to(device), interpolate_pos_encoding=True)
               .last_hidden_state[:, 0].cpu() for i in range(0, len(images), batch_size)]
        return torch.cat(out)

    @torch.no_grad()
    def accuracy(self, backbone, device: torch.device) -> float:
        """Weighted k-NN (cosine similarity, temperature 0.07) as in the DINO paper."""
        was_training = backbone.training
        backbone.eval()
        bank = self.features(backbone, self.bank[0], device)
        query = self.features(backbone, self.queries[0], device)
        backbone.train(was_training)
        # CLS features share a large common offset; cosine similarity sees the differences only once it is removed
        centre = bank.mean(0)
        bank, query = F.normalize(bank - centre, dim=1), F.normalize(query - centre, dim=1)
        sims, idx = (query @ bank.T).topk(min(self.k, len(bank)), dim=1)
        votes = torch.zeros(len(query), int(self.bank[1].max()) + 1)
        votes.scatter_add_(1, self.bank[1][idx], (sims / 0.07).exp())
        return float((votes.argmax(1) == self.queries[1]).float().mean())
