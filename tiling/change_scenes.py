"""`lut change SCENE_BEFORE SCENE_AFTER --model M`: classify both scenes, then compare the two maps.

The maps are kept beside the change raster (`NAME.before.tif`, `NAME.after.tif`, each with its summary and
legend), with a confidence band so `--min-confidence` can use it. Every output of all three steps is
checked before the first scene is read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path


from lut.toolkit.gis.change import ChangeConfig, ChangeOutputs, ChangeResult, check_outputs, compute_change

from .classify import ClassifyConfig, ClassifyResult, MapOutputs, check_outputs as check_map_outputs, classify_scene
from .deployed import load_deployed
from .scene_plan import open_source


@dataclass
class SceneChange:
    before: ClassifyResult
    after: ClassifyResult
    change: ChangeResult

log = logging.getLogger(__name__)


def map_paths(output: Path) -> tuple[Path, Path]:
    stem = Path(output).with_suffix("")
    return Path(f"{stem}.before.tif"), Path(f"{stem}.after.tif")


def change_scenes(cfg: ChangeConfig, template: ClassifyConfig) -> SceneChange:
    """Classify `cfg.before` and `cfg.after` (scenes) with `template`'s model and options, then compare.

    The two maps belong to the run: when a step fails (a scene that cannot be read, Ctrl-C, SIGTERM), the
    maps this run created are removed with their sidecars, so a corrected rerun starts clean without
    `overwrite=True` (maps of an earlier run replaced under `overwrite=True` are not brought back). Each step
    is logged at INFO on the `lut.tiling.change_scenes` logger."""
    maps = map_paths(cfg.output)
    runs = [replace(template, scene=str(scene), output=target, confidence=True, preview=None, vector=None,
                    overwrite=cfg.overwrite)
            for scene, target in zip((cfg.before, cfg.after), maps)]
    compare = replace(cfg, before=maps[0], after=maps[1])
    for run in runs:
        run.check()
        check_map_outputs(run, MapOutputs.of(run), open_source(run))
    check_outputs(cfg, ChangeOutputs.of(cfg.output, cfg.preview))
    t = template
    model = load_deployed(t.model, t.precision, t.device, t.store, t.session_options())  # once, for both scenes
    results: list[ClassifyResult] = []
    created: list[Path] = []
    try:
        for role, run in zip(("before", "after"), runs):
            log.info(f"classify {role}: {run.scene} -> {run.output}")
            group = list(MapOutputs.of(run).named().values())
            fresh = [p for p in group if not p.exists()]
            results.append(classify_scene(run, model=model))
            created += fresh
        return SceneChange(results[0], results[1], compute_change(compare))
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        raise
