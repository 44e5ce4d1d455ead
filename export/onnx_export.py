"""fp32 ONNX export of a bundle through optimum, plus what a deployment needs beside the model."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

from lut.toolkit.core.errors import InputError

MODEL_FILE = "model.onnx"


@contextlib.contextmanager
def quiet_libraries():
    """optimum and torch.onnx print pages of notes on every export; keep the terminal readable."""
    import onnxruntime as ort
    from transformers.utils import logging as hf_logging

    ort.set_default_logger_severity(4)  # the GPU optimizer probes CUDA even on CPU-only machines
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    loggers = [logging.getLogger(n) for n in ("optimum", "torch.onnx", "onnxruntime")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        ort.set_default_logger_severity(3)
        hf_logging.set_verbosity(verbosity)
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def check_weights_load(bundle: Path):
    """Load the bundle's model so a corrupted checkpoint fails with one line, before any export work.

    Only safetensors weights are read (lut writes nothing else): a pickled pytorch_model.bin is refused,
    never unpickled, and `auto_map` remote code in config.json is never run (no trust_remote_code)."""
    from transformers import ViTForImageClassification

    if not (Path(bundle) / "model.safetensors").is_file():
        raise InputError(f"{bundle} has no model.safetensors; lut reads only safetensors weights (never pickled "
                       "files): fine-tune it again with lut finetune")
    try:
        with quiet_libraries():
            return ViTForImageClassification.from_pretrained(bundle, use_safetensors=True).eval()
    except Exception as exc:  # noqa: BLE001 - safetensors, torch and HF raise a zoo of types
        raise InputError(f"cannot load the model weights in {bundle}: {str(exc).splitlines()[0]}") from exc


def export_fp32(bundle: Path, model, processor, out_dir: Path, opset: int | None = None) -> Path:
    """model.onnx with a dynamic batch axis, config.json (id2label) and preprocessor_config.json.

    Takes the model `check_weights_load` already loaded, so the weights are read from disk once."""
    from optimum.exporters.onnx import onnx_export_from_model

    try:
        with quiet_libraries():
            onnx_export_from_model(model, output=out_dir, task="image-classification", opset=opset, device="cpu",
                                   preprocessors=[processor], do_validation=False)
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"ONNX export of {bundle} failed: {str(exc).splitlines()[0]}") from exc
    model = out_dir / MODEL_FILE
    if not model.is_file():
        raise InputError(f"ONNX export of {bundle} produced no {MODEL_FILE}")
    return model
