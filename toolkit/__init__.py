"""lut, the land-use toolkit: its public Python API, in one place.

    from lut.toolkit import ClassifyConfig, classify_scene
    result = classify_scene(ClassifyConfig(scene="scene.tif", output="landuse.tif", model="models/progressive"))

Every name below is loaded on first use (PEP 562), so `import lut.toolkit` is instant and the mapping names
(`classify_scene`, `compute_change`, `vectorize`, ...) never import torch. Each library call takes one typed
config and returns a result object; failures raise the `LutError` subclasses, notes are `LutWarning`s and
progress lines are INFO records on the `lut` logger. Module paths below these names may change between 0.x
releases; these names are the stable surface.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_API = {
    # training (needs the training stack: torch, transformers, lightly)
    "FinetuneConfig": "lut.toolkit.train.finetune", "finetune": "lut.toolkit.train.finetune",
    "StrategyConfig": "lut.toolkit.train.strategies", "TrainConfig": "lut.toolkit.train.config",
    "DistConfig": "lut.toolkit.train.distributed",
    "PretrainConfig": "lut.toolkit.selfsup.config", "pretrain": "lut.toolkit.selfsup.dino",
    "recipe_config": "lut.toolkit.selfsup.dino_recipes",
    "CompareConfig": "lut.toolkit.study.compare", "run_compare": "lut.toolkit.study.compare",
    "ExportConfig": "lut.export.exporter", "export_model": "lut.export.exporter",
    "DemoConfig": "lut.toolkit.cli.demo", "run_demo": "lut.toolkit.cli.demo",
    # mapping (ONNX Runtime, rasterio, numpy: no torch)
    "ClassifyConfig": "lut.tiling.classify", "classify_scene": "lut.tiling.classify",
    "load_deployed": "lut.tiling.deployed",
    "ManyConfig": "lut.tiling.many", "classify_many": "lut.tiling.many", "RayOptions": "lut.tiling.engines",
    "change_scenes": "lut.tiling.change_scenes",
    "ChangeConfig": "lut.toolkit.gis.change", "compute_change": "lut.toolkit.gis.change",
    "VectorizeConfig": "lut.toolkit.gis.vectorize", "vectorize": "lut.toolkit.gis.vectorize",
    "CompositeConfig": "lut.tiling.composite", "composite": "lut.tiling.composite",
    "DesignConfig": "lut.toolkit.assess.design", "design": "lut.toolkit.assess.design",
    "EstimateConfig": "lut.toolkit.assess.estimate", "estimate_areas": "lut.toolkit.assess.estimate",
    "HrefMap": "lut.toolkit.core.sources", "scene_source": "lut.toolkit.core.resolve",
    # records and errors
    "Bundle": "lut.toolkit.core.bundle", "BandRule": "lut.toolkit.core.radiometry",
    "LutError": "lut.toolkit.core.errors", "InputError": "lut.toolkit.core.errors",
    "FormatError": "lut.toolkit.core.errors", "OwnershipError": "lut.toolkit.core.errors",
    "RunFailed": "lut.toolkit.core.errors", "HubUnreachable": "lut.toolkit.core.errors",
    "Interrupted": "lut.toolkit.core.errors",
    "LutWarning": "lut.toolkit.core.errors",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'lut.toolkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
