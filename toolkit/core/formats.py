"""Every marker lut writes into its outputs, the map's nodata value and the option choices shared by the
library and the CLI: one definition each.

Markers let `--overwrite` recognise what lut wrote (see `ownership`) and readers refuse another tool's file.
Bump a marker's version when the format changes; readers accept the versions they know.
"""

from __future__ import annotations

from typing import Literal, get_args

#: `lut.json` in bundles, backbones and onnx/ exports
BUNDLE_FILE = "lut.json"
BUNDLE_FORMAT = "lut"
#: GeoTIFF tag, JSON `format` fields and PNG chunks
MAP_FORMAT = "lut-map/2"  # one paletted class band; confidence in NAME.confidence.tif
MAP_FORMATS = ("lut-map/1", "lut-map/2")  # lut-map/1: band 2 held the confidence
CONFIDENCE_FORMAT = "lut-confidence/1"
PROBABILITIES_FORMAT = "lut-probabilities/1"
COMPOSITE_FORMAT = "lut-composite/1"
DESIGN_FORMAT = "lut-design/1"
ASSESSMENT_FORMAT = "lut-assessment/1"
SUMMARY_FORMAT = "lut-summary/1"
COMPARE_FORMAT = "lut-compare/1"
LEGEND_FORMAT = "lut-legend/1"
VECTOR_FORMAT = "lut-vector/1"
CHANGE_FORMAT = "lut-change/1"
DEMO_FORMAT = "lut-demo/1"
MOSAIC_FORMAT = "lut-mosaic/1"
RUN_SUMMARY_FORMAT = "lut-run-summary/1"
RUN_FORMAT = "lut-run/1"
PREVIEW_SOFTWARE = "lut"
#: the GeoTIFF tag and the `.aux.xml`/`.qml` item that carry a marker
MAP_TAG = "LUT_FORMAT"
LEGEND_KEY = "LUT_LEGEND"

#: class maps, confidence bands and change inputs: 255 means "no class here"
MAP_NODATA = 255
CONFIDENCE_NODATA = 255

#: training arithmetic (`finetune`, `pretrain`, `compare`)
TrainPrecision = Literal["auto", "fp32", "bf16-mixed"]
TRAIN_PRECISIONS: tuple[str, ...] = get_args(TrainPrecision)
#: which exported ONNX variant maps a scene
MapPrecision = Literal["auto", "fp32", "int8", "fp16"]
MAP_PRECISIONS: tuple[str, ...] = get_args(MapPrecision)
