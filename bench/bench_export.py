"""PyTorch eager vs ONNX fp32 vs ONNX INT8 (and FP16 on a GPU) for a ViT-Base-sized model, in one run.

Goals: INT8 >= 1.4x ONNX fp32 and >= 2x PyTorch eager at batch 16 on CPU; INT8 file >= 3.5x smaller.
    python bench/bench_export.py [--spec vit-base --batch-size 16 --seconds 10]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from common import write_random_bundle
from lut.export.onnx_export import export_fp32
from lut.export.parity import throughput
from lut.export.runtime import gpu_usable, open_session
from lut.export.variants import convert_fp16, quantize_int8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="vit-base")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--gpu-batch-size", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = write_random_bundle(Path(tmp) / "bundle", args.spec)
        onnx_dir = Path(tmp) / "onnx"
        onnx_dir.mkdir()
        from transformers import ViTForImageClassification, ViTImageProcessor

        model = ViTForImageClassification.from_pretrained(bundle).eval()
        fp32 = export_fp32(bundle, model, ViTImageProcessor.from_pretrained(bundle), onnx_dir)
        int8, _ = quantize_int8(onnx_dir)
        images = np.random.default_rng(0).standard_normal((args.batch_size, 3, 224, 224)).astype(np.float32)
        with torch.no_grad():
            eager = throughput(lambda b: model(pixel_values=torch.from_numpy(b)), images, args.batch_size,
                               args.seconds)
        rates = {"pytorch eager": eager}
        for name, path in (("onnx fp32", fp32), ("onnx int8", int8)):
            session = open_session(path, "cpu")
            rates[name] = throughput(lambda b: session.run(None, {"pixel_values": b}), images, args.batch_size,
                                     args.seconds)
        sizes = {"onnx fp32": fp32.stat().st_size / 1e6, "onnx int8": int8.stat().st_size / 1e6}
        print(f"{args.spec}, batch {args.batch_size}, CPU threads {torch.get_num_threads()}")
        for name, rate in rates.items():
            size = f"{sizes[name]:8.1f} MB" if name in sizes else ""
            print(f"  {name:<14} {rate:8.2f} images/s {size}")
        print(f"  int8 / onnx fp32     {rates['onnx int8'] / rates['onnx fp32']:.2f}x (goal >= 1.4x)")
        print(f"  int8 / pytorch eager {rates['onnx int8'] / rates['pytorch eager']:.2f}x (goal >= 2x)")
        print(f"  fp32 / int8 file     {sizes['onnx fp32'] / sizes['onnx int8']:.2f}x smaller (goal >= 3.5x)")
        if gpu_usable():
            fp16, _ = convert_fp16(onnx_dir)
            big = np.random.default_rng(0).standard_normal((args.gpu_batch_size, 3, 224, 224)).astype(np.float32)
            for name, path in (("onnx fp32 cuda", fp32), ("onnx fp16 cuda", fp16)):
                session = open_session(path, "cuda")
                rate = throughput(lambda b: session.run(None, {"pixel_values": b}), big, args.gpu_batch_size,
                                  args.seconds)
                print(f"  {name:<14} {rate:8.1f} images/s at batch {args.gpu_batch_size} "
                      f"({session.get_providers()[0]})")
        else:
            print("  no GPU here: FP16/CUDA not measured")


if __name__ == "__main__":
    main()
