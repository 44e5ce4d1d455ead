"""Training augmentation for nadir patches, drawn from (seed, epoch, index) so runs repeat.

Always: one of the 8 flips/90-degree rotations (nadir imagery has no up). Optional: a random resized
crop (`crop_scale` < 1: the crop keeps that fraction of the area or more) and a mild colour jitter
(`colour` > 0: brightness, contrast and saturation each scaled by 1 +- colour). Colour carries much of the
land-cover signal, so the jitter is off unless asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from lut.toolkit.core.errors import InputError

GRAY = torch.tensor([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class AugmentConfig:
    crop_scale: float = 1.0  # smallest area fraction a random resized crop keeps; 1 = no crop
    colour: float = 0.0  # jitter strength; 0 = off

    def check(self) -> None:
        if not 0.05 <= self.crop_scale <= 1:
            raise InputError(f"`crop_scale` must be in [0.05, 1], got {self.crop_scale}")
        if not 0 <= self.colour < 1:
            raise InputError(f"`colour_jitter` must be in [0, 1), got {self.colour}")


def dihedral(image: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 flips/90-degree rotations: the augmentations that fit nadir imagery."""
    if k >= 4:
        image = torch.flip(image, dims=(-1,))
    return torch.rot90(image, k % 4, dims=(-2, -1))


def resized_crop(image: torch.Tensor, min_scale: float, rng: np.random.Generator) -> torch.Tensor:
    """A crop of area fraction in [min_scale, 1] and aspect ratio in [3/4, 4/3], resized back (bilinear)."""
    h, w = image.shape[-2:]
    scale = rng.uniform(min_scale, 1.0)
    ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
    ch = min(h, max(1, round(h * math.sqrt(scale / ratio))))
    cw = min(w, max(1, round(w * math.sqrt(scale * ratio))))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = image[..., y0:y0 + ch, x0:x0 + cw]
    return F.interpolate(crop[None], size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]


def colour_jitter(image: torch.Tensor, strength: float, rng: np.random.Generator) -> torch.Tensor:
    """Brightness, contrast and saturation, each by a factor in [1 - strength, 1 + strength], on [0, 1] RGB."""
    b, c, s = (1 + rng.uniform(-strength, strength, 3)).tolist()
    image = image * b
    gray = (GRAY.to(image)[:, None, None] * image[:3]).sum(0, keepdim=True)
    image = (image - gray.mean()) * c + gray.mean()
    gray = (GRAY.to(image)[:, None, None] * image[:3]).sum(0, keepdim=True)
    return ((image - gray) * s + gray).clamp(0, 1)


def augment(image: torch.Tensor, cfg: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
    image = dihedral(image, int(rng.integers(8)))
    if cfg.crop_scale < 1:
        image = resized_crop(image, cfg.crop_scale, rng)
    if cfg.colour > 0 and image.shape[0] == 3:
        image = colour_jitter(image, cfg.colour, rng)
    return image
