"""The uint8-input variant of an exported model: the band rule and normalisation run inside the ONNX graph.

For a uint8 scene at the model's input size, the feeder only copies windows (1 byte per value instead of
4, no float arithmetic on the reader's side); ONNX Runtime does the arithmetic, in its own thread pool on a
CPU and on the device on a GPU. The graph runs the exact float32 operations `BandRule.apply` runs, in the
same order (x * k + c, clip to [0, 1], - mean, * (1 / std)), so the values, and the maps, are identical.

The rule's per-band constants `k` and `c` are inputs, fed with every batch, so one file serves every
scene whatever its scaling; the model's mean and 1/std are constants of the graph. Windows with invalid
pixels need the valid-mean fill, which only the per-window path does: they go in a second, float input
that is concatenated after the uint8 ones inside the graph, so a batch is still one `session.run`.

`lut export` writes the variant beside each model file (`model_uint8_input.onnx`, ...), so ONNX Runtime
opens it from disk: built in memory and handed over as bytes, a serialized ViT-B stays in memory for the
session's life (327 MiB more).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lut.toolkit.core.radiometry import BandRule

U8_INPUT = "pixels_uint8"
FLOAT_INPUT = "pixels_float"
MODEL_INPUT = "pixel_values"
SCALE_INPUT = "lut_k"  # per band: x * k + c is the band rule on a uint8 value
OFFSET_INPUT = "lut_c"
SOURCE_KEY = "lut:source_sha256"  # metadata: the SHA-256 of the model file the variant was built from


def variant_name(model_file: str) -> str:
    """model.onnx -> model_uint8_input.onnx"""
    return f"{Path(model_file).stem}_uint8_input.onnx"


def rule_inputs(rule: BandRule) -> dict[str, np.ndarray]:
    """The band rule's per-band float32 constants, computed the way `BandRule.apply` computes them."""
    low = np.asarray(rule.low, dtype=np.float32)[:, None, None]
    span = np.maximum(np.asarray(rule.high, dtype=np.float32)[:, None, None] - low, 1e-12)
    return {SCALE_INPUT: (np.float32(rule.scale) / span).astype(np.float32),
            OFFSET_INPUT: ((np.float32(rule.offset) - low) / span).astype(np.float32)}


def _constants(mean: np.ndarray, std: np.ndarray) -> dict[str, np.ndarray]:
    return {"lut_mean": np.asarray(mean, np.float32).reshape(-1, 1, 1),
            "lut_inv_std": (1.0 / np.asarray(std, np.float32)).astype(np.float32).reshape(-1, 1, 1),
            "lut_zero": np.zeros((), np.float32), "lut_one": np.ones((), np.float32)}


def _front_nodes(elem: int) -> tuple[list, str]:
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Cast", [U8_INPUT], ["lut_x"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["lut_x", SCALE_INPUT], ["lut_scaled"]),
        helper.make_node("Add", ["lut_scaled", OFFSET_INPUT], ["lut_shifted"]),
        helper.make_node("Clip", ["lut_shifted", "lut_zero", "lut_one"], ["lut_clipped"]),
        helper.make_node("Sub", ["lut_clipped", "lut_mean"], ["lut_centred"]),
        helper.make_node("Mul", ["lut_centred", "lut_inv_std"], ["lut_normal"]),
        helper.make_node("Concat", ["lut_normal", FLOAT_INPUT], ["lut_batch"], axis=0),
    ]
    if elem == TensorProto.FLOAT:
        return nodes, "lut_batch"
    nodes.append(helper.make_node("Cast", ["lut_batch"], ["lut_batch_cast"], to=elem))
    return nodes, "lut_batch_cast"


def write_uint8_variant(model_path: Path, target: Path, mean: np.ndarray, std: np.ndarray,
                        source_sha256: str = "") -> Path:
    """Write the model at `model_path` with inputs (pixels_uint8, pixels_float, lut_k, lut_c) instead of
    pixel_values to `target`; `source_sha256` (the model file's) goes into its metadata."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    original = next(i for i in graph.input if i.name == MODEL_INPUT)
    bands = len(np.asarray(mean).reshape(-1))
    nodes, feed = _front_nodes(original.type.tensor_type.elem_type)
    for node in graph.node:
        node.input[:] = [feed if name == MODEL_INPUT else name for name in node.input]
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in _constants(mean, std).items())
    graph.input.remove(original)
    dims: list[str | int | None] = [bands, "height", "width"]
    graph.input.extend([helper.make_tensor_value_info(U8_INPUT, TensorProto.UINT8, ["batch_u8", *dims]),
                        helper.make_tensor_value_info(FLOAT_INPUT, TensorProto.FLOAT, ["batch_float", *dims]),
                        helper.make_tensor_value_info(SCALE_INPUT, TensorProto.FLOAT, [bands, 1, 1]),
                        helper.make_tensor_value_info(OFFSET_INPUT, TensorProto.FLOAT, [bands, 1, 1])])
    for node in reversed(nodes):
        graph.node.insert(0, node)
    if source_sha256:
        entry = model.metadata_props.add()
        entry.key, entry.value = SOURCE_KEY, source_sha256
    onnx.save(model, str(target))
    return target
