"""INT8 on a real-data bundle: top-1 agreement with PyTorch on the whole balanced validation split, speed
against ONNX fp32, and how much a patch's class depends on its batch, for several quantization choices.

    .venv/bin/python bench/bench_int8.py models/rsscn7-progressive   # a bundle fine-tuned on ../shared/data/rsscn7

Variants, all measured in this one run on the same images:
- `dynamic, all ops`: the previous default (ORTQuantizer dynamic, per-channel, every Conv/MatMul).
- `dynamic, conv in float`: today's default (`lut export --quantize`): the patch embedding stays float.
- `dynamic, MLP fc2 and conv in float`.
- `static QOperator`: calibrated on 112 stratified training images (MinMax), attention MatMuls in float.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lut.export.exporter import ExportConfig, export_model  # noqa: E402
from lut.export.parity import onnx_logits, throughput  # noqa: E402
from lut.export.runtime import open_session  # noqa: E402
from lut.export.variants import float_nodes  # noqa: E402
from lut.toolkit.core.bundle import Bundle  # noqa: E402
from lut.toolkit.data.datasets import PatchDataset, open_source, stratified_sample, stratified_split  # noqa: E402


def validation(bundle: Bundle, mean, std):
    seed = int(bundle.split["seed"])
    source = open_source(bundle.data_source["path"], bundle.image_size, None, seed=seed, verify=False)
    splits = stratified_split(source.labels, seed)
    calib = stratified_sample(splits.train, source.labels, 112, seed)

    def load(ix):
        ds = PatchDataset(source, ix, mean, std)
        return np.stack([ds[i][0].numpy() for i in range(len(ds))])

    return load(splits.val), source.labels[splits.val], load(calib)


def quantize(src: Path, dst: Path, kind: str, calib: np.ndarray) -> Path:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_dynamic, quantize_static)

    convs = float_nodes(src, static=False)
    if kind == "dynamic, all ops":
        quantize_dynamic(src, dst, per_channel=True, weight_type=QuantType.QInt8)
    elif kind == "dynamic, MLP fc2 and conv in float":
        import onnx

        fc2 = [n.name for n in onnx.load(str(src)).graph.node
               if n.op_type == "MatMul" and "/output/dense" in n.name and "attention" not in n.name]
        quantize_dynamic(src, dst, per_channel=True, weight_type=QuantType.QInt8, nodes_to_exclude=convs + fc2)
    else:
        class Reader(CalibrationDataReader):
            def __init__(self):
                self.items = iter([{"pixel_values": calib[i:i + 1]} for i in range(len(calib))])

            def get_next(self):
                return next(self.items, None)

        quantize_static(src, dst, Reader(), quant_format=QuantFormat.QOperator, per_channel=True,
                        op_types_to_quantize=["MatMul"], nodes_to_exclude=float_nodes(src, static=True),
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    return dst


def main() -> None:
    import logging

    logging.disable(logging.WARNING)
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_int8_"))
    bundle_dir = work / "bundle"
    shutil.copytree(args.bundle, bundle_dir, ignore=shutil.ignore_patterns("onnx"))
    bundle = Bundle.load(bundle_dir, ("model",))
    result = export_model(ExportConfig(model_dir=bundle_dir, quantize=True, samples=10_000, min_seconds=2.0))
    sample = result.report["sample"]
    print(f"lut export --quantize on the validation split: {sample['images']} images, per class "
          f"{sample['per_class']}")
    rows = result.report["variants"]
    print(f"  export report: fp32 {rows['fp32']['images_per_s']:.1f} img/s, int8 {rows['int8']['images_per_s']:.1f} "
          f"img/s ({rows['int8']['images_per_s'] / rows['fp32']['images_per_s']:.2f}x), top-1 agreement "
          f"{rows['int8']['top1_agreement']:.4f}, gate passed: {result.report['gates']['int8']['passed']}")

    import json

    pre = json.loads((bundle_dir / "preprocessor_config.json").read_text())
    mean, std = pre["image_mean"], pre["image_std"]
    val, labels, calib = validation(bundle, mean, std)
    fp32 = bundle_dir / "onnx" / "model.onnx"
    reference = open_session(fp32, "cpu")
    ref = onnx_logits(reference, val, 32)
    top2 = np.sort(ref, axis=1)
    margin = top2[:, -1] - top2[:, -2]
    base = throughput(lambda b: reference.run(None, {"pixel_values": b}), val, 32, min_seconds=3.0)
    print(f"fp32 ONNX: {base:.1f} img/s at batch 32; accuracy {(ref.argmax(1) == labels).mean():.4f}; "
          f"{(margin < 0.2).mean():.1%} of images have a top-2 logit margin < 0.2")
    print(f"{'variant':<36} {'agreement':>9} {'max|dlogit|':>11} {'img/s':>7} {'vs fp32':>7} {'batch-dep':>9}")
    variants = {"dynamic, conv in float (default)": bundle_dir / "onnx" / "model_int8.onnx"}
    for kind in ("dynamic, all ops", "dynamic, MLP fc2 and conv in float", "static QOperator"):
        variants[kind] = quantize(fp32, work / f"{kind.split(',')[0]}_{len(variants)}.onnx", kind, calib)
    for name, path in variants.items():
        session = open_session(path, "cpu")
        logits = onnx_logits(session, val, 32)
        single = onnx_logits(session, val, 1)
        speed = throughput(lambda b: session.run(None, {"pixel_values": b}), val, 32, min_seconds=3.0)
        flips = logits.argmax(1) != ref.argmax(1)
        print(f"{name:<36} {1 - flips.mean():>9.4f} {np.abs(logits - ref).max():>11.3f} {speed:>7.1f} "
              f"{speed / base:>6.2f}x {(single.argmax(1) != logits.argmax(1)).mean():>9.4f}")
        if flips.any():
            print(f"{'':<36} flipped images' fp32 margins: max {margin[flips].max():.3f}, "
                  f"median {np.median(margin[flips]):.3f}")


if __name__ == "__main__":
    main()
