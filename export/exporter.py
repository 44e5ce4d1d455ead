"""`lut export` as a library call: fp32 export, optional INT8/FP16 variants, parity report, all or nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lut.toolkit.atomic import atomic_directory
from lut.toolkit.errors import LutError
from lut.toolkit.imagefolder import find_images, load_image_file
from lut.toolkit.radiometry import BandRule
from lut.toolkit.store import BUNDLE_FILE, DEFAULT_STORE, read_bundle_info, resolve_bundle

from .onnx_export import check_weights_load, export_fp32
from .parity import format_parity, measure_variants, parity_sample
from .variants import convert_fp16, quantize_int8

ONNX_DIR = "onnx"
REPORT_FILE = "export_report.json"
FP32_ATOL = 1e-4
INT8_AGREEMENT_GOAL = 0.99


@dataclass
class ExportConfig:
    model_dir: Path | None = None
    quantize: bool = False
    fp16: bool = False
    calibration_data: Path | None = None
    calibration_images: int = 64
    data: str | None = None
    samples: int = 64
    batch_size: int = 16
    overwrite: bool = False
    store: Path = DEFAULT_STORE
    min_seconds: float = 1.0


@dataclass
class ExportResult:
    onnx_dir: Path
    report: dict = field(default_factory=dict)

    def table(self) -> str:
        return format_parity(self.report["variants"])


def calibration_images(folder: Path, info: dict, mean: list[float], std: list[float], limit: int) -> list[np.ndarray]:
    files = find_images(folder)[:limit]
    size = int(info["image_size"])
    rule = BandRule.from_dict(info["band_rule"]) if "band_rule" in info else None
    m = np.asarray(mean, np.float32)[:, None, None]
    s = np.asarray(std, np.float32)[:, None, None]
    bands = rule.bands if rule else None
    return [(load_image_file(f, size, bands, None) - m) / s for f in files]


def export_model(cfg: ExportConfig) -> ExportResult:
    """Write MODEL_DIR/onnx/ (deployable on its own) and its parity report."""
    bundle = resolve_bundle(cfg.model_dir, cfg.store)
    info = read_bundle_info(bundle)
    target = bundle / ONNX_DIR
    if target.exists() and not cfg.overwrite:
        raise LutError(f"{target} already exists and was left as it is; pass --overwrite to export again")
    model = check_weights_load(bundle)
    from transformers import ViTImageProcessor

    processor = ViTImageProcessor.from_pretrained(bundle)
    mean, std = list(processor.image_mean), list(processor.image_std)
    calibration = None
    if cfg.calibration_data is not None:
        calibration = calibration_images(Path(cfg.calibration_data), info, mean, std, cfg.calibration_images)
    images, labels, sample_source = parity_sample(info, mean, std, cfg.data, cfg.samples)

    with atomic_directory(target, overwrite=cfg.overwrite) as tmp:
        variants = {"fp32": export_fp32(bundle, model, processor, tmp)}
        details: dict = {}
        if cfg.quantize or calibration is not None:
            variants["int8"], details["int8"] = quantize_int8(tmp, calibration)
        if cfg.fp16:
            variants["fp16"], details["fp16"] = convert_fp16(tmp)
        rows = measure_variants(model, variants, images, labels, cfg.batch_size, min_seconds=cfg.min_seconds)
        diff = rows["fp32"]["max_abs_logit_diff"]
        if diff > FP32_ATOL:
            raise LutError(f"fp32 ONNX disagrees with PyTorch: max |logit diff| {diff:.2e} > {FP32_ATOL:g}; "
                           "nothing was written")
        report = {"bundle": str(bundle.resolve()), "sample": {"source": sample_source, "images": int(len(images)),
                                                              "batch_size": cfg.batch_size},
                  "fp32_atol": FP32_ATOL, "variants": rows, "details": details}
        if "int8" in rows:
            report["int8_meets_agreement_goal"] = rows["int8"]["top1_agreement"] >= INT8_AGREEMENT_GOAL
        bundle_info = json.loads((tmp / BUNDLE_FILE).read_text())
        bundle_info["onnx"] = {name: path.name for name, path in variants.items()}
        (tmp / BUNDLE_FILE).write_text(json.dumps(bundle_info, indent=2))
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2))
    return ExportResult(target, report)
