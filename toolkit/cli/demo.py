"""`lut demo`: the whole chain offline on CPU in a few minutes, ending in a map with known ground truth."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from lut.toolkit.core.atomic import atomic_files
from lut.toolkit.gis.change import ChangeConfig, compute_change
from lut.toolkit.core.errors import InputError, LutError
from lut.toolkit.core.ownership import MAP_TAG, check_output_file, raster_tags
from lut.toolkit.core.raster import pixel_area
from lut.toolkit.gis.transitions import Transitions

from .demo_assess import assessment_step
from lut.toolkit.data.clouds import SCL_CLEAR, add_clouds, cloud_field
from lut.toolkit.data.synthetic import CLASSES, render
from lut.toolkit.core.formats import DEMO_FORMAT


@dataclass
class DemoConfig:
    output: Path = Path("demo")
    store: Path = Path("models")
    images: int = 1200
    image_size: int = 32
    epochs: int = 8
    scene_size: int = 512
    seed: int = 0
    overwrite: bool = False
    progress: bool = True

    def check(self) -> None:
        """The demo's sizes: enough images for a split of six classes, a scene of at least one window."""
        if self.images < 60 or self.epochs < 1 or self.scene_size < 32 or self.image_size < 8:
            raise InputError(f"the demo needs `images` >= 60, `epochs` >= 1, `scene_size` >= 32 and `image_size` >= "
                             f"8, got {self.images}, {self.epochs}, {self.scene_size}, {self.image_size}")


@dataclass
class DemoResult:
    bundle: Path
    onnx_dir: Path
    scene: Path
    truth: Path
    landuse: Path
    preview: Path
    summary: Path
    test_accuracy: float
    map_accuracy: float
    export_table: str
    change: Path | None = None
    change_preview: Path | None = None
    change_scores: list[dict] = field(default_factory=list)
    assessment: list[dict] = field(default_factory=list)  # per class: mapped, estimated ± CI, true km²
    artefacts: dict[str, Path] = field(default_factory=dict)


def write_demo_backbone(path: Path, image_size: int, seed: int = 0) -> Path:
    """A small ViT (4 blocks, 96 wide, 8 px patches): big enough to learn the classes, quick on 2 cores.
    Its random init is seeded, so every demo run gives the same numbers."""
    import torch
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(seed)

    from lut.toolkit.vit.backbones import default_processor

    config = ViTConfig(hidden_size=96, num_hidden_layers=4, num_attention_heads=4, intermediate_size=192,
                       image_size=image_size, patch_size=8)
    ViTModel(config).save_pretrained(path)
    default_processor(image_size).save_pretrained(path)
    return path


#: the demo's second date: the largest region of each `before` class becomes the `after` class
log = logging.getLogger(__name__)
DEMO_CHANGES = (("forest", "urban"), ("cropland", "water"))


