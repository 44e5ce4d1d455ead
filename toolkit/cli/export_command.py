"""`lut export`: a bundle to ONNX, with INT8/FP16 variants and measured parity."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export")
@click.argument("model_dir", required=False, type=click.Path(path_type=Path))
@click.option("--quantize", is_flag=True, help="Also write an INT8 model for CPU/edge (optimum ORTQuantizer).")
@click.option("--fp16", is_flag=True, help="Also write an FP16 model for GPU inference.")
@click.option("--calibration-data", type=click.Path(path_type=Path), default=None,
              help="Image folder: static INT8 calibrated on these images instead of dynamic.")
@click.option("--data", default=None, help="Parity sample source (default: the bundle's recorded data).")
@click.option("--samples", default=64, show_default=True, type=click.IntRange(1), help="Parity sample size.")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1), help="Throughput batch size.")
@click.option("--overwrite", is_flag=True, help="Replace an existing onnx/ export.")
def export_cmd(model_dir, quantize, fp16, calibration_data, data, samples, batch_size, overwrite):
    """Export MODEL_DIR (default: models/LATEST) to ONNX and measure parity with PyTorch."""
    from lut.export.exporter import ExportConfig, export_model

    result = export_model(ExportConfig(model_dir=model_dir, quantize=quantize, fp16=fp16,
                                       calibration_data=calibration_data, data=data, samples=samples,
                                       batch_size=batch_size, overwrite=overwrite))
    click.echo(result.table())
    if "int8_meets_agreement_goal" in result.report and not result.report["int8_meets_agreement_goal"]:
        click.echo("warning: INT8 top-1 agreement is below 99%; prefer the fp32 model for this bundle", err=True)
