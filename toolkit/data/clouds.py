"""Synthetic clouds and their shadows for the demo and the cloud benchmark: soft blobs of bright grey over a
scene, each with a darkened copy offset as its shadow, and a Sentinel-2 SCL-style layer saying where they are
(9 cloud high probability, 3 cloud shadow, 4 clear), so masks can be tested against known clouds."""

from __future__ import annotations

import numpy as np

from .synthetic import smooth_noise

SCL_CLEAR, SCL_SHADOW, SCL_CLOUD = 4, 3, 9


def cloud_field(rng: np.random.Generator, h: int, w: int, cover: float = 0.15, cells: float = 6.0) -> np.ndarray:
    """(h, w) bool: about `cover` of the area in soft-edged blobs (thresholded smooth noise)."""
    noise = smooth_noise(rng, h, w, cells)
    return noise > np.quantile(noise, 1.0 - cover)


def add_clouds(image: np.ndarray, clouds: np.ndarray, rng: np.random.Generator,
               shadow_offset: tuple[int, int] = (12, 12)) -> np.ndarray:
    """Paint `clouds` (h, w) onto an (h, w, 3) uint8 image, with shadows offset by `shadow_offset`; returns
    the SCL-style layer (uint8) of the painted clouds and shadows."""
    dy, dx = shadow_offset
    shadow = np.zeros_like(clouds)
    shadow[dy:, dx:] = clouds[:-dy or None, :-dx or None]
    shadow &= ~clouds
    image[shadow] = (image[shadow] * 0.45).astype(np.uint8)
    texture = rng.integers(225, 256, (int(clouds.sum()), 1))
    image[clouds] = np.clip(texture + rng.integers(-6, 7, (int(clouds.sum()), 3)), 1, 255).astype(np.uint8)
    scl = np.full(clouds.shape, SCL_CLEAR, np.uint8)
    scl[shadow] = SCL_SHADOW
    scl[clouds] = SCL_CLOUD
    return scl
