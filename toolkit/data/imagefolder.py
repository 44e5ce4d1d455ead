"""Labelled image folders `DIR/<class>/*`: jpg/png photos and single- or multi-band GeoTIFF chips.

Every file is opened and decoded once before training, so a damaged image, a chip without valid pixels
or a folder mixing physical quantities (8-bit photos with reflectance chips) fails at once, naming the
file, instead of after the last epoch. Each GeoTIFF chip is scaled through its own encoding (see
`lut.toolkit.core.radiometry`) to one physical rule, so uint16 and float reflectance chips can be mixed.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lut.toolkit.core.errors import FormatError, InputError, LutError, warn
from lut.toolkit.core.radiometry import BandRule, Encoding, default_bands, default_rule
from lut.toolkit.core.raster import raster_encoding, raster_gsd, valid_mask
from lut.toolkit.core.resample import resize_chw

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}
RASTER_SUFFIXES = {".tif", ".tiff"}
IMAGE_SUFFIXES = PHOTO_SUFFIXES | RASTER_SUFFIXES
PHOTO_ENCODING = Encoding("dn", 1 / 255, 0.0, "8-bit photo: value / 255")
MIN_PER_CLASS = 3  # one image each for train, validation and test


def list_images(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))


def check_directory(root: Path, what: str) -> Path:
    root = Path(root)
    if not root.exists():
        raise InputError(f"{what} {root} does not exist")
    if not root.is_dir():
        raise InputError(f"{what} {root} is a file, not a directory of images")
    return root


def scan_folder(root: Path) -> tuple[list[str], list[Path], np.ndarray]:
    """Class names (sorted folder names), files and integer labels of a labelled folder."""
    root = check_directory(root, "data directory")
    classes, files, labels = [], [], []
    empty, few = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = list_images(sub)
        if not images:
            empty.append(sub.name)
            continue
        if len(images) < MIN_PER_CLASS:
            few.append(f"{sub.name} ({len(images)})")
        classes.append(sub.name)
        files.extend(images)
        labels.extend([len(classes) - 1] * len(images))
    if not files:
        raise InputError(f"no images found in {root} (expected {root}/<class>/*.jpg|png|tif)")
    if empty:
        raise InputError(f"class folder(s) {', '.join(empty)} in {root} hold no images (jpg, png, tif): add images "
                       "or remove the folder")
    if len(classes) < 2:
        raise InputError(f"{root} holds a single class ({classes[0]}); a classifier needs at least two")
    if few:
        raise InputError(f"every class needs at least {MIN_PER_CLASS} images for a train/val/test split; too few in "
                       f"{root}: {', '.join(few)}")
    return classes, files, np.asarray(labels, dtype=np.int64)


def read_photo(path: Path) -> np.ndarray:
    """(3, H, W) uint8; decodes every byte, so a truncated file raises here."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB")).transpose(2, 0, 1)


@dataclass
class RasterChip:
    raw: np.ndarray  # (C, H, W) selected bands
    valid: np.ndarray  # (H, W)
    bands: tuple[int, ...]
    encoding: Encoding
    gsd_m: float | None


def read_raster_chip(path: Path, bands: tuple[int, ...] | None, offset_dn: float | None = None,
                     encoding: Encoding | None = None) -> RasterChip:
    """A chip's bands, validity and encoding; pass `encoding` when it is known (the survey found it), so
    loading a chip for training does no percentile work."""
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # chips without georeferencing are fine here
        with rasterio.open(path) as src:
            chosen = default_bands(src.count, bands, str(path))
            raw = src.read(list(chosen))
            valid = valid_mask(src, raw, chosen)
            if encoding is None:
                values = raw[:, valid] if raw.dtype.kind == "f" else None
                p99 = float(np.percentile(values, 99)) if values is not None and values.size else None
                encoding = raster_encoding(src, chosen, p99, offset_dn)
            return RasterChip(raw, valid, chosen, encoding, raster_gsd(src))


def load_image_file(path: Path, image_size: int, bands: tuple[int, ...] | None = None,
                    rule: BandRule | None = None, offset_dn: float | None = None,
                    encoding: Encoding | None = None) -> np.ndarray:
    """Any supported image as (3, S, S) float32 in [0, 1]; invalid chip pixels are filled, never kept."""
    try:
        if path.suffix.lower() in RASTER_SUFFIXES:
            chip = read_raster_chip(path, bands, offset_dn, encoding)
            if not chip.valid.any():
                raise InputError(f"{path} holds no valid pixels (all nodata, NaN or masked): remove it")
            base = rule or default_rule(chip.encoding, chip.bands)
            image = base.with_encoding(chip.bands, chip.encoding).apply(chip.raw, valid=chip.valid)
        else:
            base = rule or default_rule(PHOTO_ENCODING, (1, 2, 3))
            image = base.with_encoding((1, 2, 3), PHOTO_ENCODING).apply(read_photo(path))
    except LutError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL, GDAL and numpy each raise their own types
        raise FormatError(f"cannot read image {path} (damaged or unsupported): {str(exc).splitlines()[0]}") from exc
    return resize_chw(image, image_size)


