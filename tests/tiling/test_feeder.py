"""The feeder: uint8 windows normalised inside the graph give the maps of the per-window path, at any
number of prepare threads."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from lut.tiling.classify import ClassifyConfig, classify_scene
from lut.export.uint8_input import _constants, rule_inputs
from lut.toolkit.core.radiometry import rule_for_dtype

from ..conftest import synthetic_scene, write_scene


def test_graph_constants_are_the_rules_own_arithmetic():
    rule = rule_for_dtype("uint8", (1, 2, 3))
    mean, std = np.full((3, 1, 1), 0.45, np.float32), np.full((3, 1, 1), 0.27, np.float32)
    raw = np.arange(256, dtype=np.uint8)[None, None].repeat(3, 0)
    k = {**rule_inputs(rule), **_constants(mean, std)}
    graph_like = np.clip(raw.astype(np.float32) * k["lut_k"] + k["lut_c"], 0, 1)
    graph_like = (graph_like - k["lut_mean"]) * k["lut_inv_std"]
    assert np.array_equal(graph_like, rule.apply(raw, mean, std))


@pytest.mark.parametrize("stride", [None, 16])
def test_uint8_graph_maps_equal_the_per_window_path(exported_bundle, tmp_path, stride):
    data = np.concatenate([synthetic_scene(96, 80, class_index=c, seed=c) for c in (0, 1, 3)], axis=2)
    data[:, 10:40, 30:70] = 0  # nodata inside windows: those take the per-window fill
    scene = write_scene(tmp_path / "s.tif", data, nodata=0)
    maps = {}
    for graph, readers in ((False, 1), (True, 1), (True, 3)):
        out = tmp_path / f"m{graph}{readers}.tif"
        result = classify_scene(ClassifyConfig(scene=scene, output=out, model=exported_bundle, precision="fp32",
                                               stride=stride, uint8_graph=graph, readers=readers, batch_size=5,
                                               confidence=True, progress=False))
        maps[(graph, readers)] = out.read_bytes()
        with rasterio.open(out) as src:  # the areas, counted per cell, are the map's own pixel counts
            pixels = np.bincount(src.read(1).ravel(), minlength=256)
        assert [r["pixels"] for r in result.summary["classes"].values()] == pixels[:6].tolist()
        assert result.summary["nodata_pixels"] == pixels[255] > 0
    assert maps[(True, 1)] == maps[(False, 1)] == maps[(True, 3)]
