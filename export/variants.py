"""INT8 (optimum ORTQuantizer) and FP16 (optimum ORTOptimizer) variants of an exported model."""

from __future__ import annotations

import platform
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lut.toolkit.core.errors import InputError

from .onnx_export import MODEL_FILE, quiet_libraries

INT8_FILE = "model_int8.onnx"
FP16_FILE = "model_fp16.onnx"


def cpu_preset() -> str:
    """The quantization preset for the instruction set of the CPU we run on."""
    machine = platform.machine().lower()
    if machine in ("arm64", "aarch64"):
        return "arm64"
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


def _move_variant(produced: Path, onnx_dir: Path, name: str, config_name: str) -> Path:
    target = onnx_dir / name
    shutil.move(str(produced), target)
    ort_config = produced.parent / "ort_config.json"
    if ort_config.is_file():
        shutil.move(str(ort_config), onnx_dir / config_name)
    return target


def float_nodes(model_path: Path, static: bool) -> list[str]:
    """Nodes INT8 leaves in float, from one read of the graph: the patch embedding (the one Conv, on the
    normalised pixels) always, and for static INT8 the MatMuls of two activations (attention scores)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    activation = [n.name for n in graph.node
                  if n.op_type == "MatMul" and not any(i in weights for i in n.input)] if static else []
    return activation + convs


def quantize_int8(onnx_dir: Path, calibration: Sequence[np.ndarray] | None = None) -> tuple[Path, dict]:
    """Dynamic INT8 with per-channel weights; static (calibrated QDQ) when calibration images are given.

    The patch embedding stays in float: on RSSCN7 bundles that made INT8 faster (1.46-1.69x -> 1.92-2.07x
    ONNX fp32 images/s) at the same agreement within a point (BENCHMARKS.md, bench/bench_int8.py)."""
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig, CalibrationConfig
    from onnxruntime.quantization import CalibrationMethod

    preset = cpu_preset()
    static = calibration is not None
    # Static: quantize the weight MatMuls (the compute) and keep norms/softmax in float. Two onnxruntime
    # defects force this: per-channel LayerNorm QDQ breaks on rank-1 weights, and the fused integer kernels
    # chosen at full graph optimisation mis-compute QDQ MatMuls of two activations (attention scores),
    # dropping top-1 agreement to chance while an unoptimised session is right.
    operators = ["MatMul"] if static else None
    excluded = float_nodes(onnx_dir / MODEL_FILE, static)
    qconfig = getattr(AutoQuantizationConfig, preset)(is_static=static, per_channel=True,
                                                      operators_to_quantize=operators, nodes_to_exclude=excluded)
    with tempfile.TemporaryDirectory(dir=onnx_dir) as work, quiet_libraries():
        quantizer = ORTQuantizer.from_pretrained(onnx_dir, file_name=MODEL_FILE)
        ranges = None
        if static:
            samples = [{"pixel_values": np.asarray(x, np.float32)} for x in calibration]
            calib = CalibrationConfig(dataset_name="lut-calibration", dataset_config_name="images",
                                      dataset_split="calibration", dataset_num_samples=len(samples),
                                      method=CalibrationMethod.MinMax)
            ranges = quantizer.fit(samples, calib, onnx_augmented_model_name=Path(work) / "augmented.onnx",
                                   operators_to_quantize=qconfig.operators_to_quantize)
        produced = quantizer.quantize(qconfig, save_dir=work, calibration_tensors_range=ranges)
        produced = Path(produced)
        if produced.is_dir():
            produced = next(produced.glob("*quantized*.onnx"))
        target = _move_variant(produced, onnx_dir, INT8_FILE, "ort_config_int8.json")
    return target, {"mode": "static" if static else "dynamic", "preset": preset, "per_channel": True,
                    "calibration_images": len(calibration) if static else 0,
                    "float_nodes": excluded or []}


def convert_fp16(onnx_dir: Path) -> tuple[Path, dict]:
    """FP16 weights and compute with fp32 inputs/outputs, fused for GPU inference."""
    from optimum.onnxruntime import ORTOptimizer
    from optimum.onnxruntime.configuration import OptimizationConfig

    config = OptimizationConfig(optimization_level=1, optimize_for_gpu=True, fp16=True)
    with tempfile.TemporaryDirectory(dir=onnx_dir) as work, quiet_libraries():
        try:
            optimizer = ORTOptimizer.from_pretrained(onnx_dir, file_names=[MODEL_FILE])
            produced = Path(optimizer.optimize(save_dir=work, optimization_config=config))
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"FP16 conversion failed: {str(exc).splitlines()[0]}") from exc
        if produced.is_dir():
            produced = next(produced.glob("*.onnx"))
        target = _move_variant(produced, onnx_dir, FP16_FILE, "ort_config_fp16.json")
    return target, {"optimization_level": 1, "io_types": "float32"}
