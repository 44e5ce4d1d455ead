"""ONNX Runtime sessions: CUDA when a GPU is usable, CPU otherwise, without error spam on CPU-only machines."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
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


#: graph optimisation levels by name (onnxruntime.GraphOptimizationLevel)
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


@dataclass(frozen=True)
class SessionOptions:
    """How ONNX Runtime runs a model on the CPU. The defaults were chosen by measurement on a 2-core machine
    (bench/bench_session.py, BENCHMARKS.md): spinning on (+3-7% patches/s), full graph optimisation.

    threads: intra-op threads (default: this machine's physical cores; under Ray, the actor's CPUs).
    spinning: intra-op threads busy-wait for work between operators; turn it off where several sessions
        share the cores (many Ray actors on one host), where waiting threads would steal their cycles.
    optimization: ONNX Runtime's graph optimisation level, one of OPTIMIZATION_LEVELS."""

    threads: int | None = None
    spinning: bool = True
    optimization: str = "all"

    def check(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise InputError(f"`threads` must be at least 1, got {self.threads}")
        if self.optimization not in OPTIMIZATION_LEVELS:
            raise InputError(f"`optimization` must be one of {', '.join(OPTIMIZATION_LEVELS)}, "
                             f"got {self.optimization!r}")

    def ort(self):
        """The onnxruntime.SessionOptions these stand for."""
        import onnxruntime as ort

        self.check()
        options = ort.SessionOptions()
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[self.optimization]
        options.log_severity_level = 3
        options.intra_op_num_threads = self.threads or cpu_threads()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        return options


def _providers(device: str) -> list:
    import onnxruntime as ort

    want_cuda = device in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers() and gpu_usable()
    if device == "cuda" and not want_cuda:
        raise InputError("`device` cuda was asked for but no CUDA GPU is usable by ONNX Runtime here")
    if not want_cuda:
        return ["CPUExecutionProvider"]
    if hasattr(ort, "preload_dlls"):  # CUDA/cuDNN libraries shipped with the torch wheels
        with contextlib.suppress(Exception):
            ort.preload_dlls(cuda=True, cudnn=True, msvc=False)
    return [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"}), "CPUExecutionProvider"]


def open_session(model: str | Path, device: str = "auto", options: SessionOptions | None = None):
    """An InferenceSession for the ONNX file `model` on 'auto', 'cuda' or 'cpu'. Always from a file: ONNX
    Runtime keeps a model handed over as bytes in memory for the session's life."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    if not Path(model).is_file():
        raise InputError(f"ONNX model {model} does not exist")
    providers = _providers(device)
    try:
        return ort.InferenceSession(str(model), sess_options=(options or SessionOptions()).ort(), providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise InputError(f"cannot open {model} with ONNX Runtime: {str(exc).splitlines()[0]}") from exc


def session_device(session) -> str:
    return "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
