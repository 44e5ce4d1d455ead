"""ONNX Runtime sessions: CUDA when a GPU is usable, CPU otherwise, without error spam on CPU-only machines."""

from __future__ import annotations

import contextlib
from pathlib import Path

from lut.toolkit.core.errors import InputError
from lut.toolkit.core.machine import cpu_cores


def gpu_usable() -> bool:
    """True when a CUDA device can actually be used (the onnxruntime-gpu wheel lists CUDA regardless).

    Asks the driver directly instead of importing torch, which would cost the classifier ~1 GB of RSS.
    """
    import ctypes

    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    try:
        driver = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        return driver.cuInit(0) == 0 and driver.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0
    except (OSError, AttributeError):
        return False


def cpu_threads() -> int:
    """Physical cores are what ONNX Runtime's intra-op pool scales with."""
    return cpu_cores()


def open_session(model: str | Path | bytes, device: str = "auto", threads: int | None = None):
    """An InferenceSession for the ONNX file `model` (or a serialized model) on 'auto', 'cuda' or 'cpu'."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    name = "an in-memory model" if isinstance(model, bytes) else str(model)
    if not isinstance(model, bytes) and not Path(model).is_file():
        raise InputError(f"ONNX model {model} does not exist")
    want_cuda = device in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers() and gpu_usable()
    if device == "cuda" and not want_cuda:
        raise InputError("`device` cuda was asked for but no CUDA GPU is usable by ONNX Runtime here")
    providers: list = ["CPUExecutionProvider"]
    if want_cuda:
        if hasattr(ort, "preload_dlls"):  # CUDA/cuDNN libraries shipped with the torch wheels
            with contextlib.suppress(Exception):
                ort.preload_dlls(cuda=True, cudnn=True, msvc=False)
        providers = [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"}), "CPUExecutionProvider"]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.intra_op_num_threads = threads or cpu_threads()
    options.inter_op_num_threads = 1
    # no busy-waiting between runs: the tiler's reader thread needs those cycles on small machines
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(model if isinstance(model, bytes) else name, sess_options=options,
                                    providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise InputError(f"cannot open {name} with ONNX Runtime: {str(exc).splitlines()[0]}") from exc


def session_device(session) -> str:
    return "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
