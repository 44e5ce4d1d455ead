"""Unlabelled imagery for self-supervised pretraining: image folders and random windows of GeoTIFF scenes.

Labelled folders are split exactly like `finetune` splits them (same seed), and only the training split
is used by default, so a later comparison never pretrains on its own validation or test images.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .datasets import stratified_split
from lut.toolkit.core.errors import InputError, LutError
from .imagefolder import PHOTO_SUFFIXES, find_images, load_image_file, scan_folder
from lut.toolkit.core.radiometry import BandRule, default_bands, parse_bands
from lut.toolkit.core.raster import valid_mask
from lut.toolkit.core.resample import resize_chw

RASTER_SCENE_SUFFIXES = {".tif", ".tiff", ".vrt", ".img", ".jp2"}
MIN_VALID_FRACTION = 0.5


@dataclass(frozen=True)
class SourceSpec:
    path: Path
    bands: tuple[int, ...] | None = None

    @classmethod
    def parse(cls, text: str) -> SourceSpec:
        """'PATH' or 'PATH:3,2,1' (bands for that source only)."""
        match = re.match(r"^(.*):(\d+(?:,\d+)*)$", text)
        if match and not Path(text).exists():
            return cls(Path(match.group(1)), parse_bands(match.group(2)))
        return cls(Path(text))


@dataclass
class SceneSource:
    path: Path
    bands: tuple[int, ...]
    rule: BandRule
    width: int
    height: int


@dataclass
class Pool:
    """What pretraining draws from: image files, and scenes to cut `windows_per_scene` windows from per epoch."""

    files: list[Path] = field(default_factory=list)
    file_bands: dict[Path, tuple[int, ...] | None] = field(default_factory=dict)
    scenes: list[SceneSource] = field(default_factory=list)
    guards: list[dict] = field(default_factory=list)
    described: list[dict] = field(default_factory=list)


def _band_count(path: Path, bands: tuple[int, ...] | None) -> int:
    """How many bands lut will read: --bands, else the first three (a 1-band file is refused with a hint)."""
    if bands is not None:
        return len(bands)
    if path.suffix.lower() in PHOTO_SUFFIXES:
        return 3
    import rasterio

    with rasterio.open(path) as src:
        return len(default_bands(src.count, None, str(path)))


def _native_size(path: Path) -> tuple[int, int]:
    if path.suffix.lower() in PHOTO_SUFFIXES:
        with Image.open(path) as img:
            return img.height, img.width
    import rasterio

    with rasterio.open(path) as src:
        return src.height, src.width


def _folder_files(spec: SourceSpec, seed: int, guard: bool, pool: Pool) -> None:
    root = spec.path
    labelled = None
    try:
        labelled = scan_folder(root)
    except LutError:
        labelled = None
    if labelled is not None and guard:
        classes, files, labels = labelled
        train = stratified_split(labels, seed).train
        chosen = [files[i] for i in train]
        pool.guards.append({"folder": str(root.resolve()), "split_seed": seed, "used": "train",
                            "images": len(chosen), "of": len(files), "fractions": [0.6, 0.2, 0.2]})
    else:
        chosen = find_images(root)
    pool.files.extend(chosen)
    pool.file_bands.update({f: spec.bands for f in chosen})
    pool.described.append({"kind": "folder", "path": str(root.resolve()), "images": len(chosen),
                           "labelled_split_guard": labelled is not None and guard})


def _scene(spec: SourceSpec, default: tuple[int, ...] | None, pool: Pool) -> None:
    from lut.toolkit.core.scene import choose_rule, decimated_sample, open_raster, scene_bands

    with open_raster(spec.path) as src:
        bands = scene_bands(src, spec.bands or default, None)
        sample = decimated_sample(src, bands, None)
        if sample.size == 0:
            raise InputError(f"{spec.path} holds no valid pixels (all nodata, NaN or masked): drop it from `data`")
        rule = choose_rule(src, bands, "auto", None, None, sample=sample).rule
        pool.scenes.append(SceneSource(spec.path, bands, rule, src.width, src.height))
    pool.described.append({"kind": "scene", "path": str(spec.path.resolve()), "bands": list(bands),
                           "scaling": rule.description})


def build_pool(sources: list[str], image_size: int, bands: tuple[int, ...] | None, seed: int,
               guard: bool = True) -> Pool:
    """Collect and check the sources: all present, all of one band count (3), images not smaller than the crop."""
    if not sources:
        raise InputError("no `data` sources given")
    pool = Pool()
    counts: dict[str, int] = {}
    for text in sources:
        spec = SourceSpec.parse(text)
        spec = SourceSpec(spec.path, spec.bands or bands)
        if not spec.path.exists():
            raise InputError(f"data source {spec.path} does not exist")
        if spec.path.is_dir():
            _folder_files(spec, seed, guard, pool)
            sample = next((f for f in pool.files[::-1] if f.is_relative_to(spec.path)), None)
            if sample is not None:
                counts[str(spec.path)] = _band_count(sample, spec.bands)
                h, w = _native_size(sample)
                if min(h, w) < image_size:
                    raise InputError(f"the crop size {image_size} px is larger than the images in {spec.path} "
                                   f"({w} x {h} px); pass a smaller `image_size`")
        elif spec.path.suffix.lower() in RASTER_SCENE_SUFFIXES:
            import rasterio

            with rasterio.open(spec.path) as src:
                counts[str(spec.path)] = len(spec.bands) if spec.bands else len(default_bands(src.count, None,
                                                                                                str(spec.path)))
                if min(src.width, src.height) < image_size:
                    raise InputError(f"the crop size {image_size} px is larger than the scene {spec.path} "
                                   f"({src.width} x {src.height} px)")
            _scene(spec, bands, pool)
        else:
            raise InputError(f"data source {spec.path} is neither a folder nor a raster scene")
    if len(set(counts.values())) > 1 or any(c != 3 for c in counts.values()):
        listing = ", ".join(f"{Path(p).name}: {c}" for p, c in counts.items())
        raise InputError(f"sources have different band counts ({listing}); the backbone takes 3: name them with "
                       "`bands` 3,2,1 or per source as PATH:3,2,1")
    if not pool.files and not pool.scenes:
        raise InputError("no images found in the `data` sources")
    return pool


@dataclass(frozen=True)
class Item:
    """A file, or a window (x, y) of scene number `scene`."""

    path: Path | None = None
    scene: int = -1
    x: int = 0
    y: int = 0


def usable_window(data: np.ndarray, valid: np.ndarray) -> bool:
    """Mostly valid pixels, and not blank: a window whose valid pixels are all one value teaches nothing."""
    if valid.mean() < MIN_VALID_FRACTION:
        return False
    values = data[:, valid]
    return bool(np.any(values.max(axis=1) > values.min(axis=1)))


def epoch_items(pool: Pool, windows_per_scene: int, image_size: int, seed: int, epoch: int) -> list[Item]:
    """The files plus fresh random scene windows with mostly valid, non-blank pixels, drawn from (seed, epoch)."""
    from lut.toolkit.core.scene import open_raster, read_window
    from rasterio.windows import Window

    items = [Item(path=f) for f in pool.files]
    for s, scene in enumerate(pool.scenes):
        rng = np.random.default_rng([seed, epoch, s])
        with open_raster(scene.path) as src:
            drawn = 0
            for _ in range(windows_per_scene * 10):
                if drawn == windows_per_scene:
                    break
                x = int(rng.integers(0, scene.width - image_size + 1))
                y = int(rng.integers(0, scene.height - image_size + 1))
                window = Window(x, y, image_size, image_size)
                data = read_window(src, scene.bands, window)
                if not usable_window(data, valid_mask(src, data, scene.bands, None, window=window)):
                    continue  # mostly nodata, or blank: draw again
                items.append(Item(scene=s, x=x, y=y))
                drawn += 1
            if drawn == 0:
                raise InputError(f"{scene.path} has no {image_size} px window with at least "
                               f"{MIN_VALID_FRACTION:.0%} valid, non-blank pixels; drop it from `data`")
    return items


def load_item(pool: Pool, item: Item, image_size: int) -> np.ndarray:
    """(3, S, S) float32 in [0, 1]; invalid pixels are filled, never passed on as values."""
    if item.path is not None:
        return load_image_file(item.path, image_size, pool.file_bands.get(item.path))
    from lut.toolkit.core.scene import open_raster, read_window
    from rasterio.windows import Window

    scene = pool.scenes[item.scene]
    window = Window(item.x, item.y, image_size, image_size)
    with open_raster(scene.path) as src:
        raw = read_window(src, scene.bands, window)
        valid = valid_mask(src, raw, scene.bands, None, window=window)
    return resize_chw(scene.rule.apply(raw, valid=valid), image_size)


__all__ = ["Item", "Pool", "SourceSpec", "build_pool", "epoch_items", "load_item"]
