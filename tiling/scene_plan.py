"""Everything decided about a scene before its first window is read: what to open, which bands, the mask,
the scaling (and who decided it), the window footprint and the grid."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lut.toolkit.core.errors import InputError, warn
from lut.toolkit.core.masks import MaskSpec, check_overlap, parse_rule, rule_for_name
from lut.toolkit.core.radiometry import BandRule
from lut.toolkit.core.raster import raster_gsd
from lut.toolkit.core.scene import cannot_clip, check_clipping, check_nodata, choose_rule, decimated_sample, scene_bands
from lut.toolkit.core.resolve import scene_source
from lut.toolkit.core.sources import HrefMap, SceneSource, gdal_path, is_remote

from .deployed import DeployedModel
from .footprint import Footprint, plan_footprint
from .grid import PatchGrid


@dataclass
class ScenePlan:
    """What a run reads and how it scales it."""

    source: SceneSource
    bands: tuple[int, ...]
    rule: BandRule
    footprint: Footprint
    grid: PatchGrid
    profile: dict
    mask: MaskSpec | None
    radiometry: dict  # source, scale, offset, clipped fraction: recorded in the summary
    dtype: str = "float32"  # the pixel type the windows are read in


def open_source(cfg) -> SceneSource:
    """The scene `cfg.scene` names (a file, URL, band files or STAC item), with `cfg.href_map` applied."""
    return scene_source(cfg.scene, cfg.channels, HrefMap.parse(cfg.href_map))


def mask_spec(cfg, source: SceneSource) -> MaskSpec | None:
    """`cfg.mask`, else the mask that comes with the scene (a STAC mask asset, `mask=`), unless
    `cfg.use_mask` is False; its rule from `cfg.mask_rule`, else from its name (SCL, QA_PIXEL, BQA)."""
    if not cfg.use_mask:
        return None
    if cfg.mask is not None:
        href = HrefMap.parse(cfg.href_map).apply(str(cfg.mask))
        if not is_remote(href) and not Path(href).is_file():
            raise InputError(f"mask {cfg.mask} does not exist")
        path, named = gdal_path(href), rule_for_name(href)
    elif source.mask_path is not None:
        path, named = source.mask_path, source.mask_rule or rule_for_name(source.mask_path)
    else:
        return None
    text = cfg.mask_rule or named
    if text is None:
        raise InputError(f"cannot tell the layout of mask {path} from its name: pass `mask_rule` (scl, qa_pixel, "
                         "bqa, values:V,... or bits:B,...)")
    return MaskSpec(path, parse_rule(text), cfg.mask_dilate)


def check_input_bands(model: DeployedModel, bands: tuple[int, ...], source: SceneSource) -> None:
    """The scene gives as many bands as the model's MLM metadata says it takes, before any pixel is read."""
    if model.mlm is None:
        return
    inputs = model.mlm.get("properties", {}).get("mlm:input") or [{}]
    wanted = [b.get("name", "?") for b in inputs[0].get("bands", [])]
    if wanted and len(bands) != len(wanted):
        raise InputError(f"{source.name} gives {len(bands)} band(s) but the model takes {len(wanted)} "
                         f"({','.join(wanted)}): choose them with `bands` (or `channels` for band files and STAC)")


def plan_scene(cfg, model: DeployedModel, source: SceneSource | None = None) -> ScenePlan:
    source = source or open_source(cfg)
    mask = mask_spec(cfg, source)
    with source.open() as src:
        if source.channels is not None:
            if cfg.bands is not None:
                raise InputError(f"`bands` selects bands of one raster file; {cfg.scene} is stacked from "
                                 f"{','.join(source.channels)}: choose them with `channels`")
            bands = tuple(range(1, len(source.channels) + 1))
        else:
            bands = scene_bands(src, cfg.bands, model.rule.bands if model.rule else None)
        check_nodata(src, cfg.nodata, bands)
        profile = {"width": src.width, "height": src.height, "crs": src.crs, "transform": src.transform}
        if mask is not None:
            check_overlap(mask, profile, source.name)
        taken: list = []

        def sample():  # read at most once, and only when the scaling or the clipping check needs it
            if not taken:
                taken.append(decimated_sample(src, bands, cfg.nodata, mask=mask))
            return taken[0]

        check_input_bands(model, bands, source)
        scaling = choose_rule(src, bands, cfg.scale, model.rule, cfg.nodata, cfg.reflectance_offset, sampler=sample,
                              metadata_source=source.radiometry_source, strict=model.mlm is not None)
        clipped = (0.0 if cannot_clip(scaling.rule, src.dtypes[bands[0] - 1])
                   else check_clipping(scaling.rule, sample(), cfg.max_clipped, source.name))
        dtype = np.result_type(*(src.dtypes[b - 1] for b in bands)).name
        gsd = cfg.gsd or raster_gsd(src)
        footprint = plan_footprint(model.image_size, model.chip, gsd, cfg.resample, source.name)
        if src.crs is None:
            warn(f"{source.name} has no CRS; the map is written without one")
    window = footprint.window_px
    grid = PatchGrid(profile["height"], profile["width"], window, cfg.stride or window)
    factor = (window / grid.stride) ** 2
    if factor >= 16:
        warn(f"--stride {grid.stride} makes {grid.windows:,} windows, about {factor:.0f}x the work of the "
             f"default stride {window}")
    radiometry = {"source": scaling.source, "scale": scaling.rule.scale, "offset": scaling.rule.offset,
                  "clipped_fraction": round(clipped, 4), "max_clipped": cfg.max_clipped}
    return ScenePlan(source, bands, scaling.rule, footprint, grid, profile, mask, radiometry, dtype)