def find_images(root: Path) -> list[Path]:
    """Every image below `root`, labelled layout or flat; labels are ignored."""
    root = check_directory(root, "image directory")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise InputError(f"no images found in {root} (jpg, png or tif)")
    return files


@dataclass
class ChipSurvey:
    """What a pass over every file found: one physical quantity, the chips' side and ground resolution."""

    encoding: Encoding
    bands: tuple[int, ...]
    size_px: int
    gsd_m: float | None
    chip_encodings: dict[Path, Encoding]  # per GeoTIFF chip, so training loads need not work them out again


def survey(files: list[Path], bands: tuple[int, ...] | None, offset_dn: float | None, decode: bool) -> ChipSurvey:
    """Open every file (decoding all pixels when `decode`), refuse damaged files, chips without valid
    pixels, unknown encodings and a mix of physical quantities."""
    quantities: dict[str, Path] = {}
    sizes: Counter = Counter()
    gsds: list[float] = []
    first: tuple[Encoding, tuple[int, ...]] | None = None
    chip_encodings: dict[Path, Encoding] = {}
    for f in files:
        try:
            if f.suffix.lower() in RASTER_SUFFIXES:
                chip = read_raster_chip(f, bands, offset_dn)
                if not chip.valid.any():
                    raise InputError(f"{f} holds no valid pixels (all nodata, NaN or masked): remove it")
                if chip.encoding.quantity == "unknown":
                    raise InputError(f"cannot tell how {f} encodes its values ({chip.encoding.description}); "
                                   "convert it to uint8, uint16/int16 reflectance or float reflectance 0..1")
                encoding, chosen, shape = chip.encoding, chip.bands, chip.raw.shape[1:]
                chip_encodings[f] = encoding
                if chip.gsd_m:
                    gsds.append(chip.gsd_m)
            else:
                with Image.open(f) as img:
                    if decode:
                        img.load()
                    shape = (img.height, img.width)
                encoding, chosen = PHOTO_ENCODING, (1, 2, 3)
        except LutError:
            raise
        except Exception as exc:  # noqa: BLE001 - PIL, GDAL and numpy each raise their own types
            raise FormatError(f"cannot read image {f} (damaged or unsupported): {str(exc).splitlines()[0]}") from exc
        quantities.setdefault(encoding.quantity, f)
        first = first or (encoding, chosen)
        sizes[min(shape)] += 1
    if len(quantities) > 1:
        listing = ", ".join(f"{q} ({p})" for q, p in quantities.items())
        raise InputError(f"the images mix physical quantities: {listing}; lut scales every image by one rule: "
                       "train on one kind, or convert them")
    assert first is not None
    return ChipSurvey(first[0], first[1], sizes.most_common(1)[0][0], float(np.median(gsds)) if gsds else None,
                      chip_encodings)


def _note_bands_read(root: Path, chip: Path, chosen: tuple[int, ...]) -> None:
    """Chips that are not 3-band RGB: say which bands are read as red, green, blue, as classify and
    pretrain do."""
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(chip) as src:
            count = src.count
    if count != 3:
        warn(f"the chips in {root} have {count} bands; reading bands {','.join(map(str, chosen))} as red, green, "
             "blue (pass --bands to choose)")


class ImageFolderSource:
    """A labelled folder; every image is scaled by one physical rule through its own encoding."""

    def __init__(self, root: Path, image_size: int, bands: tuple[int, ...] | None = None, verify: bool = True,
                 offset_dn: float | None = None) -> None:
        self.root = Path(root)
        self.classes, self.files, self.labels = scan_folder(self.root)
        self.image_size = image_size
        self.bands = bands
        self.offset_dn = offset_dn
        has_rasters = any(f.suffix.lower() in RASTER_SUFFIXES for f in self.files)
        if bands is not None and not has_rasters:
            raise InputError(f"`bands` applies to GeoTIFF chips, but {self.root} holds only photos (jpg/png), "
                           "which are always RGB: drop `bands`")
        files = self.files if verify else self.files[:1] + [f for f in self.files[1:] if f.suffix.lower()
                                                            in RASTER_SUFFIXES][:1]
        self.survey = survey(files, bands, offset_dn, decode=verify)
        self.rule = default_rule(self.survey.encoding, self.survey.bands)
        if bands is None and has_rasters:
            _note_bands_read(self.root, next(f for f in self.files if f.suffix.lower() in RASTER_SUFFIXES),
                             self.survey.bands)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> np.ndarray:
        """(3, S, S) float32 in [0, 1]."""
        path = self.files[index]
        return load_image_file(path, self.image_size, self.bands, self.rule, self.offset_dn,
                               self.survey.chip_encodings.get(path))

    def describe(self) -> dict:
        return {"kind": "folder", "path": str(self.root.resolve()), "images": len(self.files)}
