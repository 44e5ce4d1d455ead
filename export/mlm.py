"""STAC Machine Learning Model (MLM) metadata written beside every export (`onnx/mlm.json`), so the ONNX
folder describes itself: input bands by name and order, ground sampling distance, scaling and
normalisation, input shape and dtype, output classes with names and colours, the precision variants
with their gates, and lut's version.

The contract it documents (tested with a plain onnxruntime + numpy script that imports nothing of lut):
read the bands in `mlm:input[0].bands` order; scale each raw value as `lut:scaling` says (physical =
raw * scale + offset, then (physical - low) / (high - low) clipped to 0..1); resize windows covering
`lut:window_m` metres of ground to `shape` pixels; normalise by `statistics` (z-score per band); feed
`pixel_values` (float32, NCHW) to a model asset; the argmax of `logits` is the class value.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path

MLM_SCHEMA = "https://stac-extensions.github.io/mlm/v1.4.0/schema.json"
CLASSIFICATION_SCHEMA = "https://stac-extensions.github.io/classification/v2.0.0/schema.json"
MLM_FILE = "mlm.json"
DEFAULT_BANDS = ("red", "green", "blue")


def lut_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lut")
    except PackageNotFoundError:
        return "unknown"


def mlm_item(name: str, bundle, mean: list[float], std: list[float], variants: dict[str, str]) -> dict:
    """The MLM Item for an export: `variants` maps precision -> ONNX file name in the same folder."""
    from lut.toolkit.gis.legend import class_colours

    size = int(bundle.image_size)
    colours = class_colours(list(bundle.classes))
    chip = bundle.chip
    gsd = chip.gsd_m if chip is not None else None
    window_px = chip.size_px if chip is not None else None
    bands = [{"name": b} for b in DEFAULT_BANDS]
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    properties = {
        "datetime": now, "created": now, "mlm:name": name, "mlm:architecture": "Vision Transformer (ViT)",
        "mlm:tasks": ["classification", "scene-classification"], "mlm:framework": "ONNX",
        "mlm:accelerator": None, "mlm:accelerator_constrained": False, "mlm:batch_size_suggestion": 32,
        "mlm:input": [{
            "name": "pixel_values", "bands": bands,
            "input": {"shape": [-1, len(bands), size, size], "dim_order": ["batch", "bands", "height", "width"],
                      "data_type": "float32"},
            "norm_by_channel": True, "norm_type": "z-score", "resize_type": "interpolation-linear",
            "statistics": [{"mean": m, "stddev": s} for m, s in zip(mean, std)],
            "pre_processing_function": {"format": "documentation-link",
                                        "expression": "lut README: Radiometry; onnx/mlm.json lut:scaling"}}],
        "mlm:output": [{
            "name": "logits", "tasks": ["classification"],
            "result": {"shape": [-1, len(bundle.classes)], "dim_order": ["batch", "class"], "data_type": "float32"},
            "classification:classes": [{"value": i, "name": c, "description": c,
                                        "color_hint": "{:02X}{:02X}{:02X}".format(*colours[i][:3])}
                                       for i, c in enumerate(bundle.classes)],
            "post_processing_function": {"format": "documentation-link", "expression": "argmax over class"}}],
        "lut:version": lut_version(), "lut:gsd_m": gsd, "lut:window_px": window_px,
        "lut:window_m": None if gsd is None or window_px is None else gsd * window_px,
        "lut:scaling": None if bundle.band_rule is None else bundle.band_rule.to_dict(),
        "lut:precisions": {p: {"file": f, "gate": asdict(bundle.gates[p]) if p in bundle.gates else None}
                           for p, f in variants.items()},
    }
    assets = {p: {"href": f, "type": "application/octet-stream; application=onnx", "roles": ["mlm:model"],
                  "mlm:artifact_type": "onnx", "title": f"{p} model"} for p, f in variants.items()}
    for p, f in getattr(bundle, "uint8_input", {}).items():
        assets[f"{p}_uint8_input"] = {
            "href": f, "type": "application/octet-stream; application=onnx", "roles": ["lut:uint8-input"],
            "title": f"{p} model for uint8 windows",
            "description": "inputs pixels_uint8 (uint8 NCHW), pixels_float (float32 NCHW, normalised; appended "
                           "after the uint8 windows) and the scaling's per-band lut_k, lut_c (x * k + c, clipped "
                           "to 0..1); the normalisation runs inside the graph"}
    return {"type": "Feature", "stac_version": "1.0.0", "stac_extensions": [MLM_SCHEMA, CLASSIFICATION_SCHEMA],
            "id": name, "geometry": None, "properties": properties, "assets": assets, "links": []}


def write_mlm(folder: Path, name: str, bundle, mean: list[float], std: list[float]) -> None:
    (Path(folder) / MLM_FILE).write_text(json.dumps(mlm_item(name, bundle, mean, std, dict(bundle.onnx)), indent=2))


def read_mlm(folder: Path) -> dict | None:
    """An export's MLM Item, or None for exports made before lut wrote one."""
    try:
        return json.loads((Path(folder) / MLM_FILE).read_text())
    except (OSError, ValueError):
        return None
