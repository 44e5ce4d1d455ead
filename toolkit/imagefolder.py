"""Labelled image folders `DIR/<class>/*`: jpg/png photos and single- or multi-band GeoTIFF chips."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .errors import LutError
from .radiometry import BandRule, default_bands, rule_for_dtype

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}
RASTER_SUFFIXES = {".tif", ".tiff"}
IMAGE_SUFFIXES = PHOTO_SUFFIXES | RASTER_SUFFIXES


def list_images(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def scan_folder(root: Path) -> tuple[list[str], list[Path], np.ndarray]:
    """Class names (sorted folder names), files and integer labels of a labelled folder."""
    root = Path(root)
    if not root.is_dir():
        raise LutError(f"data directory {root} does not exist")
    classes, files, labels = [], [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = list_images(sub)
        if not images:
            continue
        classes.append(sub.name)
        files.extend(images)
        labels.extend([len(classes) - 1] * len(images))
    if not files:
        raise LutError(f"no images found in {root} (expected {root}/<class>/*.jpg|png|tif)")
    if len(classes) < 2:
        raise LutError(f"{root} holds a single class ({classes[0]}); a classifier needs at least two")
    return classes, files, np.asarray(labels, dtype=np.int64)


def read_raster_chip(path: Path, bands: tuple[int, ...] | None) -> tuple[np.ndarray, np.dtype, tuple[int, ...]]:
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # chips without georeferencing are fine here
        with rasterio.open(path) as src:
            chosen = default_bands(src.count, bands, str(path))
            return src.read(list(chosen)), np.dtype(src.dtypes[0]), chosen


def read_photo(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB")).transpose(2, 0, 1)


def resize_chw(image: np.ndarray, size: int) -> np.ndarray:
    """Resize (C, H, W) float32 to (C, size, size) with antialiasing."""
    if image.shape[1] == size and image.shape[2] == size:
        return image
    t = torch.from_numpy(np.ascontiguousarray(image))[None]
    return F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0].numpy()


def load_image_file(path: Path, image_size: int, bands: tuple[int, ...] | None = None,
                    rule: BandRule | None = None) -> np.ndarray:
    """Any supported image as (3, S, S) float32 in [0, 1]; rasters use `rule` or their dtype's default."""
    try:
        if path.suffix.lower() in RASTER_SUFFIXES:
            raw, dtype, chosen = read_raster_chip(path, bands)
            image = (rule or rule_for_dtype(dtype, chosen)).apply(raw)
        else:
            image = read_photo(path).astype(np.float32) / 255.0
    except LutError:
        raise
    except Exception as exc:
        raise LutError(f"cannot read image {path}: {exc}") from None
    return resize_chw(image, image_size)


def find_images(root: Path) -> list[Path]:
    """Every image below `root`, labelled layout or flat; labels are ignored."""
    root = Path(root)
    if not root.is_dir():
        raise LutError(f"image directory {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise LutError(f"no images found in {root} (jpg, png or tif)")
    return files


class ImageFolderSource:
    """A labelled folder; GeoTIFF chips are scaled by the rule recorded for their pixel type."""

    def __init__(self, root: Path, image_size: int, bands: tuple[int, ...] | None = None, verify: bool = True) -> None:
        self.root = Path(root)
        self.classes, self.files, self.labels = scan_folder(self.root)
        self.image_size = image_size
        self.bands = bands
        self.rule = self._probe_rule()
        if verify:
            self._verify()

    def _probe_rule(self) -> BandRule:
        rasters = [f for f in self.files if f.suffix.lower() in RASTER_SUFFIXES]
        if not rasters:
            return BandRule((1, 2, 3), (0.0,) * 3, (255.0,) * 3, "uint8: value / 255")
        try:
            _, dtype, chosen = read_raster_chip(rasters[0], self.bands)
        except LutError:
            raise
        except Exception as exc:  # rasterio's own errors become one line
            raise LutError(f"cannot read image {rasters[0]}: {exc}") from None
        return rule_for_dtype(dtype, chosen)

    def _verify(self) -> None:
        for f in self.files:
            if f.suffix.lower() in PHOTO_SUFFIXES:
                try:
                    with Image.open(f) as img:
                        img.verify()
                except (UnidentifiedImageError, OSError, SyntaxError) as exc:
                    raise LutError(f"cannot read image {f}: {exc}") from None

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> np.ndarray:
        """(3, S, S) float32 in [0, 1]."""
        return load_image_file(self.files[index], self.image_size, self.bands, self.rule)

    def describe(self) -> dict:
        return {"kind": "folder", "path": str(self.root.resolve()), "images": len(self.files)}