def scene_layout(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Voronoi regions of the demo scene: the region of each pixel, and each region's class (every class
    at least once)."""
    rng = np.random.default_rng([seed, 424242])
    n_regions = 12
    seeds = rng.uniform(0, size, (n_regions, 2))
    region_class = np.concatenate([np.arange(len(CLASSES)), rng.integers(0, len(CLASSES), n_regions - len(CLASSES))])
    yy, xx = np.mgrid[0:size, 0:size]
    nearest = np.argmin((yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2, axis=-1)
    return nearest, region_class


def changed_regions(nearest: np.ndarray, region_class: np.ndarray) -> np.ndarray:
    """Region classes at the second date: the largest region of each DEMO_CHANGES source class changes."""
    after = region_class.copy()
    sizes = np.bincount(nearest.ravel(), minlength=len(region_class))
    for source, target in DEMO_CHANGES:
        regions = np.flatnonzero(region_class == CLASSES.index(source))
        after[regions[np.argmax(sizes[regions])]] = CLASSES.index(target)
    return after


def build_scene(scene: Path, truth: Path, size: int, patch: int, seed: int, second_date: bool = False,
                mask: Path | None = None) -> None:
    """A georeferenced uint8 RGB scene of Voronoi regions painted with patch-scale class textures,
    a nodata collar (0) in one corner, and its ground-truth class raster (255 = nodata). The second date
    has the same regions, DEMO_CHANGES applied, textures drawn afresh, and clouds with their shadows, which
    `mask` (an SCL-style layer) marks; its truth is 255 under them (nothing on the ground was seen there)."""
    import rasterio
    from rasterio.transform import from_origin

    nearest, region_class = scene_layout(size, seed)
    if second_date:
        region_class = changed_regions(nearest, region_class)
    rng = np.random.default_rng([seed, 424242 + int(second_date)])
    classes = region_class[nearest].astype(np.uint8)
    image = np.zeros((size, size, 3), np.uint8)
    for ty in range(0, size, patch):
        for tx in range(0, size, patch):
            block = classes[ty:ty + patch, tx:tx + patch]
            for c in np.unique(block):
                tile = render(int(c), rng, patch, patch)[: block.shape[0], : block.shape[1]]
                view = image[ty:ty + patch, tx:tx + patch]
                view[block == c] = tile[block == c]
    image = np.maximum(image, 1)  # 0 is reserved for nodata
    yy, xx = np.mgrid[0:size, 0:size]
    collar = (yy + xx) < size // 4
    image[collar] = 0
    classes[collar] = 255
    scl = None
    if second_date:
        scl = add_clouds(image, cloud_field(rng, size, size, cover=0.12), rng, (size // 40, size // 40))
        classes[scl != SCL_CLEAR] = 255
    profile = {"driver": "GTiff", "width": size, "height": size, "crs": "EPSG:32633",
               "transform": from_origin(500000.0, 5000000.0, 10.0, 10.0), "tiled": True, "blockxsize": 256,
               "blockysize": 256, "compress": "deflate"}
    with rasterio.open(scene, "w", count=3, dtype="uint8", nodata=0, **profile) as dst:
        dst.write(image.transpose(2, 0, 1))
        dst.update_tags(**{MAP_TAG: DEMO_FORMAT})
    with rasterio.open(truth, "w", count=1, dtype="uint8", nodata=255, **profile) as dst:
        dst.write(classes, 1)
        dst.update_tags(**{MAP_TAG: DEMO_FORMAT})
    if mask is not None and scl is not None:
        with rasterio.open(mask, "w", count=1, dtype="uint8", **profile) as dst:
            dst.write(scl, 1)
            dst.update_tags(**{MAP_TAG: DEMO_FORMAT})




def is_demo_raster(path: Path) -> bool:
    return raster_tags(path).get(MAP_TAG) == DEMO_FORMAT


def map_accuracy(landuse: Path, truth: Path) -> float:
    import rasterio

    with rasterio.open(landuse) as a, rasterio.open(truth) as b:
        pred, true = a.read(1), b.read(1)
    valid = true != 255
    if (pred[~valid] != 255).any():
        raise LutError("the demo map classified nodata pixels")
    return float((pred[valid] == true[valid]).mean())


def change_scores(predicted: Transitions, truth_before: Path, truth_after: Path) -> list[dict]:
    """The mapped area of each known transition (and of all change) against the truth, in km² and %."""
    import rasterio

    with rasterio.open(truth_before) as b, rasterio.open(truth_after) as a:
        before, after, area = b.read(1), a.read(1), pixel_area(b.transform)
    n = len(predicted.classes)
    valid = (before < n) & (after < n)
    truth = np.bincount(before[valid].astype(np.int64) * n + after[valid], minlength=n * n).reshape(n, n)
    cells = [(f"{s}→{t}", [(predicted.classes.index(s), predicted.classes.index(t))]) for s, t in DEMO_CHANGES]
    cells.append(("all change", [(i, j) for i in range(n) for j in range(n) if i != j]))
    rows = []
    for name, where in cells:
        true_km2 = sum(int(truth[i, j]) for i, j in where) * area / 1e6
        mapped_km2 = sum(int(predicted.pixels[i, j]) for i, j in where) * area / 1e6
        rows.append({"transition": name, "true_km2": true_km2, "mapped_km2": mapped_km2,
                     "error_km2": mapped_km2 - true_km2,
                     "error_percent": 100.0 * (mapped_km2 - true_km2) / true_km2 if true_km2 else float("nan")})
    return rows


def format_change_scores(rows: list[dict]) -> str:
    lines = [f"      {'transition':<18} {'truth km2':>10} {'mapped km2':>11} {'error km2':>10} {'error %':>8}"]
    lines += [f"      {r['transition']:<18} {r['true_km2']:>10.3f} {r['mapped_km2']:>11.3f} {r['error_km2']:>+10.3f} "
              f"{r['error_percent']:>+8.1f}" for r in rows]
    return "\n".join(lines)


def _write_scene(out: Path, name: str, cfg: DemoConfig, second_date: bool) -> tuple[Path, Path]:
    """The scene and its truth; the second date also NAME_SCL.tif, its cloud and shadow layer."""
    scene, truth, mask = (out / f"{name}.tif", out / f"truth{name.removeprefix('scene')}.tif",
                          out / f"{name}_SCL.tif")
    targets = [scene, truth, mask] if second_date else [scene, truth]
    for target in targets:
        check_output_file(target, cfg.overwrite, is_demo_raster, (), "demo output")
    with atomic_files(targets, overwrite=True) as temps:
        build_scene(temps[0], temps[1], cfg.scene_size, cfg.image_size, cfg.seed, second_date,
                    temps[2] if second_date else None)
    return scene, truth


def run_demo(cfg: DemoConfig) -> DemoResult:
    """finetune (progressive) -> export --quantize -> classify a synthetic scene with known truth -> classify
    its second date and map the change against the known transitions."""
    cfg.check()
    from lut.export.exporter import ExportConfig, export_model
    from lut.tiling.classify import ClassifyConfig, classify_scene

    from lut.toolkit.train.finetune import FinetuneConfig, finetune
    from lut.toolkit.train.strategies import StrategyConfig
    from lut.toolkit.train.config import TrainConfig

    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    bundle = Path(cfg.store) / "demo-progressive"
    backbone = out / "backbone"
    if not (backbone / "config.json").is_file():
        write_demo_backbone(backbone, cfg.image_size, cfg.seed)

    log.info(f"[1/6] finetune: progressive unfreezing of a small random-init ViT on {cfg.images} synthetic "
        f"{cfg.image_size} px patches ({cfg.epochs} epochs)")
    _, outcome = finetune(FinetuneConfig(
        data="synthetic", synthetic_images=cfg.images, backbone=str(backbone), image_size=cfg.image_size,
        # a random-init backbone needs a higher LR than the study's 2e-5 for pretrained blocks
        strategy=StrategyConfig("progressive", head_lr=3e-3, backbone_lr=1e-3, unfreeze_every=1),
        train=TrainConfig(epochs=cfg.epochs, batch_size=32, seed=cfg.seed, progress=cfg.progress),
        output=bundle, overwrite=cfg.overwrite, store=cfg.store,
    ))
    log.info(f"      test accuracy {outcome.metrics['accuracy']:.3f}, macro F1 {outcome.metrics['macro_f1']:.3f}")

    log.info("[2/6] export: ONNX fp32 + INT8 through optimum, parity against PyTorch")
    exported = export_model(ExportConfig(model_dir=bundle, quantize=True, overwrite=cfg.overwrite, samples=128,
                                         min_seconds=0.5, store=cfg.store))
    log.info(exported.table())

    log.info(f"[3/6] scene: a {cfg.scene_size} x {cfg.scene_size} px georeferenced scene with known land use")
    scene, truth = _write_scene(out, "scene", cfg, second_date=False)

    log.info("[4/6] classify: tiled, batched ONNX Runtime inference with half-patch overlap")
    landuse, preview = out / "landuse.tif", out / "landuse.png"
    classify = ClassifyConfig(scene=scene, output=landuse, model=bundle, stride=cfg.image_size // 2, preview=preview,
                              overwrite=cfg.overwrite, confidence=True, progress=cfg.progress, store=cfg.store)
    result = classify_scene(classify)
    accuracy = map_accuracy(landuse, truth)

    log.info("[5/6] change: the same place at a second date (" + ", ".join(f"{a}→{b}" for a, b in DEMO_CHANGES)
        + "), classified and compared")
    scene_after, truth_after = _write_scene(out, "scene_after", cfg, second_date=True)
    landuse_after = out / "landuse_after.tif"
    after = classify_scene(replace(classify, scene=scene_after, output=landuse_after, preview=None,
                                   mask=out / "scene_after_SCL.tif", mask_dilate=2))
    log.info(f"      clouds and shadows on the second date: {after.summary['mask']['masked_percent']:.1f}% of the "
             "scene masked (SCL rule, dilated 2 px), nodata in its map and in the change")
    change = compute_change(ChangeConfig(landuse, landuse_after, out / "change.tif", preview=out / "change.png",
                                         overwrite=cfg.overwrite))
    scores = change_scores(change.transitions, truth, truth_after)
    log.info(format_change_scores(scores))

    areas = assessment_step(out, landuse, truth, list(result.summary["classes"]), cfg.seed, cfg.overwrite)
    return DemoResult(bundle, exported.onnx_dir, scene, truth, landuse, preview, result.summary_path,
                      outcome.metrics["accuracy"], accuracy, exported.table(), change.outputs.raster,
                      change.outputs.preview, scores, areas)
