"""A model that takes uint8 windows: the band rule and normalisation run inside the ONNX graph.

For a uint8 scene at the model's input size, the feeder only copies windows (1 byte per value instead of
4, no float arithmetic on the reader's side); ONNX Runtime does the arithmetic, in its own thread pool on a
CPU and on the device on a GPU. The graph runs the exact float32 operations `BandRule.apply` runs, in the
same order (x * k + c, clip to [0, 1], - mean, * (1 / std)), so the values, and the maps, are identical.

Windows with invalid pixels need the valid-mean fill, which only the per-window path does: they go in a
second, float input that is concatenated after the uint8 ones inside the graph, so a batch is still one
`session.run`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lut.toolkit.core.radiometry import BandRule

U8_INPUT = "pixels_uint8"
FLOAT_INPUT = "pixels_float"
MODEL_INPUT = "pixel_values"


def rule_constants(rule: BandRule, mean: np.ndarray, std: np.ndarray) -> dict[str, np.ndarray]:
    """The per-band float32 constants of `BandRule.apply`, computed the way it computes them."""
    low = np.asarray(rule.low, dtype=np.float32)[:, None, None]
    span = np.maximum(np.asarray(rule.high, dtype=np.float32)[:, None, None] - low, 1e-12)
    return {"lut_k": (np.float32(rule.scale) / span).astype(np.float32),
            "lut_c": ((np.float32(rule.offset) - low) / span).astype(np.float32),
            "lut_mean": np.asarray(mean, np.float32),
            "lut_inv_std": (1.0 / np.asarray(std, np.float32)).astype(np.float32),
            "lut_zero": np.zeros((), np.float32), "lut_one": np.ones((), np.float32)}


def uint8_model(model_path: Path, rule: BandRule, mean: np.ndarray, std: np.ndarray) -> bytes:
    """The ONNX model at `model_path` with inputs (pixels_uint8, pixels_float) instead of pixel_values."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    original = next(i for i in graph.input if i.name == MODEL_INPUT)
    elem = original.type.tensor_type.elem_type
    dims = ["batch_u8", len(rule.bands), "height", "width"]
    nodes = [
        helper.make_node("Cast", [U8_INPUT], ["lut_x"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["lut_x", "lut_k"], ["lut_scaled"]),
        helper.make_node("Add", ["lut_scaled", "lut_c"], ["lut_shifted"]),
        helper.make_node("Clip", ["lut_shifted", "lut_zero", "lut_one"], ["lut_clipped"]),
        helper.make_node("Sub", ["lut_clipped", "lut_mean"], ["lut_centred"]),
        helper.make_node("Mul", ["lut_centred", "lut_inv_std"], ["lut_normal"]),
        helper.make_node("Concat", ["lut_normal", FLOAT_INPUT], ["lut_batch"], axis=0),
    ]
    feed = "lut_batch"
    if elem != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", ["lut_batch"], ["lut_batch_cast"], to=elem))
        feed = "lut_batch_cast"
    for node in graph.node:
        node.input[:] = [feed if name == MODEL_INPUT else name for name in node.input]
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in rule_constants(rule, mean, std).items())
    graph.input.remove(original)
    graph.input.extend([helper.make_tensor_value_info(U8_INPUT, TensorProto.UINT8, dims),
                        helper.make_tensor_value_info(FLOAT_INPUT, TensorProto.FLOAT,
                                                      ["batch_float", *dims[1:]])])
    for node in reversed(nodes):
        graph.node.insert(0, node)
    return model.SerializeToString()
