"""The embedded default data set: six land-use classes drawn from their spectral and spatial signatures.

Every image is generated from (seed, index) alone, so a data set of 8,000 patches costs O(batch)
memory, is identical on every machine and needs no download. The renderers also paint the regions
of the demo's synthetic scene, which is why they take any (height, width).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from lut.toolkit.core.classes import CLASSES
from lut.toolkit.core.radiometry import Encoding, default_rule

SYNTHETIC_GSD_M = 10.0

Renderer = Callable[[np.random.Generator, int, int], np.ndarray]


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: float) -> np.ndarray:
    """Value noise in [0, 1] with about `cells` features across the larger side."""
    gh = max(2, int(round(cells * h / max(h, w))) + 1)
    gw = max(2, int(round(cells * w / max(h, w))) + 1)
    grid = rng.random((gh, gw), dtype=np.float32)
    img = Image.fromarray(grid, mode="F").resize((w, h), Image.Resampling.BICUBIC)
    out = np.asarray(img, dtype=np.float32)
    lo, hi = out.min(), out.max()
    return (out - lo) / max(hi - lo, 1e-6)


def _tint(base: tuple[float, float, float], rng: np.random.Generator, spread: float) -> np.ndarray:
    return np.clip(np.asarray(base, np.float32) + rng.normal(0, spread, 3).astype(np.float32), 0, 1)


def _forest(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    colour = _tint((0.12, 0.32, 0.13), rng, 0.04)
    crowns = smooth_noise(rng, h, w, max(h, w) / rng.uniform(4, 7))
    stand = smooth_noise(rng, h, w, rng.uniform(2, 4))
    shade = 0.55 + 0.6 * crowns * (0.6 + 0.4 * stand)
    return colour[None, None, :] * shade[..., None]


def _cropland(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    img = np.empty((h, w, 3), np.float32)
    n_cols, n_rows = rng.integers(2, 5), rng.integers(2, 5)
    xs = np.sort(np.concatenate([[0, w], rng.integers(w // 8, w - w // 8, n_cols - 1)]))
    ys = np.sort(np.concatenate([[0, h], rng.integers(h // 8, h - h // 8, n_rows - 1)]))
    palette = [(0.35, 0.55, 0.20), (0.75, 0.68, 0.35), (0.55, 0.42, 0.28), (0.45, 0.62, 0.25), (0.80, 0.75, 0.50)]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for r in range(len(ys) - 1):
        for c in range(len(xs) - 1):
            colour = _tint(palette[rng.integers(len(palette))], rng, 0.04)
            period = rng.uniform(3, 7)
            rows = yy if rng.random() < 0.5 else xx
            stripes = 0.9 + 0.1 * np.sin(rows[ys[r]:ys[r + 1], xs[c]:xs[c + 1]] * 2 * np.pi / period)
            img[ys[r]:ys[r + 1], xs[c]:xs[c + 1]] = colour * stripes[..., None]
    for x in xs[1:-1]:
        img[:, max(x - 1, 0):x + 1] *= 0.7
    for y in ys[1:-1]:
        img[max(y - 1, 0):y + 1, :] *= 0.7
    return img


def _urban(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    grey = rng.uniform(0.40, 0.55)
    img = np.full((h, w, 3), grey, np.float32) * _tint((1.0, 0.98, 0.95), rng, 0.03)
    size = max(h, w)
    for _ in range(int(rng.integers(8, 20) * (h * w) / (64 * 64)) + 4):
        bh, bw = rng.integers(max(2, size // 20), max(3, size // 6), 2)
        y, x = rng.integers(0, h), rng.integers(0, w)
        roof = rng.choice([0.85, 0.25, 0.65]) * _tint((1.0, 0.95, 0.9), rng, 0.05)
        img[y:y + bh, x:x + bw] = roof
    for _ in range(int(rng.integers(1, 3))):
        if rng.random() < 0.5:
            y = rng.integers(0, h)
            img[y:y + max(2, h // 24)] = 0.18
        else:
            x = rng.integers(0, w)
            img[:, x:x + max(2, w // 24)] = 0.18
    return img


def _water(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    colour = _tint((0.06, 0.18, 0.40), rng, 0.03)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / max(h, w)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    ripple = smooth_noise(rng, h, w, 3)
    shade = 0.8 + 0.3 * ramp + 0.08 * ripple
    return colour[None, None, :] * shade[..., None]


def _barren(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    colour = _tint((0.58, 0.45, 0.32), rng, 0.05)
    relief = smooth_noise(rng, h, w, rng.uniform(1.5, 3.5))
    grain = smooth_noise(rng, h, w, max(h, w) / 3)
    shade = 0.75 + 0.35 * relief + 0.06 * grain
    return colour[None, None, :] * shade[..., None]


def _wetland(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    green = _tint((0.22, 0.40, 0.20), rng, 0.04)
    blue = _tint((0.10, 0.24, 0.36), rng, 0.04)
    field = smooth_noise(rng, h, w, rng.uniform(5, 9)) + 0.3 * smooth_noise(rng, h, w, max(h, w) / 5)
    mix = np.clip((field - np.median(field)) * 6 + 0.5, 0, 1)
    texture = 0.85 + 0.25 * smooth_noise(rng, h, w, max(h, w) / 4)
    return (green[None, None, :] * mix[..., None] + blue[None, None, :] * (1 - mix[..., None])) * texture[..., None]


RENDERERS: dict[str, Renderer] = {
    "forest": _forest,
    "cropland": _cropland,
    "urban": _urban,
    "water": _water,
    "barren": _barren,
    "wetland": _wetland,
}


def render(class_index: int, rng: np.random.Generator, h: int, w: int, noise: float = 0.03) -> np.ndarray:
    """One (h, w, 3) uint8 image of a class, with illumination jitter, haze and sensor noise."""
    img = RENDERERS[CLASSES[class_index]](rng, h, w)
    img = img * rng.uniform(0.8, 1.2) + rng.uniform(0.0, 0.08)  # illumination and haze
    img = img + rng.normal(0.0, noise, img.shape).astype(np.float32)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class SyntheticSource:
    """A labelled source whose item i is rendered from (seed, i); labels are balanced."""

    classes: tuple[str, ...] = CLASSES

    def __init__(self, n_images: int, image_size: int, seed: int = 0) -> None:
        if n_images < 2 * len(CLASSES):
            raise ValueError(f"--synthetic-images must be at least {2 * len(CLASSES)}")
        self.n_images = n_images
        self.image_size = image_size
        self.seed = seed
        order = np.random.default_rng([seed, 7919]).permutation(n_images)
        self.labels = (order % len(CLASSES)).astype(np.int64)
        self.rule = default_rule(Encoding("dn", 1 / 255, 0.0, "uint8: value / 255"), (1, 2, 3))
        #: the generator paints classes at the demo scene's scale: 10 m pixels, one chip per window
        self.chip_size_px, self.gsd_m = image_size, SYNTHETIC_GSD_M

    def __len__(self) -> int:
        return self.n_images

    def load(self, index: int) -> np.ndarray:
        """(3, S, S) float32 in [0, 1]."""
        rng = np.random.default_rng([self.seed, int(index)])
        img = render(int(self.labels[index]), rng, self.image_size, self.image_size)
        return img.transpose(2, 0, 1).astype(np.float32) / 255.0

    def describe(self) -> dict:
        return {"kind": "synthetic", "images": self.n_images, "seed": self.seed}
