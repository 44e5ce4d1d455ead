"""`lut export` as a library call: fp32 export, optional INT8/FP16 variants, parity report, all or nothing."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from lut.toolkit.core.atomic import atomic_directory
from lut.toolkit.core.bundle import Bundle, Gate
from lut.toolkit.data.datasets import class_counts, stratified_sample
from lut.toolkit.core.errors import InputError, LutError
from lut.toolkit.data.imagefolder import find_images, load_image_file, scan_folder
from lut.toolkit.core.ownership import check_output_dir
from lut.toolkit.core.store import DEFAULT_STORE, resolve_bundle

from .onnx_export import check_weights_load, export_fp32
from .mlm import write_mlm
from .parity import chip_bands, format_parity, measure_uint8_inputs, measure_variants, parity_sample
from .uint8_input import variant_name, write_uint8_variant
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

    def check(self) -> None:
        """Refuse sample sizes that cannot measure anything, before the bundle is read."""
        for name in ("calibration_images", "samples", "batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"`{name}` must be at least 1, got {getattr(self, name)}")
        if self.min_seconds < 0:
            raise InputError(f"`min_seconds` must not be negative, got {self.min_seconds}")


@dataclass
class ExportResult:
    onnx_dir: Path
    report: dict = field(default_factory=dict)

    def table(self) -> str:
        return format_parity(self.report["variants"])


def calibration_images(folder: Path, bundle: Bundle, mean: list[float], std: list[float], limit: int,
                       seed: int = 0) -> tuple[list[np.ndarray], dict[str, int] | None]:
    """Up to `limit` seeded images from `folder`: stratified over its classes when it is a labelled folder,
    so static INT8 ranges are calibrated on every class (never on the first class of a sorted list)."""
    folder = Path(folder)
    try:
        classes, files, labels = scan_folder(folder)
    except LutError:
        classes, files, labels = None, find_images(folder), None
    if labels is not None:
        chosen = stratified_sample(np.arange(len(files)), labels, limit, seed)
        per_class = class_counts(labels[chosen], classes)
    else:
        chosen = np.sort(np.random.default_rng([seed, 314159]).permutation(len(files))[:limit])
        per_class = None
    rule = bundle.band_rule
    bands = chip_bands(bundle)
    m = np.asarray(mean, np.float32)[:, None, None]
    s = np.asarray(std, np.float32)[:, None, None]
    images = [(load_image_file(files[i], bundle.image_size, bands, rule) - m) / s for i in chosen]
    return images, per_class


def gates_of(rows: dict) -> dict[str, Gate]:
    """INT8 must agree with PyTorch on >= 99% of the stratified sample; FP16 likewise (it runs on GPUs)."""
    return {name: Gate(rows[name]["top1_agreement"] >= INT8_AGREEMENT_GOAL, "top-1 agreement",
                       rows[name]["top1_agreement"], INT8_AGREEMENT_GOAL)
            for name in ("int8", "fp16") if name in rows}


def uint8_variants(onnx_dir: Path, variants: dict[str, Path], images: np.ndarray, mean: list[float],
                   std: list[float], batch_size: int) -> dict:
    """Write each variant's uint8-input twin (`model_uint8_input.onnx`, ...) and check it on the parity
    sample: its logits must match the float model's within the fp32 tolerance, or nothing is written."""
    written = {name: write_uint8_variant(path, onnx_dir / variant_name(path.name), np.asarray(mean, np.float32),
                                         np.asarray(std, np.float32)) for name, path in variants.items()}
    rows = measure_uint8_inputs(variants, written, images, mean, std, batch_size)
    for name, row in rows.items():
        if row["max_abs_logit_diff"] > FP32_ATOL:
            raise InputError(f"the uint8-input {name} model disagrees with the float one: max |logit diff| "
                             f"{row['max_abs_logit_diff']:.2e} > {FP32_ATOL:g}; nothing was written")
    return rows


def export_model(cfg: ExportConfig) -> ExportResult:
    """Export a model bundle to ONNX: `model_dir/onnx/` (deployable on its own) and its parity report.

    Args:
        cfg: the bundle (default: the store's LATEST), the variants to add and the parity sample.

    Returns:
        The onnx/ folder, its parity report and a table of it.

    Raises:
        InputError: a bundle or option that cannot be exported (fp32 parity failing included).
        OwnershipError: an onnx/ folder exists that lut may not replace.
    """
    cfg.check()
    bundle_dir = resolve_bundle(cfg.model_dir, cfg.store)
    bundle = Bundle.load(bundle_dir, ("model",))
    target = bundle_dir / ONNX_DIR
    check_output_dir(target, cfg.overwrite, ("onnx",), [cfg.calibration_data, cfg.data if cfg.data and
                                                         cfg.data != "synthetic" else None], "export")
    model = check_weights_load(bundle_dir)
    from transformers import ViTImageProcessor

    processor = ViTImageProcessor.from_pretrained(bundle_dir)
    mean, std = list(processor.image_mean), list(processor.image_std)
    calibration, calibration_classes = None, None
    if cfg.calibration_data is not None:
        calibration, calibration_classes = calibration_images(Path(cfg.calibration_data), bundle, mean, std,
                                                              cfg.calibration_images)
    sample = parity_sample(bundle, mean, std, cfg.data, cfg.samples)

    with atomic_directory(target, overwrite=cfg.overwrite) as tmp:
        variants = {"fp32": export_fp32(bundle_dir, model, processor, tmp)}
        details: dict = {}
        if cfg.quantize or calibration is not None:
            variants["int8"], details["int8"] = quantize_int8(tmp, calibration)
            details["int8"]["calibration_per_class"] = calibration_classes
        if cfg.fp16:
            variants["fp16"], details["fp16"] = convert_fp16(tmp)
        rows = measure_variants(model, variants, sample.images, sample.labels, cfg.batch_size,
                                min_seconds=cfg.min_seconds)
        diff = rows["fp32"]["max_abs_logit_diff"]
        if diff > FP32_ATOL:
            raise InputError(f"fp32 ONNX disagrees with PyTorch: max |logit diff| {diff:.2e} > {FP32_ATOL:g}; "
                           "nothing was written")
        gates = gates_of(rows)
        uint8_rows = uint8_variants(tmp, variants, sample.images, mean, std, cfg.batch_size)
        report = {"bundle": "..",  # the report sits in BUNDLE/onnx/: no machine paths in outputs
                  "sample": {"source": sample.source, "images": int(len(sample.images)), "seed": sample.seed,
                             "split": "validation", "stratified": True, "per_class": sample.per_class,
                             "batch_size": cfg.batch_size},
                  "fp32_atol": FP32_ATOL, "variants": rows, "details": details,
                  "gates": {k: asdict(g) for k, g in gates.items()}, "uint8_input": uint8_rows}
        if "int8" in rows:
            report["int8_meets_agreement_goal"] = gates["int8"].passed
        exported = replace(bundle, kind="onnx", onnx={name: path.name for name, path in variants.items()},
                           gates=gates, uint8_input={name: row["file"] for name, row in uint8_rows.items()})
        exported.save(tmp)
        write_mlm(tmp, bundle_dir.name, exported, mean, std)
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2))
    return ExportResult(target, report)
